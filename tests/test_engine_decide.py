"""KEDA's rules on top of the HPA: activation, cooldown, idle, fallback, modifiers, pause."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.engine.decide import (
    EngineState,
    Fallback,
    Modifiers,
    ScalingSpec,
    TriggerReading,
    TriggerSpec,
    decide,
)
from autoscaler.engine.formula import FormulaError, compute, parse

Q = TriggerSpec("queue", "AverageValue", 10)
T0 = 1_000.0


def spec(**kw: object) -> ScalingSpec:
    base: dict[str, object] = {"triggers": (Q,), "min_replicas": 0, "max_replicas": 20, "cooldown_seconds": 300}
    base.update(kw)
    return ScalingSpec(**base)  # type: ignore[arg-type]


def read(value: float, active: bool | None = None) -> dict[str, TriggerReading]:
    return {"queue": TriggerReading(value, value > 0 if active is None else active)}


def test_wakes_from_zero_to_one_then_hpa_scales() -> None:
    state = EngineState(created_at=T0)
    d = decide(spec(), read(95), current=0, ready=0, state=state, now=T0 + 10)
    assert (d.replicas, d.active, d.reason) == (1, True, "activated from zero/idle")
    d2 = decide(spec(), read(95), current=1, ready=1, state=d.state, now=T0 + 40)
    assert d2.replicas == 5  # ceil(95/10) = 10, but default policy allows max(1+4, 2×1) = 5 per 15 s
    d3 = decide(spec(), read(95), current=5, ready=5, state=d2.state, now=T0 + 70)
    assert d3.replicas == 10


def test_stays_at_zero_while_inactive() -> None:
    d = decide(spec(), read(0), current=0, ready=0, state=EngineState(created_at=T0), now=T0 + 10)
    assert d.replicas is None and not d.active and d.conditions["Active"].status is False


def test_cooldown_only_toward_zero() -> None:
    state = EngineState(created_at=T0, last_active_at=T0 + 100)
    early = decide(spec(), read(0), current=3, ready=3, state=state, now=T0 + 300)
    assert early.replicas != 0  # 200 s since active < cooldown 300: HPA may go down to 1, not 0
    late = decide(spec(), read(0), current=3, ready=3, state=state, now=T0 + 401)
    assert (late.replicas, late.reason) == (0, "cooldown elapsed, scale to zero")


def test_initial_cooldown_delays_first_scale_to_zero() -> None:
    state = EngineState(created_at=T0)
    s = spec(initial_cooldown_seconds=900, cooldown_seconds=0)
    assert decide(s, read(0), current=2, ready=2, state=state, now=T0 + 600).replicas != 0
    assert decide(s, read(0), current=2, ready=2, state=state, now=T0 + 901).replicas == 0


def test_idle_replica_count() -> None:
    s = spec(min_replicas=2, idle_replicas=0, cooldown_seconds=60)
    state = EngineState(created_at=T0, last_active_at=T0)
    assert decide(s, read(0), current=4, ready=4, state=state, now=T0 + 61).replicas == 0
    woke = decide(s, read(30), current=0, ready=0, state=state, now=T0 + 100)
    assert woke.replicas == 2  # wakes to minReplicaCount, not 1


def test_min_replicas_enforced_when_inactive() -> None:
    d = decide(spec(min_replicas=3), read(0), current=1, ready=1, state=EngineState(created_at=T0), now=T0)
    assert d.replicas == 3


def test_value_metric_type_scales_by_ratio_times_ready() -> None:
    s = spec(triggers=(TriggerSpec("queue", "Value", 100),))
    d = decide(s, read(300), current=2, ready=2, state=EngineState(created_at=T0), now=T0)
    assert d.replicas == 6


def test_max_across_triggers() -> None:
    s = spec(triggers=(Q, TriggerSpec("rps", "AverageValue", 50)))
    readings = {"queue": TriggerReading(20, True), "rps": TriggerReading(400, True)}
    d = decide(s, readings, current=4, ready=4, state=EngineState(created_at=T0), now=T0)
    assert d.replicas == 8  # queue asks 2, rps asks 8


@pytest.mark.parametrize(("behavior", "current", "expected"), [
    ("static", 7, 4), ("currentReplicas", 7, None), ("currentReplicasIfHigher", 7, None),
    ("currentReplicasIfHigher", 2, 4), ("currentReplicasIfLower", 7, 4), ("currentReplicasIfLower", 2, None),
])
def test_fallback_behaviors(behavior: str, current: int, expected: int | None) -> None:
    s = spec(fallback=Fallback(3, 4, behavior))  # type: ignore[arg-type]
    state = EngineState(created_at=T0)
    broken = {"queue": TriggerReading(error="redis unreachable")}
    for i in range(3):  # KEDA: fallback once NumberOfFailures > failureThreshold
        d = decide(s, broken, current=current, ready=current, state=state, now=T0 + i)
        state = d.state
        assert d.conditions["Fallback"].status is False and d.replicas is None  # below threshold: hold
    d = decide(s, broken, current=current, ready=current, state=state, now=T0 + 3)
    assert d.conditions["Fallback"].status is True
    assert d.replicas == expected
    recovered = decide(s, read(0), current=current, ready=current, state=d.state, now=T0 + 4)
    assert recovered.state.failures["queue"] == 0 and recovered.conditions["Fallback"].status is False


def test_scaling_modifiers_composite_metric() -> None:
    s = spec(triggers=(TriggerSpec("a"), TriggerSpec("b")),
             modifiers=Modifiers("a + b > 10 ? a + b : 0", target=5, activation_target=3))
    readings = {"a": TriggerReading(8, False), "b": TriggerReading(7, False)}
    d = decide(s, readings, current=1, ready=1, state=EngineState(created_at=T0), now=T0)
    assert d.active and d.replicas == 3  # 15 / 5; capped by policy (1+4) anyway
    quiet = {"a": TriggerReading(1, True), "b": TriggerReading(1, True)}
    assert not decide(s, quiet, current=0, ready=0, state=EngineState(created_at=T0), now=T0).active


def test_pause_annotations() -> None:
    state = EngineState(created_at=T0)
    assert decide(spec(paused=True), read(500), current=3, ready=3, state=state, now=T0).replicas is None
    assert decide(spec(paused_replicas=7), read(0), current=3, ready=3, state=state, now=T0).replicas == 7
    up_blocked = decide(spec(paused_scale_out=True), read(500), current=3, ready=3, state=state, now=T0)
    assert up_blocked.replicas is None
    down = decide(spec(paused_scale_in=True, cooldown_seconds=0), read(0), current=3, ready=3, state=state, now=T0)
    assert down.replicas is None


def test_state_round_trips_through_json() -> None:
    import json

    d = decide(spec(), read(95), current=1, ready=1, state=EngineState(created_at=T0), now=T0 + 40)
    again = EngineState.from_json(json.loads(json.dumps(d.state.to_json())))
    assert again == d.state


def test_formula_evaluator() -> None:
    env = {"a": 4.0, "b": 6.0, "gone": None}
    assert compute("(a + b) * 2 - 1", env) == 19
    assert compute("a > b ? a : b", env) == 6
    assert compute("gone ?? 3", env) == 3
    assert compute("max(a, b, 1) + floor(a / 3) + ceil(1.2) + abs(-2)", env) == 6 + 1 + 2 + 2
    assert compute("a == 4 && !(b < 5) || false", env) == 1
    assert compute("a % 3", env) == 1
    for bad, fragment in [("a +", "end of formula"), ("a $ b", "unexpected character"), ("exp(a)", "unknown function"),
                          ("gone + 1", "has no value"), ("a / 0", "division by zero"), ("c", "unknown name")]:
        with pytest.raises(FormulaError, match=fragment):
            compute(bad, env)
    assert parse("a ? b : a ? 1 : 2") is not None


@settings(max_examples=200)
@given(
    st.integers(0, 10), st.integers(0, 30), st.integers(0, 40),
    st.lists(st.tuples(st.floats(0, 1000, allow_nan=False), st.booleans()), min_size=1, max_size=12),
)
def test_properties(lo: int, span: int, start: int, polls: list[tuple[float, bool]]) -> None:
    """Within [min, max] (unless paused) and never to zero while a trigger is active."""
    s = spec(min_replicas=lo, max_replicas=lo + span + 1, cooldown_seconds=60)
    state, current = EngineState(created_at=0), min(start, lo + span + 1)
    for i, (value, active) in enumerate(polls):
        d = decide(s, read(value, active), current=current, ready=current, state=state, now=30.0 * i)
        state = d.state
        if d.replicas is not None:
            assert lo <= d.replicas <= s.max_replicas or (d.replicas == 0 and lo == 0)
            if active:
                assert d.replicas >= 1
            current = d.replicas


def test_spec_from_manifest() -> None:
    from autoscaler.engine.spec import scaling_spec
    from autoscaler.manifests.keda import ScaledObject

    so = ScaledObject.model_validate({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "w", "annotations": {"autoscaling.keda.sh/paused-scale-in": "true"}},
        "spec": {"scaleTargetRef": {"name": "w"}, "minReplicaCount": 1, "maxReplicaCount": 9,
                 "fallback": {"failureThreshold": 2, "replicas": 3},
                 "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                     "stabilizationWindowSeconds": 60,
                     "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}}}},
                 "triggers": [{"type": "redis", "name": "jobs", "metadata": {}}, {"type": "cron", "metadata": {}}]},
    })
    s = scaling_spec(so, {"jobs": 5.0})
    assert [t.name for t in s.triggers] == ["jobs", "cron#1"] and s.triggers[0].target == 5.0
    assert s.behavior.scale_down.stabilization_window_seconds == 60
    assert s.behavior.scale_down.policies[0].value == 1 and s.behavior.scale_up.policies[0].value == 4
    assert s.fallback is not None and s.fallback.replicas == 3 and s.paused_scale_in and not s.paused


def test_activation_does_not_count_against_hpa_policies() -> None:
    """KEDA wakes 0 → 1 outside the HPA, so the next HPA step may still add 4 pods (1 → 5)."""
    woke = decide(spec(), read(95), current=0, ready=0, state=EngineState(created_at=T0), now=T0)
    assert woke.replicas == 1 and woke.state.hpa.scale_up_events == []
    nxt = decide(spec(), read(95), current=1, ready=1, state=woke.state, now=T0 + 1)
    assert nxt.replicas == 5


BROKEN = {"queue": TriggerReading(error="redis unreachable")}


def test_a_failed_read_without_fallback_holds_instead_of_scaling_to_zero() -> None:
    state = EngineState(created_at=T0, last_active_at=T0)
    d = decide(spec(), BROKEN, current=3, ready=3, state=state, now=T0 + 3600)  # long past the cooldown
    assert d.replicas is None
    assert (d.conditions["Ready"].status, d.conditions["Ready"].reason) == (False, "TriggerError")
    assert d.state.failures["queue"] == 1 and d.state.last_active_at == T0


def test_partial_trigger_error_scales_out_but_never_in() -> None:
    s = spec(triggers=(Q, TriggerSpec("rps", "AverageValue", 50)))
    low = {"queue": TriggerReading(error="timeout"), "rps": TriggerReading(50, True)}
    d = decide(s, low, current=6, ready=6, state=EngineState(created_at=T0), now=T0)
    assert d.replicas is None  # rps alone asks 1: the HPA does not scale in while a metric is missing
    assert (d.conditions["Ready"].status, d.conditions["Ready"].reason) == (None, "PartialTriggerError")
    high = {"queue": TriggerReading(error="timeout"), "rps": TriggerReading(400, True)}
    assert decide(s, high, current=6, ready=6, state=EngineState(created_at=T0), now=T0).replicas == 8


def test_fallback_wakes_a_target_at_zero_then_the_hpa_reaches_it() -> None:
    s = spec(fallback=Fallback(1, 6))
    state = EngineState(created_at=T0)
    d = decide(s, BROKEN, current=0, ready=0, state=state, now=T0)
    assert d.replicas is None and d.conditions["Fallback"].status is False  # 1 failure, threshold 1
    d = decide(s, BROKEN, current=0, ready=0, state=d.state, now=T0 + 30)
    assert d.replicas == 1 and d.active  # fallback counts as active: activation to max(min, 1)
    d = decide(s, BROKEN, current=1, ready=1, state=d.state, now=T0 + 60)
    assert d.replicas == 5  # the HPA heads to 6 within its scale-up policy (max(1+4, 2×1) per 15 s)


def test_fallback_with_zero_replicas_falls_through_to_deactivation() -> None:
    # KEDA: with fallback.replicas == 0 an inactive, erroring object follows the normal cooldown path
    s = spec(fallback=Fallback(5, 0))
    d = decide(s, BROKEN, current=3, ready=3, state=EngineState(created_at=T0, last_active_at=T0), now=T0 + 3600)
    assert (d.replicas, d.reason) == (0, "cooldown elapsed, scale to zero")


@pytest.mark.parametrize(("current", "readings", "expected"), [
    (30, BROKEN, 20),            # above maxReplicaCount: clamped even while the trigger fails
    (30, {"queue": TriggerReading(900, True)}, 20),
    (25, {"queue": TriggerReading(10, True)}, 20),  # not rate-limited: the HPA sets max directly
    (1, {"queue": TriggerReading(5, True)}, 3),     # below minReplicaCount while active
    (1, BROKEN, 3),
])
def test_hpa_clamps_current_replicas_into_min_max(current: int, readings: dict[str, TriggerReading],
                                                  expected: int) -> None:
    s = spec(min_replicas=3, max_replicas=20)
    d = decide(s, readings, current=current, ready=current, state=EngineState(created_at=T0), now=T0)
    assert d.replicas == expected


@settings(max_examples=300, deadline=None)
@given(current=st.integers(0, 60), min_r=st.integers(0, 5), max_r=st.integers(5, 40),
       last_active=st.one_of(st.none(), st.floats(0, 5000)), now=st.floats(0, 10_000),
       others=st.lists(st.tuples(st.floats(0, 1e4), st.booleans()), max_size=2))
def test_a_failed_read_never_moves_replicas_except_into_bounds(current: int, min_r: int, max_r: int,
                                                                last_active: float | None, now: float,
                                                                others: list[tuple[float, bool]]) -> None:
    """Whatever the history: a failing trigger without fallback never lowers the replicas, except
    where the HPA clamps them into [max(min, 1), max]."""
    triggers = (Q, *(TriggerSpec(f"t{i}", "AverageValue", 10) for i in range(len(others))))
    readings = {"queue": TriggerReading(error="boom"),
                **{f"t{i}": TriggerReading(v, a) for i, (v, a) in enumerate(others)}}
    s = spec(triggers=triggers, min_replicas=min_r, max_replicas=max_r)
    d = decide(s, readings, current=current, ready=current, state=EngineState(0.0, last_active), now=now)
    if d.replicas is not None and d.replicas < current:
        assert current > max_r and d.replicas == max_r
    if d.replicas is not None and not others:  # nothing else to go by: only the clamps move it
        assert current > 0 and d.replicas in (max_r, max(min_r, 1))
