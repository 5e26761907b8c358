"""Speed machinery of `surge simulate`: policies in worker processes give one process's results;
`--jobs` is checked like every option."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.simulate.parallel import run_policies
from autoscaler.simulate.policy import policy_named
from tests.simulate_golden import GOLDEN, cases, fingerprint

GOLD = json.loads(GOLDEN.read_text())


def test_policies_in_worker_processes_give_the_same_results() -> None:
    """run_policies on two workers (forced, whatever the run's length) returns the golden results,
    in the order asked, and reports every tick of every policy to the progress callback."""
    with tempfile.TemporaryDirectory() as tmp:
        name, trace, setup, a, names, notices = cases(Path(tmp))[1]
        policies = [policy_named(p) for p in names[:3]]
        seen: list[int] = []
        results = run_policies(trace, setup, policies, a, seen.append, jobs=2, notices=notices, min_ticks=0)
    assert [r.policy for r in results] == names[:3]
    assert [fingerprint(r) for r in results] == [GOLD[name][p] for p in names[:3]]
    assert sum(seen) == round(trace.span / 5.0) * 3


def test_jobs_below_one_is_refused() -> None:
    out = CliRunner().invoke(app, ["simulate", "--jobs", "0", "--days", "1"])
    assert out.exit_code == 2
    assert "--jobs: expected at least 1 worker, got 0" in out.output
