"""One decision for one ScaledObject: KEDA's executor on top of the HPA arithmetic.

`decide()` is the single function the live operator and the simulator both call. It takes the
spec, this poll's trigger readings, the target's replicas and the engine's remembered state,
and returns the replicas to write (or None to leave the target alone), the new state and the
conditions to publish. KEDA's rules, in order:

1. paused (annotation) → hold, or hold at `paused-replicas`;
2. fallback → a trigger failing `failureThreshold` times in a row reads as `fallback.replicas`;
3. activity → any trigger active (or the scalingModifiers composite above activationTarget);
4. inactive → after `cooldownPeriod` since last active (and past `initialCooldownPeriod`) go to
   idleReplicaCount or minReplicaCount (possibly 0); never below min otherwise;
5. active at 0/idle → wake to max(min, 1);
6. active → HPA: max over metric proposals, stabilization, policies, clamped to [max(min,1), max].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from autoscaler.engine.formula import FormulaError, compute, evaluate, parse
from autoscaler.engine.hpa import Behavior, HPAState, MetricType, normalize, record_scale, replicas_for_metric

FallbackBehavior = Literal["static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower",
                          "scalingModifiers"]


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    metric_type: MetricType = "AverageValue"
    target: float = 1.0


@dataclass(frozen=True)
class Fallback:
    failure_threshold: int
    replicas: int
    behavior: FallbackBehavior = "static"


@dataclass(frozen=True)
class Modifiers:
    formula: str
    target: float
    activation_target: float = 0.0
    metric_type: MetricType = "AverageValue"


@dataclass(frozen=True)
class ScalingSpec:
    triggers: tuple[TriggerSpec, ...]
    min_replicas: int = 0
    max_replicas: int = 100
    idle_replicas: int | None = None
    cooldown_seconds: float = 300
    initial_cooldown_seconds: float = 0
    behavior: Behavior = field(default_factory=Behavior)
    fallback: Fallback | None = None
    modifiers: Modifiers | None = None
    paused: bool = False
    paused_replicas: int | None = None
    paused_scale_in: bool = False
    paused_scale_out: bool = False


@dataclass(frozen=True)
class TriggerReading:
    """A poll's outcome for one trigger: its metric value and activity, or an error."""

    value: float | None = None
    active: bool = False
    error: str | None = None


@dataclass
class EngineState:
    created_at: float
    last_active_at: float | None = None
    failures: dict[str, int] = field(default_factory=dict)
    hpa: HPAState = field(default_factory=HPAState)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EngineState:
        hpa = data.get("hpa", {})
        return cls(
            created_at=float(data["created_at"]),
            last_active_at=data.get("last_active_at"),
            failures=dict(data.get("failures", {})),
            hpa=HPAState(*(list(map(tuple, hpa.get(k, []))) for k in
                           ("recommendations", "scale_up_events", "scale_down_events"))),
        )


@dataclass(frozen=True)
class Condition:
    status: bool
    reason: str
    message: str = ""


@dataclass
class Decision:
    replicas: int | None  # None: leave the target as it is
    state: EngineState
    active: bool
    conditions: dict[str, Condition]
    reason: str


def _fallback_replicas(fb: Fallback, current: int) -> int:
    if fb.behavior == "currentReplicas":
        return current
    if fb.behavior == "currentReplicasIfHigher":
        return max(current, fb.replicas)
    if fb.behavior == "currentReplicasIfLower":
        return min(current, fb.replicas)
    return fb.replicas


