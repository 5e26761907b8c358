"""The Kubernetes HPA's replica arithmetic for external metrics, and its scaling behavior.

Follows kube-controller-manager's podautoscaler (replica calculator + normalizeDesiredReplicas
WithBehaviors): per-metric proposals with a tolerance band, the maximum across metrics, then
stabilization windows over past recommendations and rate limits from scaling policies measured
against the scale events of each policy's period. Time is passed in (seconds, any epoch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["AverageValue", "Value"]
SelectPolicy = Literal["Max", "Min", "Disabled"]
DEFAULT_TOLERANCE = 0.1


@dataclass(frozen=True)
class Policy:
    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[Policy, ...]
    tolerance: float = DEFAULT_TOLERANCE
    # not the HPA's: surge's (`engine.follow`). While a recommendation within this many seconds
    # reached maxReplicaCount, the window is this long instead (0: never, the HPA's semantics)
    saturated_window_seconds: int = 0
    saturated_factor: float = 1.0  # "reached": a recommendation ≥ maxReplicaCount × this


# Kubernetes' defaults (autoscaling/v2 SetDefaults_HorizontalPodAutoscalerBehavior)
DEFAULT_SCALE_UP = Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN


@dataclass
class HPAState:
    """What the HPA remembers between decisions: recommendations and scale events (time, amount)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up_events: list[tuple[float, int]] = field(default_factory=list)
    scale_down_events: list[tuple[float, int]] = field(default_factory=list)


def within_tolerance(ratio: float, behavior: Behavior) -> bool:
    if ratio > 1.0:
        return ratio - 1.0 <= behavior.scale_up.tolerance
    return 1.0 - ratio <= behavior.scale_down.tolerance


def replicas_for_metric(
    metric_type: MetricType,
    value: float,
    target: float,
    current: int,
    ready: int,
    behavior: Behavior | None = None,
) -> int:
    """One external metric's proposal (replica_calculator GetExternal[PerPod]MetricReplicas)."""
    behavior = behavior or Behavior()
    if metric_type == "AverageValue":
        if current > 0 and within_tolerance(value / (target * current), behavior):
            return current
        return math.ceil(value / target)
    ratio = value / target
    if current == 0:
        return math.ceil(ratio)
    if within_tolerance(ratio, behavior):
        return current
    return math.ceil(ratio * ready)


def _change_in_period(events: Sequence[tuple[float, int]], period: int, now: float) -> int:
    cutoff = now - period
    return sum(amount for t, amount in events if t > cutoff)


def scale_up_limit(current: int, state: HPAState, rules: Rules, now: float) -> int:
    """Most replicas the policies allow now: each policy's period starts from the replica count at
    its beginning (current minus net scale-ups inside the period)."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = (current - _change_in_period(state.scale_up_events, p.period_seconds, now)
                 + _change_in_period(state.scale_down_events, p.period_seconds, now))
        proposals.append(start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select_policy == "Max" else min(proposals)


def scale_down_limit(current: int, state: HPAState, rules: Rules, now: float) -> int:
    """Fewest replicas the policies allow now (mirror image of scale_up_limit)."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = (current + _change_in_period(state.scale_down_events, p.period_seconds, now)
                 - _change_in_period(state.scale_up_events, p.period_seconds, now))
        proposals.append(start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100)))
    if not proposals:
        return current
    return min(proposals) if rules.select_policy == "Max" else max(proposals)


def stabilize(desired: int, current: int, state: HPAState, behavior: Behavior, now: float,
              max_replicas: int | None = None) -> int:
    """Lowest recommendation within the scale-up window bounds scale-up, highest within the
    scale-down window bounds scale-down; the unstabilized `desired` is recorded.

    With `scale_down.saturated_window_seconds` (surge's, `engine.follow`) and `max_replicas`: while
    a recommendation within that longer window reached `max_replicas` (× `saturated_factor`), the
    highest one within it bounds scale-down. A backlog built at the maximum can only be worked off by keeping capacity,
    and a burst that saturated the object tends to come back."""
    rules = behavior.scale_down
    up_cut = now - behavior.scale_up.stabilization_window_seconds
    down_cut = now - rules.stabilization_window_seconds
    sat_cut = now - rules.saturated_window_seconds
    threshold = (max_replicas * rules.saturated_factor
                 if max_replicas is not None and rules.saturated_window_seconds > 0 else None)
    up, down, held = desired, desired, desired
    saturated = False
    for t, rec in state.recommendations:
        if t > up_cut:
            up = min(up, rec)
        if t > down_cut:
            down = max(down, rec)
        if t > sat_cut:
            held = max(held, rec)
            saturated = saturated or (threshold is not None and rec >= threshold)
    if saturated:
        down = max(down, held)
    # keep only what a window can still see
    state.recommendations = [(t, r) for t, r in state.recommendations if t > min(up_cut, down_cut, sat_cut)]
    recs = state.recommendations
    if len(recs) >= 2 and recs[-1][1] == desired and recs[-2][1] == desired:
        # a run of equal recommendations needs only its first and latest sample: the windows see
        # the same values, and the history stays small at a 1 s polling interval
        recs[-1] = (now, desired)
    else:
        recs.append((now, desired))
    result = current
    if result < up:
        result = up
    if result > down:
        result = down
    return result


def rate_limit(
    desired: int, current: int, min_replicas: int, max_replicas: int, state: HPAState, behavior: Behavior,
    now: float,
) -> tuple[int, str]:
    """Apply the scaling policies and min/max; returns replicas and the HPA's condition reason."""
    if desired > current:
        limit = max(current, scale_up_limit(current, state, behavior.scale_up, now))
        allowed, reason = (limit, "ScaleUpLimit") if max_replicas > limit else (max_replicas, "TooManyReplicas")
        if allowed < desired:
            return allowed, reason
    elif desired < current:
        limit = min(current, scale_down_limit(current, state, behavior.scale_down, now))
        allowed, reason = (limit, "ScaleDownLimit") if min_replicas < limit else (min_replicas, "TooFewReplicas")
        if desired < allowed:
            return allowed, reason
    return desired, "DesiredWithinRange"


def normalize(
    desired: int, current: int, min_replicas: int, max_replicas: int, state: HPAState, behavior: Behavior,
    now: float,
) -> tuple[int, str]:
    """Stabilize, then rate-limit and bound `desired` (normalizeDesiredReplicasWithBehaviors)."""
    stabilized = stabilize(desired, current, state, behavior, now, max_replicas)
    return rate_limit(stabilized, current, min_replicas, max_replicas, state, behavior, now)


def record_scale(state: HPAState, before: int, after: int, now: float, longest_period: int = 1800) -> None:
    """Remember a replica change so later policies can measure how much moved in their period."""
    cutoff = now - longest_period
    state.scale_up_events = [e for e in state.scale_up_events if e[0] > cutoff]
    state.scale_down_events = [e for e in state.scale_down_events if e[0] > cutoff]
    if after > before:
        state.scale_up_events.append((now, after - before))
    elif after < before:
        state.scale_down_events.append((now, before - after))


def behavior_from(raw_up: Rules | None = None, raw_down: Rules | None = None) -> Behavior:
    return Behavior(raw_up or DEFAULT_SCALE_UP, raw_down or DEFAULT_SCALE_DOWN)
