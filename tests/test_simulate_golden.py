"""Speed-ups of the simulator change nothing: every golden case gives exactly the stored result.

The fixture (tests/data/simulate_golden.json) is made by `.venv/bin/python -m tests.simulate_golden`
(see tests/simulate_golden.py for what it covers and when it may be regenerated).
"""

from __future__ import annotations

import json

import pytest

from tests.simulate_golden import GOLDEN, compute


@pytest.fixture(scope="module")
def now() -> dict[str, dict[str, object]]:
    return compute()


GOLD = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize(("case", "policy"), [(c, p) for c, ps in GOLD.items() for p in ps])
def test_result_is_identical_to_the_golden_one(now: dict[str, dict[str, object]], case: str, policy: str) -> None:
    assert now[case][policy] == GOLD[case][policy], (
        f"{case} / {policy} changed; if the semantics changed on purpose, regenerate with "
        "`.venv/bin/python -m tests.simulate_golden`")


def test_golden_covers_every_path() -> None:
    """The fixture exercises what a speed-up could break: idle stretches, gaps, interruptions, drops."""
    nights = GOLD["nights-at-zero"]
    assert nights["surge"]["pod_moves"] > 0 and nights["keda-karpenter"]["node_terminations"] > 0
    assert GOLD["http-elb-when-empty"]["keda-karpenter"]["dropped"] >= 0
    assert set(GOLD) == {"servegen-3d", "nights-at-zero", "http-elb-when-empty", "hourly-4d"}

