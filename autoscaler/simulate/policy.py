"""The policies a simulation compares, and the stated assumptions every report carries.

`surge` is a bundle of separate mechanisms; each can be switched off alone by naming the policy
`surge-no-<feature>` (several may be chained: `surge-no-spot-no-together`), so a report can show
what each one is worth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

SURGE_FEATURES = ("events", "packer", "spot", "together", "forecast", "predictive")


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Policy:
    name: str
    static: bool = False
    event_driven: bool = False  # decide on every change of the signal instead of at poll/HPA-sync times
    packer: Literal["surge", "karpenter"] = "karpenter"  # plans consolidation (and launches unless below)
    launch_packer: Literal["surge", "karpenter"] | None = None
    spot: bool = True  # use spot where the NodePool allows it
    together: bool = False  # plan nodes in the replica decision's step (no Pending round trip, wake lookahead)
    forecast_consolidation: bool = False  # keep capacity the engine's recent recommendations still want
    batching: bool = True  # Karpenter's pending-pod batch window
    predictive: bool = False  # the statsmodels forecaster raises replicas ahead of load (mode "on")


STATIC_PEAK = Policy("static-peak", static=True, packer="surge", spot=False, batching=False)
KEDA_KARPENTER = Policy("keda-karpenter")
SURGE = Policy("surge", event_driven=True, packer="surge", spot=True, together=True, forecast_consolidation=True,
               batching=False, predictive=True)
DEFAULT_POLICIES = ("static-peak", "keda-karpenter", "surge")


def policy_named(name: str) -> Policy:
    """`static-peak`, `keda-karpenter`, `surge`, or `surge-no-<feature>[-no-<feature>…]`."""
    if name == "static-peak":
        return STATIC_PEAK
    if name == "keda-karpenter":
        return KEDA_KARPENTER
    if not name.startswith("surge"):
        raise PolicyError(f"unknown policy {name!r}: expected static-peak, keda-karpenter, surge or "
                          f"surge-no-<feature> with feature in {list(SURGE_FEATURES)}")
    policy = replace(SURGE, name=name)
    for part in name.removeprefix("surge").split("-no-")[1:]:
        if part == "events":
            policy = replace(policy, event_driven=False)
        elif part == "packer":
            policy = replace(policy, packer="karpenter")
        elif part == "spot":
            policy = replace(policy, spot=False)
        elif part == "together":
            policy = replace(policy, together=False, batching=True)
        elif part == "forecast":
            policy = replace(policy, forecast_consolidation=False)
        elif part == "predictive":
            policy = replace(policy, predictive=False)
        else:
            raise PolicyError(f"policy {name!r}: unknown feature {part!r}; features are {list(SURGE_FEATURES)}")
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
    spot_notice_s: float = 120.0
    slo_seconds: float = 60.0
    http_timeout_s: float = 30.0
    hpa_sync_s: float = 15.0  # the HPA controller's sync period (KEDA serves it metrics on demand)
    batch_idle_s: float = 1.0  # Karpenter's batch window: idle / max duration
    batch_max_s: float = 10.0
    pending_detect_s: float = 1.0  # scheduler marks a pod Unschedulable before Karpenter sees it
    consolidation_interval_s: float = 10.0
    replace_margin: float = 0.1  # replace nodes only for a cheaper set at least this much cheaper
    headroom_window_s: float = 1800.0  # surge sizes launches and replacements for the peak of this window
    protect_s: float = 120.0  # capacity surge launched ahead of pods is kept this long
    seed: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
