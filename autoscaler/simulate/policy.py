"""The policies a simulation compares, and the stated assumptions every report carries.

`surge` is a bundle of separate mechanisms; each can be switched off alone by naming the policy
`surge-no-<feature>` (several may be chained: `surge-no-spot-no-together`), so a report can show
what each one is worth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from autoscaler.engine.follow import FOLLOW_WORK_ON, SATURATED_HOLD_ON
from provisioner.disruption import REPACK_MIN_SAVING, REPACK_ON, SPOT_RESIZE_MIN_SAVING

SURGE_FEATURES = ("events", "packer", "spot", "together", "forecast", "predictive", "deletion-cost", "handover",
                  "spot-resize", "repack", "follow-work", "saturated-hold")


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Policy:
    """A model of what a system decides. Each switch is a shipped mechanism: what it calls is the
    code the live controllers run (`engine.decide`, `engine.reaction`, `provisioner.disruption`,
    `BatchWindow`, `make_plan`)."""

    name: str
    static: bool = False
    # keda-hpa: KEDA polls at pollingInterval (activation), the HPA syncs every 15 s;
    # operator: surge's operator, due per `engine.reaction` (pollingInterval, pushed changes, lag watch)
    reaction: Literal["keda-hpa", "operator"] = "keda-hpa"
    events: bool = False  # operator: wakes on pushed changes and reads lag between polls
    packer: Literal["surge", "karpenter"] = "karpenter"  # plans launches and consolidation
    spot: bool = True  # use spot where the NodePool allows it
    launch_ahead: bool = False  # the operator hands scale-ups to the provisioner (`prepare_for`)
    forecast_keep: bool = False  # consolidation keeps the room a reliable forecast will need
    predictive: bool = False  # the statsmodels forecaster raises replicas ahead of load (mode "on")
    deletion_cost: bool = False  # the provisioner ranks pods (pod-deletion-cost) so scale-down empties nodes
    # single-node consolidation may replace spot with cheaper spot (Karpenter's gate, off by default),
    # when that saves at least `spot_min_saving` of the node's price (surge: right-sizing only; with no
    # floor, measured on the demo trace it multiplied launches ×10 and cost more than keda-karpenter)
    spot_to_spot: bool = False
    spot_min_saving: float = 0.0
    # Karpenter waits `VALIDATION_S` after computing an Empty / Underutilized command and re-validates it,
    # its disruption loop blocked meanwhile (validation.go); surge's live provisioner acts at once
    validate: bool = False
    # make before break: consolidation / drift / expiry drains hand the node's pods over to extra
    # replicas first (`provisioner.disruption.Handover`); off, drains evict as Karpenter's do
    handover: bool = False
    # surge repacks a fragmented fleet one node at a time when one new node saves this share of the
    # set's price (`provisioner.disruption.repack_action`); None: off, as Karpenter has no such step
    repack_min_saving: float | None = None
    # the operator decides with `engine.follow.surge_defaults` (its own scale-down where the user set
    # none) and protects nodes launched ahead for `engine.follow.ahead_protection_s`; off: the HPA's
    # default scaleDown, as KEDA + HPA
    follow_work: bool = False
    # with follow_work: hold the HPA's 300 s while a recommendation reached 2 × maxReplicaCount
    # (`engine.follow` saturated hold)
    saturated_hold: bool = False


STATIC_PEAK = Policy("static-peak", static=True, packer="surge", spot=True)
STATIC_PEAK_ON_DEMAND = Policy("static-peak-on-demand", static=True, packer="surge", spot=False)
KEDA_KARPENTER = Policy("keda-karpenter", validate=True)
SURGE = Policy("surge", reaction="operator", events=True, packer="surge", spot=True, launch_ahead=True,
               forecast_keep=True, predictive=True, deletion_cost=True, handover=True, spot_to_spot=True,
               spot_min_saving=SPOT_RESIZE_MIN_SAVING,
               repack_min_saving=REPACK_MIN_SAVING if REPACK_ON else None, follow_work=FOLLOW_WORK_ON,
               saturated_hold=SATURATED_HOLD_ON)
DEFAULT_POLICIES = ("static-peak", "keda-karpenter", "surge")


# what `surge-no-<feature>` changes in the surge policy
_SWITCHED_OFF: dict[str, dict[str, Any]] = {
    "events": {"events": False}, "packer": {"packer": "karpenter"}, "spot": {"spot": False},
    "together": {"launch_ahead": False}, "forecast": {"forecast_keep": False}, "predictive": {"predictive": False},
    "deletion-cost": {"deletion_cost": False}, "handover": {"handover": False}, "spot-resize": {"spot_to_spot": False},
    "repack": {"repack_min_saving": None}, "follow-work": {"follow_work": False},
    "saturated-hold": {"saturated_hold": False},
}


def policy_named(name: str) -> Policy:
    """`static-peak`, `static-peak-on-demand`, `keda-karpenter`, `surge`, or
    `surge-no-<feature>[-no-<feature>…]`."""
    if name == "static-peak":
        return STATIC_PEAK
    if name == "static-peak-on-demand":
        return STATIC_PEAK_ON_DEMAND
    if name == "keda-karpenter":
        return KEDA_KARPENTER
    if not name.startswith("surge"):
        raise PolicyError(f"unknown policy {name!r}: expected static-peak, static-peak-on-demand, keda-karpenter, "
                          f"surge or surge-no-<feature> with feature in {list(SURGE_FEATURES)}")
    policy = replace(SURGE, name=name)
    for part in name.removeprefix("surge").split("-no-")[1:]:
        if part not in _SWITCHED_OFF:
            raise PolicyError(f"policy {name!r}: unknown feature {part!r}; features are {list(SURGE_FEATURES)}")
        policy = replace(policy, **_SWITCHED_OFF[part])
    if name != "surge" and name.removeprefix("surge")[:4] != "-no-":
        raise PolicyError(f"policy {name!r}: expected surge-no-<feature>, features {list(SURGE_FEATURES)}")
    return policy


@dataclass(frozen=True)
class Assumptions:
    """Everything the simulation takes as given rather than measures; printed with every report."""

    tick_s: float = 5.0
    pod_rate: float = 10.0  # items (or requests) per second one ready pod completes
    service_time_s: float = 1.0  # how long one item takes: a busy pod holds rate × this many in flight
    peak_pods: int = 20  # the trace is scaled so its p99 rate needs this many pods
    scale: float = 1.0  # trace multiplier actually used (set from peak_pods unless given)
    pod_start_s: float = 10.0  # CPU pods: image pull + start
    pod_start_gpu_s: float = 90.0  # pods asking for a GPU: model load
    node_boot_cpu_s: float = 40.0
    node_boot_gpu_s: float = 180.0
    spot_discount: float = 0.65  # spot price = on-demand × (1 − discount); no offline spot history exists
    spot_interruptions_per_node_hour: float = 0.005
    slo_seconds: float = 60.0
    http_timeout_s: float = 30.0
    hpa_sync_s: float = 15.0  # the HPA controller's sync period (KEDA serves it metrics on demand)
    pending_detect_s: float = 1.0  # scheduler marks a pod Unschedulable before the provisioner sees it
    seed: int = 1

    def to_json(self) -> dict[str, Any]:
        from provisioner.disruption import (
            CONSOLIDATION_INTERVAL_S,
            DRAIN_BEFORE_RECLAIM_S,
            HANDOVER_TIMEOUT_S,
            PROTECT_S,
            SPOT_NOTICE_S,
            VALIDATION_S,
        )
        from provisioner.provisioning import BATCH_IDLE_S, BATCH_MAX_S

        shared = {"batch_idle_s": BATCH_IDLE_S, "batch_max_s": BATCH_MAX_S,
                  "consolidation_interval_s": CONSOLIDATION_INTERVAL_S, "protect_s": PROTECT_S,
                  "spot_notice_s": SPOT_NOTICE_S, "drain_before_reclaim_s": DRAIN_BEFORE_RECLAIM_S,
                  "karpenter_validation_s": VALIDATION_S, "handover_timeout_s": HANDOVER_TIMEOUT_S}
        return asdict(self) | {"live_constants": shared}
