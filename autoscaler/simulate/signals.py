"""What each trigger of a ScaledObject would read from the simulated workload.

Targets and activation thresholds come from the trigger's own scaler parser (the same code the
operator uses), so a simulated `lagThreshold: "50"` means exactly what it means live. Only the
signal is simulated: how much is queued, how much is in flight, or how fast work arrives. Each
reading goes to the engine under the trigger's name, so a `scalingModifiers.formula` over the
names is computed by the engine exactly as live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from autoscaler.engine.decide import TriggerReading
from autoscaler.engine.spec import trigger_key
from autoscaler.manifests.keda import ScaledObject, ScaleTrigger

Signal = Literal["backlog", "backlog+inflight", "rate", "schedule", "none"]

# Which quantity each trigger type measures. Kafka lag and SQS (scaleOnInFlight) count items
# until they are committed/deleted; a Redis list forgets an item once a worker pops it; a
# JetStream consumer's lag is num_pending (not yet delivered) + num_ack_pending (delivered, not acked).
SIGNALS: dict[str, Signal] = {
    "kafka": "backlog+inflight",
    "aws-sqs-queue": "backlog+inflight",
    "redis-streams": "backlog+inflight",
    "redis-cluster-streams": "backlog+inflight",
    "redis-sentinel-streams": "backlog+inflight",
    "nats-jetstream": "backlog+inflight",
    "redis": "backlog",
    "redis-cluster": "backlog",
    "redis-sentinel": "backlog",
    "prometheus": "rate",
    "rabbitmq": "backlog",  # refined per mode and protocol by `_rabbitmq`
    # an arbitrary query / JSON value: its meaning is the user's; simulated as the backlog (ASSUMED)
    "postgresql": "backlog",
    "mysql": "backlog",
    "metrics-api": "backlog",
    # KEDA's cron: desiredReplicas inside the window, read at the trace's own time (`_cron_replicas`)
    "cron": "schedule",
}
ASSUMED = {"postgresql": "the query's result", "mysql": "the query's result",
           "metrics-api": "the value at valueLocation"}


@dataclass(frozen=True)
class SimTrigger:
    key: str
    signal: Signal
    target: float
    activation: float
    note: str = ""
    type: str = ""
    pushes: bool = False  # the scaler's source notifies changes (`engine.reaction.pushes`)
    active_on_backlog: bool = False  # also active while items wait (RabbitMQ's MessageRate, as KEDA)
    schedule: Any = None  # a cron trigger's CronConfig (scalers/cron.py)

    def reading(self, backlog: float, inflight: float, rate: float, at: float = 0.0) -> TriggerReading:
        """This trigger's poll of the simulated world at epoch second `at`; queues hold whole items."""
        if self.signal == "none":
            return TriggerReading(0.0, False)
        if self.signal == "schedule":
            replicas = _cron_replicas(self.schedule, math.floor(at / 60))
            return TriggerReading(replicas, replicas > 0)
        if self.signal == "rate":
            active = rate > self.activation or (self.active_on_backlog and backlog > self.activation)
            return TriggerReading(rate, active)
        value = float(int(backlog + inflight if self.signal == "backlog+inflight" else backlog))
        return TriggerReading(value, value > self.activation)


@lru_cache(maxsize=4096)
def _cron_replicas(cfg: Any, minute: int) -> float:
    """What KEDA's cron scaler reads during `minute` (epoch minutes), by the operator's own
    `in_window`. Cron windows open and close on whole minutes, so one answer holds for the minute
    (and a year of 1-s decisions costs one window test per minute)."""
    from scalers.cron import in_window

    inside = in_window(cfg, datetime.fromtimestamp(minute * 60, UTC))
    return float(cfg.desired_replicas) if inside else 0.0


