"""surge's own scale-down default (`engine.follow`): step down after FOLLOW_WORK_WINDOW_S of lower
recommendations when the ScaledObject sets no scaleDown; any explicit scaleDown is the HPA's. It
ships on (FOLLOW_WORK_ON); switched off it leaves the HPA's semantics and PROTECT_S untouched."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.engine.decide import EngineState, ScalingSpec, TriggerReading, decide
from autoscaler.engine.follow import (
    AHEAD_PROTECT_MIN_S,
    FOLLOW_WORK_ON,
    FOLLOW_WORK_WINDOW_S,
    SATURATED_FACTOR,
    SATURATED_HOLD_ON,
    SATURATED_WINDOW_S,
    ahead_protection_s,
    surge_defaults,
)
from autoscaler.engine.spec import scaling_spec
from autoscaler.manifests.keda import ScaledObject
from provisioner.disruption import PROTECT_S

T0 = 1_000_000.0


def manifest(behavior: dict[str, Any] | None = None) -> ScaledObject:
    spec: dict[str, Any] = {"scaleTargetRef": {"name": "w"}, "minReplicaCount": 1, "maxReplicaCount": 50,
                            "triggers": [{"type": "kafka", "name": "lag", "metadata": {}}]}
    if behavior is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    return ScaledObject.model_validate({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                        "metadata": {"name": "w"}, "spec": spec})


def after_spike(spec: ScalingSpec, quiet_s: float) -> int:
    """Replicas after a spike (lag 200, target 10 → 20 pods) followed by `quiet_s` seconds of lag
    20 (2 pods' worth) from 10 replicas, read every second as the lag watch does."""
    state, current = EngineState(created_at=T0), 10
    lag = {"lag": TriggerReading(200.0, True)}
    d = decide(spec, lag, current, current, state, T0)
    assert d.replicas == 20, d.reason
    return quiet_for(spec, d.state, 20, quiet_s)


def quiet_for(spec: ScalingSpec, state: EngineState, current: int, quiet_s: float) -> int:
    """Replicas after `quiet_s` seconds of lag 20 (2 pods' worth), read every second from T0."""
    quiet = {"lag": TriggerReading(20.0, True)}
    for s in range(1, int(quiet_s) + 1):
        d = decide(spec, quiet, current, current, state, T0 + s)
        state, current = d.state, d.replicas if d.replicas is not None else current
    return current


def test_without_a_scale_down_surge_steps_down_once_the_work_has_been_gone_for_its_window() -> None:
    spec = surge_defaults(scaling_spec(manifest(), {"lag": 10.0}), on=True)
    assert spec.behavior.scale_down.stabilization_window_seconds == FOLLOW_WORK_WINDOW_S < 300
    assert after_spike(spec, FOLLOW_WORK_WINDOW_S - 1) == 20  # still inside the window
    assert after_spike(spec, FOLLOW_WORK_WINDOW_S + 2) == 2  # the spike's pods are given back
    # KEDA + HPA on the same readings hold the spike for the default 300 s
    keda = scaling_spec(manifest(), {"lag": 10.0})
    assert after_spike(keda, FOLLOW_WORK_WINDOW_S + 2) == 20
    assert after_spike(keda, 302) == 2


@pytest.mark.parametrize("scale_down", [
    {"policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},  # no window: the HPA's 300 s
    {"stabilizationWindowSeconds": 300},
    {"selectPolicy": "Max"},
])
def test_an_explicit_scale_down_is_obeyed_exactly_as_the_hpa_would(scale_down: dict[str, Any]) -> None:
    raw = scaling_spec(manifest({"scaleDown": scale_down}), {"lag": 10.0})
    spec = surge_defaults(raw, on=True)
    assert spec == raw and spec.scale_down_given
    assert after_spike(spec, FOLLOW_WORK_WINDOW_S + 2) == 20
    assert ahead_protection_s(spec, on=True) == 300


def test_a_scale_up_setting_alone_keeps_surges_scale_down() -> None:
    up = {"scaleUp": {"stabilizationWindowSeconds": 0}}
    spec = surge_defaults(scaling_spec(manifest(up), {"lag": 10.0}), on=True)
    assert not spec.scale_down_given
    assert spec.behavior.scale_down.stabilization_window_seconds == FOLLOW_WORK_WINDOW_S


@pytest.mark.parametrize(("window", "protect"), [(None, max(FOLLOW_WORK_WINDOW_S, AHEAD_PROTECT_MIN_S)),
                                                 (0, AHEAD_PROTECT_MIN_S), (600, 600)])
def test_nodes_launched_ahead_are_protected_as_long_as_the_engine_holds_their_replicas(
        window: int | None, protect: float) -> None:
    behavior = None if window is None else {"scaleDown": {"stabilizationWindowSeconds": window}}
    spec = surge_defaults(scaling_spec(manifest(behavior), {"lag": 10.0}), on=True)
    assert ahead_protection_s(spec, on=True) == protect


def test_as_shipped_the_operator_follows_the_work() -> None:
    """The shipped state (FOLLOW_WORK_ON): the defaults apply without passing `on`."""
    raw = scaling_spec(manifest(), {"lag": 10.0})
    assert FOLLOW_WORK_ON
    assert surge_defaults(raw) == surge_defaults(raw, on=True) != raw
    assert ahead_protection_s(surge_defaults(raw)) == max(FOLLOW_WORK_WINDOW_S, AHEAD_PROTECT_MIN_S) < PROTECT_S
    assert after_spike(surge_defaults(raw), FOLLOW_WORK_WINDOW_S + 2) == 2


def test_switched_off_the_operator_decides_as_the_hpa_and_protects_for_protect_s() -> None:
    """`surge-no-follow-work` (on=False): nothing of the HPA's semantics changes."""
    raw = scaling_spec(manifest(), {"lag": 10.0})
    assert surge_defaults(raw, on=False) == raw
    assert ahead_protection_s(raw, on=False) == ahead_protection_s(surge_defaults(raw, on=False), on=False) == PROTECT_S
    assert after_spike(surge_defaults(raw, on=False), FOLLOW_WORK_WINDOW_S + 2) == 20


def after_saturated_spike(spec: ScalingSpec, quiet_s: float, spike_lag: float) -> int:
    """Replicas `quiet_s` seconds after a spike of lag `spike_lag` (target 10) read at 30 replicas
    (the manifest's maxReplicaCount is 50), then lag 20 (2 pods' worth) read every second."""
    d = decide(spec, {"lag": TriggerReading(spike_lag, True)}, 30, 30, EngineState(created_at=T0), T0)
    return quiet_for(spec, d.state, d.replicas if d.replicas is not None else 30, quiet_s)


def test_with_the_saturated_hold_surge_holds_for_the_hpas_300_s_after_running_at_max_replicas() -> None:
    """A spike whose recommendation reached maxReplicaCount (lag 600 → 60 pods, max 50): its backlog
    can only be worked off by keeping capacity, so the hold keeps the HPA's 300 s; one just below
    the maximum (lag 490 → 49 pods) is given back after surge's own window (factor 1 here)."""
    raw = scaling_spec(manifest(), {"lag": 10.0})
    spec = surge_defaults(raw, on=True, saturated_hold=True, saturated_factor=1.0)
    assert spec.behavior.scale_down.saturated_window_seconds == SATURATED_WINDOW_S == 300
    assert after_saturated_spike(spec, FOLLOW_WORK_WINDOW_S + 2, 600.0) == 50
    assert after_saturated_spike(spec, SATURATED_WINDOW_S - 1, 600.0) == 50
    assert after_saturated_spike(spec, SATURATED_WINDOW_S + 2, 600.0) == 2
    assert after_saturated_spike(spec, FOLLOW_WORK_WINDOW_S - 1, 490.0) == 49
    assert after_saturated_spike(spec, FOLLOW_WORK_WINDOW_S + 2, 490.0) == 2


@pytest.mark.parametrize("scale_down", [{"stabilizationWindowSeconds": 60}, {"stabilizationWindowSeconds": 0}])
def test_an_explicit_scale_down_window_is_not_lengthened_by_saturation(scale_down: dict[str, Any]) -> None:
    raw = scaling_spec(manifest({"scaleDown": scale_down}), {"lag": 10.0})
    spec = surge_defaults(raw, on=True, saturated_hold=True)
    assert spec == raw and spec.behavior.scale_down.saturated_window_seconds == 0
    assert after_saturated_spike(spec, scale_down["stabilizationWindowSeconds"] + 2, 600.0) == 2


def test_as_shipped_the_saturated_hold_counts_only_recommendations_beyond_twice_the_maximum() -> None:
    """Shipped: factor 2 — a spike to 60 pods' worth (max 50) is not saturation, one to 120 is."""
    assert SATURATED_HOLD_ON and SATURATED_FACTOR == 2.0
    spec = surge_defaults(scaling_spec(manifest(), {"lag": 10.0}))
    assert after_saturated_spike(spec, FOLLOW_WORK_WINDOW_S + 2, 600.0) == 2
    assert after_saturated_spike(spec, FOLLOW_WORK_WINDOW_S + 2, 1200.0) == 50
