"""The simulator says what happened (found running `surge simulate` over the shared traces and
Karpenter's examples): every run claimed "reached maxReplicaCount ... cannot serve the peak" after a
cold start's burst to the maximum, and pods no NodePool could hold ran as a $0 simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.simulate.inputs import InputError, build_setup
from autoscaler.simulate.policy import Assumptions
from autoscaler.simulate.report import warnings
from autoscaler.simulate.trace import Trace
from tests.test_simulate import SO, files, run

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


def test_pods_no_nodepool_can_hold_are_an_input_error(tmp_path: Path) -> None:
    # Karpenter's GPU pattern: a tainted GPU NodePool and a Deployment without the toleration
    paths = files(tmp_path)
    paths["np"].write_text(paths["np"].read_text().replace(
        "      requirements:", '      taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]\n'
                              "      requirements:"))
    with pytest.raises(InputError, match=r"Deployment/worker: its pods fit no NodePool \(NodePool default: "
                                         r"taint nvidia.com/gpu=true:NoSchedule not tolerated\)"):
        build_setup(paths["so"], [paths["np"]], paths["dep"], Assumptions())
    paths["dep"].write_text(paths["dep"].read_text().replace(
        "containers:", "tolerations: [{key: nvidia.com/gpu, operator: Exists}]\n      containers:"))
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], Assumptions())
    assert setup.pods.requests.cpu_m == 1000
