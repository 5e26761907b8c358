"""surge's own scale-down default: follow the work, not the HPA's fixed 300 s.

The HPA's default `scaleDown` holds the highest recommendation of the last 300 s. It exists for
the HPA's usual input, resource metrics read every 15 s, where a dip is often noise. surge reads a
lag-watched trigger every second, and a lag metric (items waiting + in flight, per pod) already
says how much work there is: a recommendation below the current replicas means the backlog the
extra pods were added for is gone. On spiky traces the 300-s window held each spike's peak for five
minutes, and the nodes launched ahead for it were protected for as long (docs/benchmarks-simulate.md,
"Where surge falls short"). So, when a ScaledObject sets no
`advanced.horizontalPodAutoscalerConfig.behavior.scaleDown`, surge steps down after
`FOLLOW_WORK_WINDOW_S` of lower recommendations instead; any explicit `scaleDown` (even one
naming only its policies) is obeyed exactly as the HPA would, 300-s default window included.

The nodes `prepare_for` launches ahead of a scale-up are kept from consolidation as long as the
engine keeps the replicas they were launched for at least (the scale-down stabilization window),
and never less than `AHEAD_PROTECT_MIN_S` (a node's boot and its pods' start): a protection longer
than the window leaves emptied nodes idle, one shorter lets consolidation take them while the
replicas they were launched for are still held.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.engine.decide import ScalingSpec
from autoscaler.engine.hpa import DEFAULT_SCALE_DOWN, Behavior, Rules
from provisioner.disruption import PROTECT_S

# Ships OFF, as repack did, until the constant-load sanity properties hold with it. Measured on
# (docs/benchmarks-simulate.md, "Follow the work") it cuts surge's cost on 12 of 13 traces (up to
# −18 %) with no more SLO minutes than keda-karpenter anywhere; but on a rising load a lag
# metric's scale-down saw-tooths (the constant-load test's ramp: 13 → 1 → 7 → 2 → 10 replicas), a
# drain whose Deployment scales meanwhile evicts what its take-back did not delete, and the
# constant-load test then moves 2 pods during its ramp (tests/test_simulate.py::test_make_before_
# break_drains_end_the_loop, test_repack_packs_the_ramps_spot_leftovers want none), though it costs
# 5–8 % less there.
FOLLOW_WORK_ON = True
FOLLOW_WORK_WINDOW_S = 90
SURGE_SCALE_DOWN = Rules(FOLLOW_WORK_WINDOW_S, DEFAULT_SCALE_DOWN.select_policy, DEFAULT_SCALE_DOWN.policies)
AHEAD_PROTECT_MIN_S = 60.0


def surge_defaults(spec: ScalingSpec, on: bool = FOLLOW_WORK_ON) -> ScalingSpec:
    """The spec the surge operator decides with: `SURGE_SCALE_DOWN` where the user set no
    scaleDown (when `on`); the spec as the HPA reads it otherwise."""
    if not on or spec.scale_down_given:
        return spec
    return replace(spec, behavior=Behavior(spec.behavior.scale_up, SURGE_SCALE_DOWN))


def ahead_protection_s(spec: ScalingSpec, on: bool = FOLLOW_WORK_ON) -> float:
    """How long nodes launched ahead of a scale-up are protected from consolidation: the
    scale-down window (at least `AHEAD_PROTECT_MIN_S`) when `on`, else the provisioner's `PROTECT_S`."""
    if not on:
        return PROTECT_S
    return max(float(spec.behavior.scale_down.stabilization_window_seconds), AHEAD_PROTECT_MIN_S)
