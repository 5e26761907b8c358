"""The simulator's HTTP workload follows the interceptor: requests held at zero until a pod is
ready, dropped past the route's readiness timeout, scaled on concurrency or request rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from autoscaler.simulate.inputs import InputError, build_setup
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import simulate
from autoscaler.simulate.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "http-app.yaml"


def httpso(tmp_path: Path, **spec: object) -> Path:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["spec"].update(spec)
    path = tmp_path / "httpso.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_an_http_scaled_object_becomes_the_interceptor_workload(tmp_path: Path) -> None:
    setup, _ = build_setup(EXAMPLE)
    assert setup.http and setup.http_timeout_s == 120 and setup.polling_interval_s < 1
    (trig,) = setup.triggers
    assert (trig.signal, trig.target) == ("backlog+inflight", 10.0)  # concurrency: held + in flight
    assert setup.spec.max_replicas == 60 and setup.spec.cooldown_seconds == 300
    rate, notes = build_setup(httpso(tmp_path, scalingMetric={"requestRate": {"targetValue": 8, "window": "2m"}}))
    assert (rate.triggers[0].signal, rate.triggers[0].target) == ("rate", 8.0)
    assert any("60 s window" in n for n in notes)
    with pytest.raises(InputError, match=r"HTTPScaledObject/inference-worker: .*port"):
        build_setup(httpso(tmp_path, scaleTargetRef={"name": "x", "service": "s"}))


@pytest.mark.parametrize("policy", ["keda-karpenter", "surge"])
def test_requests_at_zero_are_held_up_to_the_readiness_timeout(tmp_path: Path, policy: str) -> None:
    trace = Trace("burst", 0.0, 60.0, np.array([600.0] * 5 + [0.0] * 10))  # 10 req/s from cold, then quiet
    a = Assumptions(scale=1.0)
    held, _ = build_setup(httpso(tmp_path, timeouts={"conditionWait": "300s"}), assumptions=a)
    patient = simulate(trace, held, policy_named(policy), a)
    assert patient.dropped == 0 and patient.processed == pytest.approx(3000)  # held through the cold start
    assert patient.wait_p99_s >= a.pod_start_s  # the first requests waited for a pod
    short, _ = build_setup(httpso(tmp_path, timeouts={"conditionWait": "5s"}), assumptions=a)
    impatient = simulate(trace, short, policy_named(policy), a)
    assert impatient.dropped > 0  # a node and a pod take longer than 5 s: those requests got 504
    assert impatient.processed + impatient.dropped == pytest.approx(3000)
