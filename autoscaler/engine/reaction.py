"""When the operator decides for a ScaledObject: its reaction path, one rule for the live
operator and the simulator.

A ScaledObject is due every `pollingInterval` (KEDA's meaning). A scaler whose source pushes
changes (it has `changes()`: Redis keyspace notifications) wakes it `WAKE_COALESCE_S` after a
change; a trigger type surge can read cheaply in batches (Kafka lag, SQS queue attributes,
Prometheus instant queries, Redis stream lag) is read every `LAG_WATCH_S`, so work arriving at an
idle consumer, or a consumer falling behind, is seen within a second, not at the next poll. While a cycle
runs, a wake is remembered and runs right after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

WAKE_COALESCE_S = 0.05  # let a burst of pushes land in one cycle
LAG_WATCH_S = 1.0
LAG_WATCHED = frozenset({"kafka", "aws-sqs-queue", "prometheus", "redis-streams", "redis-cluster-streams",
                         "redis-sentinel-streams"})


def pushes(scaler: Any) -> bool:
    """Whether the scaler's source notifies changes (the operator follows `changes()`)."""
    return hasattr(scaler, "changes")


# read from the clock alone, no I/O: never a reason to poll a watched object less often
FREE_TO_READ = frozenset({"cron"})


def watch_interval(trigger_types: Iterable[str]) -> float | None:
    """How often an object's lag is read between polls: every `LAG_WATCH_S` when all its triggers
    are cheap to read in batches (idle ones too: waking from zero is when a second matters most) —
    a cron trigger beside them costs nothing to read — and at least one has lag to watch; None
    (poll only) otherwise."""
    types = list(trigger_types)
    if not any(t in LAG_WATCHED for t in types) or not all(t in LAG_WATCHED | FREE_TO_READ for t in types):
        return None
    return LAG_WATCH_S


def next_due(due: float, polling_interval: float, now: float, woken: bool, watch_s: float | None = None) -> float:
    """When the object is due after a cycle that was due at `due` and ended at `now`: right away
    when a change arrived meanwhile; else one interval on, from now when behind (no bursts)."""
    if woken:
        return now + WAKE_COALESCE_S
    step = polling_interval if watch_s is None else min(polling_interval, watch_s)
    return max(due + step, now)


def on_change(due: float, now: float) -> float:
    """A pushed change makes the object due `WAKE_COALESCE_S` from now (never later than it was)."""
    return min(due, now + WAKE_COALESCE_S)