def decide(
    spec: ScalingSpec,
    readings: Mapping[str, TriggerReading],
    current: int,
    ready: int,
    state: EngineState,
    now: float,
) -> Decision:
    hpa = state.hpa  # copied field by field: dataclasses.replace costs more than a decision's arithmetic
    state = EngineState(state.created_at, state.last_active_at, dict(state.failures),
                        HPAState(hpa.recommendations, hpa.scale_up_events, hpa.scale_down_events))
    conditions: dict[str, Condition] = {}

    # 1. pause
    if spec.paused or spec.paused_replicas is not None:
        conditions["Paused"] = Condition(True, "ScaledObjectPaused", "autoscaling is paused by annotation")
        target = spec.paused_replicas
        return Decision(target if target is not None and target != current else None, state, False, conditions,
                        "paused")
    conditions["Paused"] = Condition(False, "ScaledObjectUnpaused")

    # 2. failures and fallback
    fallback_active = False
    values: dict[str, float | None] = {}
    for trig in spec.triggers:
        reading = readings.get(trig.name, TriggerReading(error="no reading"))
        if reading.error is not None:
            state.failures[trig.name] = state.failures.get(trig.name, 0) + 1
            values[trig.name] = None
        else:
            state.failures[trig.name] = 0
            values[trig.name] = reading.value
    failing = [t for t in spec.triggers if values[t.name] is None]
    # fallback.behavior scalingModifiers: a failing trigger reads as nil in the formula (for `??`), and
    # only a formula that is nil as a whole falls back (to fallback.replicas × target), as KEDA does
    modifier_fallback = spec.fallback is not None and spec.fallback.behavior == "scalingModifiers"
    if spec.fallback is not None and not modifier_fallback and any(
            state.failures[t.name] >= spec.fallback.failure_threshold for t in failing):
        fallback_active = True
        replicas = _fallback_replicas(spec.fallback, current)
        conditions["Fallback"] = Condition(True, "FallbackExists", f"failing triggers: {[t.name for t in failing]}")
    else:
        conditions["Fallback"] = Condition(False, "NoFallbackFound")

    # 3. activity and the metrics the HPA sees
    metrics: list[tuple[MetricType, float, float]] = []
    if spec.modifiers is not None:
        try:
            if modifier_fallback and spec.fallback is not None and evaluate(parse(spec.modifiers.formula),
                                                                            values) is None:
                composite = spec.fallback.replicas * spec.modifiers.target
            else:
                composite = compute(spec.modifiers.formula, values)
            active = composite > spec.modifiers.activation_target
            metrics.append((spec.modifiers.metric_type, composite, spec.modifiers.target))
        except FormulaError as exc:
            active = False
            conditions["Ready"] = Condition(False, "ScalingModifiersError", str(exc))
    else:
        active = any(readings.get(t.name, TriggerReading()).active for t in spec.triggers if values[t.name] is not None)
        metrics = [(t.metric_type, v, t.target) for t in spec.triggers if (v := values[t.name]) is not None]
    conditions.setdefault("Ready", Condition(not failing or fallback_active,
                                             "ScaledObjectReady" if not failing else "TriggerError",
                                             "" if not failing else f"failing triggers: {[t.name for t in failing]}"))
    if active:
        state.last_active_at = now
    conditions["Active"] = Condition(active or fallback_active, "ScalerActive" if active else "ScalerNotActive")

    if fallback_active:
        return _finish(spec, state, current, replicas, now, conditions, True, "fallback")

    hpa_min = max(spec.min_replicas, 1)
    # 4. inactive
    if not active:
        floor = spec.idle_replicas if spec.idle_replicas is not None else spec.min_replicas
        if current > floor and floor < hpa_min:
            since_active = now - (state.last_active_at if state.last_active_at is not None else state.created_at)
            in_initial = now - state.created_at < spec.initial_cooldown_seconds
            if since_active >= spec.cooldown_seconds and not in_initial:
                return _finish(spec, state, current, floor, now, conditions, False, "cooldown elapsed, scale to "
                               + ("idle" if spec.idle_replicas is not None else "zero" if floor == 0 else "min"))
            # still cooling down: the HPA keeps acting on the metrics, never below max(min, 1)
        elif current < spec.min_replicas:
            return _finish(spec, state, current, spec.min_replicas, now, conditions, False, "below minReplicaCount")
        elif current <= floor:
            return _finish(spec, state, current, None, now, conditions, False, "inactive at idle/zero")
    # 5. waking from zero or idle
    if active and current < hpa_min:
        if spec.paused_scale_out:
            return _finish(spec, state, current, None, now, conditions, True, "scale-out paused")
        return _finish(spec, state, current, hpa_min, now, conditions, True, "activated from zero/idle")
    # 6. HPA
    if not metrics:
        return _finish(spec, state, current, None, now, conditions, active, "no valid metric; holding")
    desired = max(replicas_for_metric(mt, value, target, current, ready, spec.behavior)
                  for mt, value, target in metrics)
    result, why = normalize(desired, current, hpa_min, spec.max_replicas, state.hpa, spec.behavior, now)
    return _finish(spec, state, current, result, now, conditions, active, f"hpa: {why}", by_hpa=True)


def _finish(
    spec: ScalingSpec, state: EngineState, current: int, target: int | None, now: float,
    conditions: dict[str, Condition], active: bool, reason: str, by_hpa: bool = False,
) -> Decision:
    if target is not None and ((spec.paused_scale_in and target < current)
                               or (spec.paused_scale_out and target > current)):
        target = None
        reason += " (blocked by paused-scale-in/out)"
    if by_hpa and target is not None and target != current:
        # only the HPA's own changes count against its policies; KEDA's 0↔1 and idle moves do not
        record_scale(state.hpa, current, target, now)
    return Decision(None if target is None or target == current else target, state, active, conditions, reason)

