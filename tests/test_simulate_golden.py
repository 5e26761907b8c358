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


def test_policies_in_worker_processes_give_the_same_results() -> None:
    """run_policies on two workers (forced, whatever the run's length) returns what one process does."""
    import tempfile
    from pathlib import Path

    from autoscaler.simulate.parallel import run_policies
    from autoscaler.simulate.policy import policy_named
    from tests.simulate_golden import cases, fingerprint

    with tempfile.TemporaryDirectory() as tmp:
        name, trace, setup, a, names, notices = cases(Path(tmp))[1]
        policies = [policy_named(p) for p in names[:3]]
        seen: list[int] = []
        results = run_policies(trace, setup, policies, a, seen.append, jobs=2, notices=notices, min_ticks=0)
    assert [r.policy for r in results] == names[:3]
    assert [fingerprint(r) for r in results] == [GOLD[name][p] for p in names[:3]]
    assert sum(seen) == round(trace.span / 5.0) * 3  # every tick of every policy reported back
