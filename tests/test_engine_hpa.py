"""The HPA arithmetic against Kubernetes' own test tables.

Cases transcribed from kubernetes/kubernetes pkg/controller/podautoscaler/horizontal_test.go
(TestScalingWithRules, TestNormalizeDesiredReplicasWithBehavior, TestCalculateScaleUp/Down
LimitWith…), as data: rules are `generateScalingRules(pods, podsPeriod, percent, percentPeriod,
window)` and events `generateEventsUniformDistribution(changes, period)` as upstream builds them.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.engine.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    HPAState,
    Policy,
    Rules,
    normalize,
    rate_limit,
    replicas_for_metric,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)

NOW = 1_000_000.0


def rules(pods: int, pods_period: int, percent: int, percent_period: int, window: int) -> Rules:
    policies = []
    if pods:
        policies.append(Policy("Pods", pods, pods_period))
    if percent:
        policies.append(Policy("Percent", percent, percent_period))
    return Rules(window, "Max", tuple(policies))


def events(changes: list[int], period: int) -> list[tuple[float, int]]:
    segment = period / len(changes)
    return [(NOW - (period - segment * (i + 1) + segment / 2), c) for i, c in enumerate(changes)]


# (name, up events, down events, min, max, up rules, down rules, current, desired, expected, condition)
SCALING_WITH_RULES = [
    ("prenormalized desired replicas within range", None, None, 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", None, None, 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("within range when minReplicas is 0", None, None, 0, 10, None, None, 1, 0, 0, "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", None, None, 1, 10, None, None, 20, 1000, 10,
     "TooManyReplicas"),
    ("desired replica count is more than the maximum", None, None, 100, 150, None, None, 100, 1000, 150,
     "TooManyReplicas"),
    ("scaleUpLimit < maxReplicas with user policies", None, None, 1, 2000, rules(0, 0, 1, 60, 0), None, 3, 1000, 4,
     "ScaleUpLimit"),
    ("scaleUp with default behavior", None, None, 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", None, None, 1, 1000, rules(100, 60, 100, 60, 0), None,
     10, 500, 110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", None, None, 1, 1000, rules(2, 60, 100, 60, 0), None,
     10, 500, 20, "ScaleUpLimit"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", None, None, 1, 1000, rules(100, 60, 0, 0, 0),
     None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", None, None, 1, 1000,
     rules(10000, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with pod policy limitation", None, None, 1, 1000, rules(30, 60, 0, 0, 0), None, 10, 50, 40,
     "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", None, None, 1, 1000, rules(0, 0, 200, 60, 0), None, 10, 50, 30,
     "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", None, None, 1, 1000, None, rules(20, 60, 1, 60, 300),
     100, 2, 80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", None, None, 1, 1000, None, rules(2, 60, 1, 60, 300),
     100, 2, 98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy", None, None, 1, 1000, None,
     rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", None, None, 5, 1000, None,
     rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", None, None, 1, 1000, None, rules(5, 60, 0, 0, 300), 10, 2, 5,
     "ScaleDownLimit"),
    ("scaleDown with percent policy limitation", None, None, 1, 1000, None, rules(0, 0, 50, 60, 300), 10, 5, 5,
     "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events", ([1, 5, 9], 120), None, 1, 200,
     rules(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events", ([1, 5, 9], 120), None, 1,
     200, rules(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with currentReplicas limitation with a lot of recent scale up events", ([1, 5, 9], 120), None, 1,
     1000, rules(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", ([1, 5, 9], 120), None, 1, 1000,
     rules(150, 120, 0, 0, 0), None, 100, 500, 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", ([1, 5, 9], 120), None, 1, 1000,
     rules(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up and down events", ([4], 120), ([2], 120), 1, 1000,
     rules(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", None, ([1, 5, 9], 120), 1, 1000, None, None, 10, 5, 5,
     "DesiredWithinRange"),
    ("scaleDown with MinReplicas=nil limitation, large pod policy and previous events", None, ([1, 5, 9], 120), 1,
     1000, None, rules(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas"),
    ("scaleDown with MinReplicas limitation, large pod policy and previous events", None, ([1, 5, 9], 120), 5, 1000,
     None, rules(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas"),
    ("scaleDown with MinReplicas limitation, large percent policy and previous events", None, ([1, 5, 9], 120), 5,
     1000, None, rules(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation and previous events", None, ([1, 5, 9], 120), 1, 1000, None,
     rules(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", None, ([2, 4, 6], 120), 1, 1000, None,
     rules(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ("scaleDown with percent policy and previous scale up and down events", ([2], 120), ([4], 120), 1, 1000, None,
     rules(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down", None, ([10, 10, 10], 120), 1, 1000, None,
     rules(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit"),
    ("scaleDown with previous events still allowing more scale down", None, ([10, 10, 10], 120), 1, 1000, None,
     rules(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange"),
    ("outdated flag for one behavior for up", ([8, 12, 9, 11], 120), None, 1, 1000, rules(1000, 60, 0, 0, 0), None,
     100, 200, 200, "DesiredWithinRange"),
    ("events not outdated for two policies for up", ([8, 12, 9, 11], 120), None, 1, 1000,
     rules(1000, 120, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ("events outdated for two policies for up", ([8, 12, 9, 11], 120), None, 1, 1000, rules(1000, 30, 100, 60, 0),
     None, 100, 200, 200, "DesiredWithinRange"),
    ("outdated flag for one behavior for down", None, ([8, 12, 9, 11], 120), 1, 1000, None,
     rules(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange"),
    ("events not outdated for two policies for down", None, ([8, 12, 9, 11], 120), 1, 1000, None,
     rules(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ("events outdated for two policies for down", None, ([8, 12, 9, 11], 120), 1, 1000, None,
     rules(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
]


@pytest.mark.parametrize("case", SCALING_WITH_RULES, ids=[c[0] for c in SCALING_WITH_RULES])
def test_scaling_with_rules(case: tuple) -> None:  # type: ignore[type-arg]
    _, up_ev, down_ev, lo, hi, up, down, current, desired, expected, condition = case
    state = HPAState(scale_up_events=events(*up_ev) if up_ev else [],
                     scale_down_events=events(*down_ev) if down_ev else [])
    behavior = Behavior(up or DEFAULT_SCALE_UP, down or DEFAULT_SCALE_DOWN)
    assert rate_limit(desired, current, lo, hi, state, behavior, NOW) == (expected, condition)


# (name, recommendations [(replicas, seconds ago)], current, desired, expected, up window, down window)
STABILIZATION = [
    ("empty recommendations for scaling down", [], 100, 5, 5, 0, 0),
    ("simple scale down stabilization", [(4, 120), (5, 60)], 100, 3, 5, 0, 180),
    ("simple scale up stabilization", [(4, 120), (5, 60)], 1, 7, 4, 300, 0),
    ("no scale down stabilization", [(1, 120), (2, 60)], 100, 3, 3, 300, 0),
    ("no scale up stabilization", [(4, 120), (5, 60)], 1, 3, 3, 0, 300),
    ("no scale down stabilization, reuse recommendation element", [(10, 600), (9, 540)], 100, 3, 3, 0, 0),
    ("no scale up stabilization, reuse recommendation element", [(10, 600), (9, 540)], 1, 100, 100, 0, 0),
    ("scale down stabilization, reuse obsolete element", [(10, 600), (4, 60), (5, 120), (9, 540)], 100, 3, 5, 0,
     180),
    ("scale up stabilization, reuse obsolete element", [(10, 6000), (6, 60), (5, 120), (9, 180)], 1, 100, 5, 300,
     0),
    ("do not scale up when prenormalized rec goes down", [(2, 6000), (3, 180)], 2, 1, 2, 300, 300),
    ("do not scale down when prenormalized rec goes up", [(2, 6000), (1, 180)], 2, 3, 2, 300, 300),
]


@pytest.mark.parametrize("case", STABILIZATION, ids=[c[0] for c in STABILIZATION])
def test_stabilization(case: tuple) -> None:  # type: ignore[type-arg]
    _, recs, current, desired, expected, up_window, down_window = case
    state = HPAState(recommendations=[(NOW - ago, r) for r, ago in recs])
    behavior = Behavior(Rules(up_window, "Max", ()), Rules(down_window, "Max", ()))
    assert stabilize(desired, current, state, behavior, NOW) == expected
    assert state.recommendations[-1] == (NOW, desired)


def test_min_select_policy() -> None:
    """TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors."""
    r = Rules(300, "Min", (Policy("Pods", 2, 60), Policy("Percent", 50, 60)))
    assert scale_up_limit(1, HPAState(), r, NOW) == 2
    assert scale_down_limit(5, HPAState(), r, NOW) == 3


def test_disabled_policy_holds() -> None:
    off = Rules(0, "Disabled", (Policy("Pods", 4, 15),))
    assert rate_limit(50, 10, 1, 100, HPAState(), Behavior(off, DEFAULT_SCALE_DOWN), NOW) == (10, "ScaleUpLimit")
    assert rate_limit(1, 10, 1, 100, HPAState(), Behavior(DEFAULT_SCALE_UP, off), NOW) == (10, "ScaleDownLimit")


@pytest.mark.parametrize(("metric_type", "value", "target", "current", "ready", "expected"), [
    ("AverageValue", 100, 10, 3, 3, 10),    # ceil(100 / 10)
    ("AverageValue", 31, 10, 3, 3, 3),      # 31 / (10*3) = 1.03: within the 10 % tolerance
    ("AverageValue", 34, 10, 3, 3, 4),      # 1.13: outside → ceil(3.4)
    ("AverageValue", 5, 10, 0, 0, 1),       # from zero: ceil(0.5)
    ("Value", 500, 100, 3, 3, 15),          # ceil(5 × 3 ready)
    ("Value", 105, 100, 4, 4, 4),           # within tolerance
    ("Value", 500, 100, 4, 2, 10),          # Value scales by ready pods
    ("Value", 50, 100, 0, 0, 1),
])
def test_replicas_for_metric(metric_type: str, value: float, target: float, current: int, ready: int,
                             expected: int) -> None:
    assert replicas_for_metric(metric_type, value, target, current, ready) == expected  # type: ignore[arg-type]


def test_per_direction_tolerance() -> None:
    loose_up = Behavior(Rules(0, "Max", DEFAULT_SCALE_UP.policies, tolerance=0.5), DEFAULT_SCALE_DOWN)
    assert replicas_for_metric("AverageValue", 140, 10, 10, 10, loose_up) == 10
    assert replicas_for_metric("AverageValue", 92, 10, 10, 10, loose_up) == 10  # 0.92: within the down tolerance
    assert replicas_for_metric("AverageValue", 85, 10, 10, 10, loose_up) == 9  # 0.85: outside it → ceil(8.5)


@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 50), st.integers(1, 500))
def test_normalize_stays_in_bounds(desired: int, current: int, lo: int, span: int) -> None:
    hi = lo + span
    current = min(max(current, lo), hi)
    replicas, _ = normalize(desired, current, lo, hi, HPAState(), Behavior(), NOW)
    assert lo <= replicas <= hi
    # a single step never moves further than desired
    assert min(desired, current) <= replicas or replicas == lo
    assert replicas <= max(desired, current) or replicas == lo


@given(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 12)), min_size=1, max_size=80),
       st.integers(0, 120), st.integers(0, 300))
def test_stabilization_history_is_compact_and_exact(steps: list[tuple[int, int]], up_w: int, down_w: int) -> None:
    """Runs of equal recommendations keep two samples, yet every decision equals the one made
    from the full history (the windows' min and max over every sample, as the HPA keeps them)."""
    behavior = Behavior(Rules(up_w, "Max", ()), Rules(down_w, "Max", ()))
    state, full, now, current = HPAState(), [], NOW, 5
    for desired, gap in steps:
        now += 1 + gap
        up = min([r for t, r in full if t > now - up_w] + [desired])
        down = max([r for t, r in full if t > now - down_w] + [desired])
        expected = min(max(current, up), down)
        full.append((now, desired))
        assert stabilize(desired, current, state, behavior, now) == expected
        current = expected
    runs = sum(1 for i, (_, r) in enumerate(full) if i == 0 or full[i - 1][1] != r)
    assert len(state.recommendations) <= 2 * runs
