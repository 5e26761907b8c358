"""The simulator's sanity notes say what happened: found running `surge simulate` over the shared
traces, where every run claimed "reached maxReplicaCount ... cannot serve the peak" because a cold
start had burst to the maximum while pods were still booting."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoscaler.simulate.report import warnings
from autoscaler.simulate.trace import Trace
from tests.test_simulate import SO, run

PEAK = "cannot serve the peak"


def test_cold_start_burst_to_the_maximum_is_not_blamed_on_maxreplicacount(tmp_path: Path) -> None:
    # full load from t=0: the first lag reading asks for the maximum while no pod is ready yet;
    # 10 pods of 10 items/s then clear 80 items/s with room to spare
    trace = Trace("cold", 0.0, 60.0, np.full(20, 80.0 * 60))
    r = run(tmp_path, trace, "surge", so=SO.format(max=10))
    assert max(r.series.replicas) == 10 and r.slo_violation_minutes > 0  # the burst the old note misread
    assert not [w for w in warnings([r], 10) if PEAK in w]


def test_a_maximum_too_low_for_the_load_is_named(tmp_path: Path) -> None:
    trace = Trace("over", 0.0, 60.0, np.full(20, 300.0 * 60))  # 300 items/s against at most 10 × 10/s
    r = run(tmp_path, trace, "surge", so=SO.format(max=10))
    (note,) = [w for w in warnings([r], 10) if PEAK in w]
    assert note.startswith("surge: reached maxReplicaCount (10)")
