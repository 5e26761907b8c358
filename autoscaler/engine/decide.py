"""One decision for one ScaledObject: KEDA's executor on top of the HPA arithmetic.

`decide()` is the single function the live operator and the simulator both call. It takes the
spec, this poll's trigger readings, the target's replicas and the engine's remembered state,
and returns the replicas to write (or None to leave the target alone), the new state and the
conditions to publish. KEDA's rules, in order:

1. paused (annotation) → hold, or hold at `paused-replicas`;
2. fallback → a trigger failing more than `failureThreshold` times in a row proposes
   `fallback.replicas` (per `fallback.behavior`) to the HPA and counts as active;
3. activity → any trigger active (or the scalingModifiers composite above activationTarget);
4. active at 0/idle → wake to max(min, 1); inactive → after `cooldownPeriod` since last active
   (and past `initialCooldownPeriod`) go to idleReplicaCount or minReplicaCount (possibly 0) —
   but never because a read failed: an erroring trigger without an engaged fallback holds the
   replicas (Ready=False TriggerError, or Unknown PartialTriggerError when another is active);
5. HPA (not at zero): current above max / below max(min,1) is clamped first; then the max over
   metric proposals, stabilization, policies — and no scale-in while a metric is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from autoscaler.engine.formula import FormulaError, compute, evaluate, parse
from autoscaler.engine.hpa import Behavior, HPAState, MetricType, normalize, record_scale, replicas_for_metric

FORMULA = "scalingModifiers.formula"  # the composite's key in EngineState.failures
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
    # the ScaledObject sets behavior.scaleDown: obeyed as the HPA would (`engine.follow.surge_defaults`)
    scale_down_given: bool = False


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
    status: bool | None  # None: Unknown
    reason: str
    message: str = ""


@dataclass
class Decision:
    replicas: int | None  # None: leave the target as it is
    state: EngineState
    active: bool
    conditions: dict[str, Condition]
    reason: str


# The conditions of the usual decision, shared (Condition is frozen): built once, not on every poll
_UNPAUSED = Condition(False, "ScaledObjectUnpaused")
_NO_FALLBACK = Condition(False, "NoFallbackFound")
_READY = Condition(True, "ScaledObjectReady")
_ACTIVE = Condition(True, "ScalerActive")
_NOT_ACTIVE = Condition(False, "ScalerNotActive")
_NO_READING = TriggerReading(error="no reading")


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
    conditions["Paused"] = _UNPAUSED

    # 2. failures and fallback: a trigger failing more than failureThreshold times in a row reads as
    # the fallback's replicas (KEDA feeds the HPA fallback.replicas × target for it), and counts as active
    fb = spec.fallback
    # fallback.behavior scalingModifiers: a failing trigger reads as nil in the formula (for `??`), and
    # only a formula that is nil as a whole falls back (to fallback.replicas × target), as KEDA does
    modifier_fallback = fb is not None and fb.behavior == "scalingModifiers" and spec.modifiers is not None
    values: dict[str, float | None] = {}
    failing: list[str] = []  # erroring, no fallback (yet): their metric is missing
    falling_back: list[TriggerSpec] = []
    for trig in spec.triggers:
        reading = readings.get(trig.name, _NO_READING)
        if reading.error is not None:
            state.failures[trig.name] = n = state.failures.get(trig.name, 0) + 1
            values[trig.name] = None
            (falling_back.append(trig) if fb is not None and not modifier_fallback and n > fb.failure_threshold
             else failing.append(trig.name))
        else:
            state.failures[trig.name] = 0
            values[trig.name] = reading.value
    fallback_active = bool(falling_back)
    if fallback_active:
        assert fb is not None
        fallback_to = _fallback_replicas(fb, current)
        conditions["Fallback"] = Condition(True, "FallbackExists",
                                           f"failing triggers: {[t.name for t in falling_back]}")
    else:
        conditions["Fallback"] = _NO_FALLBACK

    # 3. activity and the metrics the HPA sees
    metrics: list[tuple[MetricType, float, float]] = []
    if spec.modifiers is not None:
        mods = spec.modifiers
        composite: float | None = None
        if not fallback_active and (not failing or modifier_fallback):
            try:
                if modifier_fallback and failing and evaluate(parse(mods.formula), values) is None:
                    assert fb is not None
                    composite = fb.replicas * mods.target
                else:
                    composite = compute(mods.formula, values)
                state.failures[FORMULA] = 0
                if modifier_fallback and failing:  # the formula covered the failing triggers: its value stands
                    conditions["Fallback"] = Condition(True, "FallbackExists",
                                                       f"scalingModifiers, failing triggers: {failing}")
                    failing = []
            except FormulaError as exc:
                # the formula is one more scaler (KEDA's composite): its error counts toward the fallback
                state.failures[FORMULA] = n = state.failures.get(FORMULA, 0) + 1
                conditions["Ready"] = Condition(False, "ScalingModifiersError", str(exc))
                if fb is not None and n > fb.failure_threshold:
                    fallback_active = True
                    fallback_to = _fallback_replicas(fb, current)
                    conditions["Fallback"] = Condition(True, "FallbackExists", f"failing triggers: {[FORMULA]}")
                else:
                    failing.append(FORMULA)
        if fallback_active:  # the composite metric itself falls back
            active = True
            metrics.append(("AverageValue", fallback_to * mods.target, mods.target))
        elif composite is None:
            active = False
        else:
            active = composite > mods.activation_target
            metrics.append((mods.metric_type, composite, mods.target))
    else:
        active = fallback_active or any(readings[t.name].active for t in spec.triggers if values[t.name] is not None)
        metrics = [(t.metric_type, v, t.target) for t in spec.triggers if (v := values[t.name]) is not None]
        metrics += [("AverageValue", fallback_to * t.target, t.target) for t in falling_back]
    message = f"failing triggers: {failing}" if failing else ""
    if failing and active:  # KEDA: some triggers active, some erroring
        conditions.setdefault("Ready", Condition(None, "PartialTriggerError", message))
    elif failing and fb is None:
        conditions.setdefault("Ready", Condition(False, "TriggerError", message))
    if "Ready" not in conditions:
        conditions["Ready"] = Condition(True, "ScaledObjectReady", message) if message else _READY
    conditions["Active"] = (_ACTIVE if active is True else _NOT_ACTIVE if active is False
                            else Condition(active, "ScalerActive" if active else "ScalerNotActive"))

    hpa_min = max(spec.min_replicas, 1)
    # 4. KEDA's executor: activation from zero/idle, deactivation after the cooldown
    if active:
        if (spec.idle_replicas is not None and current < spec.min_replicas) or current == 0:
            state.last_active_at = now
            if spec.paused_scale_out:
                return _finish(spec, state, current, None, now, conditions, True, "scale-out paused")
            return _finish(spec, state, current, hpa_min, now, conditions, True, "activated from zero/idle")
        if not failing:
            state.last_active_at = now
    elif failing and (fb is None or fb.replicas != 0):
        # a read failed: never a reason to scale in (KEDA waits for the fallback, or does nothing)
        pass
    elif (spec.idle_replicas is not None and current > spec.idle_replicas) or (current > 0 and spec.min_replicas == 0):
        floor = spec.idle_replicas if spec.idle_replicas is not None else spec.min_replicas
        since_active = now - (state.last_active_at if state.last_active_at is not None else state.created_at)
        in_initial = now - state.created_at < spec.initial_cooldown_seconds
        if since_active >= spec.cooldown_seconds and not in_initial:
            return _finish(spec, state, current, floor, now, conditions, False, "cooldown elapsed, scale to "
                           + ("idle" if spec.idle_replicas is not None else "zero" if floor == 0 else "min"))
        # still cooling down: the HPA keeps acting on the metrics, never below max(min, 1)
    elif spec.idle_replicas is None and current < spec.min_replicas:
        return _finish(spec, state, current, spec.min_replicas, now, conditions, False, "below minReplicaCount")

    # 5. the HPA (disabled while the target is at zero)
    if current == 0:
        return _finish(spec, state, current, None, now, conditions, active, "inactive at idle/zero")
    if current > spec.max_replicas:
        return _finish(spec, state, current, spec.max_replicas, now, conditions, active,
                       "hpa: current replicas above maxReplicaCount", by_hpa=True)
    if current < hpa_min:
        return _finish(spec, state, current, hpa_min, now, conditions, active,
                       "hpa: current replicas below minReplicaCount", by_hpa=True)
    if not metrics:
        return _finish(spec, state, current, None, now, conditions, active,
                       "no valid metric; holding" + (" (a read failed)" if failing else ""))
    if len(metrics) == 1:  # the usual case, without a generator
        one_type, one_value, one_target = metrics[0]
        desired = replicas_for_metric(one_type, one_value, one_target, current, ready, spec.behavior)
    else:
        desired = max(replicas_for_metric(mt, value, target, current, ready, spec.behavior)
                      for mt, value, target in metrics)
    if failing and desired < current:  # the HPA never scales in while one of its metrics is missing
        return _finish(spec, state, current, None, now, conditions, active,
                       f"holding: triggers {failing} failed, the others would scale in")
    result, why = normalize(desired, current, hpa_min, spec.max_replicas, state.hpa, spec.behavior, now)
    return _finish(spec, state, current, result, now, conditions, active,
                   ("fallback, " if fallback_active else "") + f"hpa: {why}", by_hpa=True)


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

