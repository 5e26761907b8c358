"""What each trigger of a ScaledObject would read from the simulated workload.

Targets and activation thresholds come from the trigger's own scaler parser (the same code the
operator uses), so a simulated `lagThreshold: "50"` means exactly what it means live. Only the
signal is simulated: how much is queued, or how fast requests arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from autoscaler.engine.spec import trigger_key
from autoscaler.manifests.keda import ScaledObject

Signal = Literal["backlog", "backlog+inflight", "rate", "none"]

# Which quantity each trigger type measures. Kafka lag and SQS (scaleOnInFlight) count items
# until they are committed/deleted; a Redis list forgets an item once a worker pops it.
SIGNALS: dict[str, Signal] = {
    "kafka": "backlog+inflight",
    "aws-sqs-queue": "backlog+inflight",
    "redis-streams": "backlog+inflight",
    "redis-cluster-streams": "backlog+inflight",
    "redis-sentinel-streams": "backlog+inflight",
    "redis": "backlog",
    "redis-cluster": "backlog",
    "redis-sentinel": "backlog",
    "prometheus": "rate",
}


@dataclass(frozen=True)
class SimTrigger:
    key: str
    signal: Signal
    target: float
    activation: float
    note: str = ""
    type: str = ""
    pushes: bool = False  # the scaler's source notifies changes (`engine.reaction.pushes`)


class _AnyEnv(dict[str, str]):
    """The target's environment as a placeholder: addresses are irrelevant when nothing is dialled."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "127.0.0.1:1"

    def get(self, key: str, default: Any = None) -> str:
        return "127.0.0.1:1"


def sim_triggers(so: ScaledObject) -> list[SimTrigger]:
    from autoscaler.engine.reaction import pushes
    from scalers.base import Trigger
    from scalers.errors import ScalerError
    from scalers.registry import build_scaler

    out = []
    for i, trig in enumerate(so.spec.triggers):
        key = trigger_key(so, i)
        signal = SIGNALS.get(trig.type, "none")
        if signal == "none":
            out.append(SimTrigger(key, "none", 1.0, 0.0, f"trigger {key} ({trig.type}) is not simulated: it reads 0, "
                                                         "inactive"))
            continue
        try:
            scaler = build_scaler(Trigger(type=trig.type, name=trig.name or "", index=i, metadata=trig.metadata,
                                          resolved_env=_AnyEnv(), metric_type=trig.metric_type or "AverageValue"))
        except ScalerError as exc:
            out.append(SimTrigger(key, "none", 1.0, 0.0, f"trigger {key} ({trig.type}) is not simulated: {exc}"))
            continue
        config = getattr(scaler, "config", None)
        activation = next((float(v) for k, v in vars(config).items() if k.startswith("activation")
                           and isinstance(v, int | float)), 0.0) if config is not None else 0.0
        out.append(SimTrigger(key, signal, float(scaler.metric_specs()[0].target), activation, type=trig.type,
                              pushes=pushes(scaler)))
    return out
