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

The saturated hold (`saturated_hold`, shipped ON at factor 2): while a recommendation within the
HPA's 300 s reached `SATURATED_FACTOR` × maxReplicaCount — demand at least twice what the object may
ever run, so a backlog built now cannot be worked off faster and bursts overflow — hold the highest
one of those 300 s, as the HPA would (`hpa.stabilize`, `Rules.saturated_window_seconds`). Built for
WorldCup 98, whose bursts exceed maxReplicaCount and recur within 300 s: without it surge had more
SLO minutes there than keda-karpenter (56 vs 54). Measured (docs/benchmarks-simulate.md, "Follow the
work"): factor 1 holds on every trace that touches max (AWS ELB, NASA July lose their goal), factor 2
keeps WorldCup at 46 and costs ELB and NASA July little; no factor kept every goal, and no SLO
minute above keda-karpenter comes first.

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

# Ships ON since the constant-load sanity properties hold with it (a handover ends only once no pod
# of the workload is still starting elsewhere, so a drain whose Deployment scales meanwhile no
# longer evicts: tests/test_simulate.py). Measured (docs/benchmarks-simulate.md, "Follow the work",
# 14 d): cheaper on all 13 traces; the price is churn (replica changes and node launches up to ×2 on
# spiky traces). Alone it cost WorldCup 98 SLO minutes (56 vs keda-karpenter's 54): the saturated
# hold below gives them back.
FOLLOW_WORK_ON = True
FOLLOW_WORK_WINDOW_S = 90
SURGE_SCALE_DOWN = Rules(FOLLOW_WORK_WINDOW_S, DEFAULT_SCALE_DOWN.select_policy, DEFAULT_SCALE_DOWN.policies)
# The saturated hold (module docstring): no SLO minute above keda-karpenter on WorldCup 98.
SATURATED_HOLD_ON = True
SATURATED_WINDOW_S = DEFAULT_SCALE_DOWN.stabilization_window_seconds
SATURATED_FACTOR = 2.0
AHEAD_PROTECT_MIN_S = 60.0


def surge_defaults(spec: ScalingSpec, on: bool = FOLLOW_WORK_ON, saturated_hold: bool = SATURATED_HOLD_ON,
                   saturated_factor: float = SATURATED_FACTOR) -> ScalingSpec:
    """The spec the surge operator decides with: `SURGE_SCALE_DOWN` where the user set no
    scaleDown (when `on`; with the saturated hold when `saturated_hold`); the spec as the HPA reads
    it otherwise."""
    if not on or spec.scale_down_given:
        return spec
    down = SURGE_SCALE_DOWN
    if saturated_hold:
        down = replace(down, saturated_window_seconds=SATURATED_WINDOW_S, saturated_factor=saturated_factor)
    return replace(spec, behavior=Behavior(spec.behavior.scale_up, down))


def ahead_protection_s(spec: ScalingSpec, on: bool = FOLLOW_WORK_ON) -> float:
    """How long nodes launched ahead of a scale-up are protected from consolidation: the
    scale-down window (at least `AHEAD_PROTECT_MIN_S`) when `on`, else the provisioner's `PROTECT_S`."""
    if not on:
        return PROTECT_S
    return max(float(spec.behavior.scale_down.stabilization_window_seconds), AHEAD_PROTECT_MIN_S)
