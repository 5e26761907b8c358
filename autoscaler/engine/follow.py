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

FOLLOW_WORK_WINDOW_S = 60
SURGE_SCALE_DOWN = Rules(FOLLOW_WORK_WINDOW_S, DEFAULT_SCALE_DOWN.select_policy, DEFAULT_SCALE_DOWN.policies)
AHEAD_PROTECT_MIN_S = 60.0


def surge_defaults(spec: ScalingSpec) -> ScalingSpec:
    """The spec the surge operator decides with: `SURGE_SCALE_DOWN` where the user set no scaleDown."""
    if spec.scale_down_given:
        return spec
    return replace(spec, behavior=Behavior(spec.behavior.scale_up, SURGE_SCALE_DOWN))


def ahead_protection_s(spec: ScalingSpec) -> float:
    """How long nodes launched ahead of a scale-up are protected from consolidation."""
    return max(float(spec.behavior.scale_down.stabilization_window_seconds), AHEAD_PROTECT_MIN_S)
