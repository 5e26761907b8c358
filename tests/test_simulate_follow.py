"""The simulator runs `engine.follow` as the live operator does: with the switch on, surge gives a
spike's replicas back after FOLLOW_WORK_WINDOW_S, not the HPA's 300 s; keda-karpenter never changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoscaler.engine.follow import FOLLOW_WORK_WINDOW_S
from autoscaler.simulate.inputs import build_setup
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import PolicyResult, simulate
from autoscaler.simulate.trace import Trace
from tests.test_simulate import files

SPIKE_END = 360.0


def spike() -> Trace:
    """1 pod's worth, a minute of 20 pods' worth at 5 min, then 1 pod's worth for 15 min."""
    per_minute = [600.0] * 5 + [12000.0] + [600.0] * 15
    return Trace("spike", 0.0, 60.0, np.array(per_minute))


def replicas_after(r: PolicyResult, t: float) -> int:
    return next(n for s, n in zip(r.series.t, r.series.replicas, strict=True) if s >= t)


def test_surge_with_follow_work_gives_a_spike_back_sooner_and_keda_karpenter_is_untouched(tmp_path: Path) -> None:
    paths = files(tmp_path, capacity="spot, on-demand")
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    on = simulate(spike(), setup, policy_named("surge-no-saturated-hold"), a)
    off = simulate(spike(), setup, policy_named("surge-no-follow-work"), a)
    peak = max(off.series.replicas)
    assert peak >= 10 and max(on.series.replicas) >= 10
    # the backlog of the spike is gone within a minute or two of its end; then the windows differ
    settled = SPIKE_END + 120 + FOLLOW_WORK_WINDOW_S + 30
    assert replicas_after(on, settled) <= 3 < replicas_after(off, settled)
    assert replicas_after(off, SPIKE_END + 300 + 120 + 30) <= 3
    assert on.cost_usd < off.cost_usd and on.slo_violation_minutes <= off.slo_violation_minutes
    # the baseline keeps the HPA's default (300 s): it holds the spike past surge's window
    kk = simulate(spike(), setup, policy_named("keda-karpenter"), a)
    assert not policy_named("keda-karpenter").follow_work and replicas_after(kk, settled) > 3


def test_a_spike_beyond_twice_max_replicas_is_held_for_the_hpas_300_s(tmp_path: Path) -> None:
    """The saturated hold (engine.follow): at maxReplicaCount 50 the same spike asks for more than
    2 × 50 pods, the backlog can only be worked off by keeping capacity, so surge holds the HPA's
    300 s instead of its own window, then steps down."""
    paths = files(tmp_path, capacity="spot, on-demand")
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    held = simulate(spike(), setup, policy_named("surge"), a)
    assert policy_named("surge").saturated_hold and policy_named("surge").follow_work
    assert replicas_after(held, SPIKE_END + 120 + FOLLOW_WORK_WINDOW_S + 30) > 3
    assert replicas_after(held, SPIKE_END + 300 + 120 + 30) <= 3