class _AnyEnv(dict[str, str]):
    """The target's environment as a placeholder: addresses are irrelevant when nothing is dialled."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "127.0.0.1:1"

    def get(self, key: str, default: Any = None) -> str:
        return "127.0.0.1:1"


def _rabbitmq_metadata(trig: ScaleTrigger) -> tuple[dict[str, str], str]:
    """The host decides the protocol (`protocol: auto`), but it usually lives in a Secret the
    simulator never sees: stand in a host of the declared protocol, else of the one the mode needs."""
    md = dict(trig.metadata)
    if md.get("host"):
        return md, ""
    protocol = md.get("protocol", "auto")
    if protocol == "auto":
        protocol = "http" if md.get("mode", "QueueLength") != "QueueLength" else "amqp"
        note = f"its host is not in the trigger's metadata: the {protocol.upper()} protocol is assumed"
    else:
        note = ""
    md["host"] = f"{protocol}://127.0.0.1:1/"
    return md, note


def _rabbitmq(key: str, scaler: Any, note: str) -> tuple[Signal, str, bool]:
    """KEDA's modes: QueueLength counts `messages` (ready + unacked, i.e. waiting + in flight) over
    HTTP, `messages_ready` with excludeUnacknowledged or over AMQP (a passive declare counts ready
    messages only); MessageRate is the publish rate, and is active while messages wait too."""
    mode, cfg = scaler.mode, scaler.config
    where = f"trigger {key} (rabbitmq, mode {mode})"
    if mode == "MessageRate":
        return "rate", f"{where}: reads the publish rate (arrivals/s over the last minute)" + (
            f"; {note}" if note else ""), True
    if mode != "QueueLength":
        return "none", f"{where} is not simulated: only QueueLength and MessageRate are; it reads 0, inactive", False
    ready_only = cfg.exclude_unacknowledged or cfg.resolved_protocol == "amqp"
    what = ("ready messages (waiting only)" if ready_only
            else "ready + unacknowledged messages (waiting + in flight)")
    return ("backlog" if ready_only else "backlog+inflight"), f"{where}: reads {what}" + (
        f"; {note}" if note else ""), False


def _build(so: ScaledObject, i: int, metadata: dict[str, str], auth: Mapping[str, str]) -> Any:
    """The operator's scaler for trigger `i`, from the operator's own parser (raises ScalerError)."""
    from scalers.base import Trigger
    from scalers.registry import build_scaler

    trig = so.spec.triggers[i]
    return build_scaler(Trigger(type=trig.type, name=trig.name or "", index=i, metadata=metadata, auth_params=auth,
                                resolved_env=_AnyEnv(), metric_type=trig.metric_type or "AverageValue",
                                as_metric_source=so.spec.uses_modifiers))


def _scaler(so: ScaledObject, i: int, metadata: dict[str, str]) -> tuple[Any, str]:
    """The scaler and a note. A trigger whose credentials come from a TriggerAuthentication (Secrets
    the simulator never reads) is built again with any value standing in for them: nothing is
    dialled offline. When it still does not parse its own metadata is wrong, and the first error
    is raised."""
    from scalers.errors import ScalerError

    trig = so.spec.triggers[i]
    try:
        return _build(so, i, metadata, {}), ""
    except ScalerError as exc:
        if trig.authentication_ref is None:
            raise
        first = exc
    try:
        scaler = _build(so, i, metadata, _AnyEnv())
    except ScalerError:
        raise first from None
    return scaler, (f"its authenticationRef {trig.authentication_ref.name!r} is not read offline: "
                    "its credentials are assumed valid")


def sim_triggers(so: ScaledObject) -> list[SimTrigger]:
    from autoscaler.engine.reaction import pushes
    from scalers.errors import ScalerError

    out = []
    for i, trig in enumerate(so.spec.triggers):
        key = trigger_key(so, i)
        signal = SIGNALS.get(trig.type, "none")
        if signal == "none":
            out.append(SimTrigger(key, "none", 1.0, 0.0, f"trigger {key} ({trig.type}) is not simulated: it reads 0, "
                                                         "inactive"))
            continue
        metadata, host_note = _rabbitmq_metadata(trig) if trig.type == "rabbitmq" else (dict(trig.metadata), "")
        try:
            scaler, auth_note = _scaler(so, i, metadata)
        except ScalerError as exc:
            out.append(SimTrigger(key, "none", 1.0, 0.0, f"trigger {key} ({trig.type}) is not simulated: {exc}"))
            continue
        config = getattr(scaler, "config", None)
        activation = next((float(v) for k, v in vars(config).items() if k.startswith("activation")
                           and isinstance(v, int | float)), 0.0) if config is not None else 0.0
        note, on_backlog = "", False
        if trig.type == "rabbitmq":
            signal, note, on_backlog = _rabbitmq(key, scaler, host_note)
        elif trig.type == "cron":
            note = (f"trigger {key} (cron): its window is read at the trace's timestamps as UTC epoch seconds "
                    "(a trace with relative times starts on 1970-01-01 00:00 UTC)")
        elif trig.type in ASSUMED:
            note = (f"assumption: trigger {key} ({trig.type}) reads the queue's backlog (items waiting) as "
                    f"{ASSUMED[trig.type]}; what the {'value' if trig.type == 'metrics-api' else 'query'} "
                    "measures cannot be known offline")
        if auth_note:
            note = f"{note}; {auth_note}" if note else f"trigger {key} ({trig.type}): {auth_note}"
        target = float(scaler.metric_specs()[0].target)  # 0 for a formula-only trigger: the formula's counts
        out.append(SimTrigger(key, signal, target if target > 0 else 1.0, activation, note, type=trig.type,
                              pushes=pushes(scaler), active_on_backlog=on_backlog,
                              schedule=config if trig.type == "cron" else None))
    return out
