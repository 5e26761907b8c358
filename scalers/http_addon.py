"""`external-push` as the KEDA HTTP add-on uses it: the HTTP request signals of a route.

The add-on's ScaledObjects name their route in the trigger metadata — `httpScaledObject: <name>`
(what its operator generates), `interceptorRoute: <name>` (v1beta1) or the legacy
`interceptorTargetPendingRequests: <n>` (all hosts' pending requests summed) — and point
`scalerAddress` at the add-on's scaler. surge serves these in-process: the operator's interceptor
hub registers itself as the `CountsSource` with `use_source`, and `scalerAddress` is not dialled.

A route may scale on concurrency, on request rate, or on both, where the add-on's HPA takes the
larger replica count. One metric carries that here: the load in replicas, max(concurrency /
target, rate / target), against a target of 1 — the same replica count (ceil of the larger ratio),
and one reading the forecaster can learn from. The legacy form keeps raw pending requests against
its own target. Any other `external-push` is not served (the add-on's metadata is expected).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from scalers.base import MetricSpec, Reading, Trigger, metric_name
from scalers.errors import ConfigError, FieldError, ScalerError

_UNSAFE = re.compile(r"[^-.0-9A-Za-z]")


class SignalError(ScalerError):
    """The route's signals cannot be read: unknown route, or an interceptor stopped reporting."""


class CountsSource(Protocol):
    def load(self, kind: str, namespace: str, name: str) -> float:
        """Replicas' worth of load on the route (or summed pending requests for kind "legacy");
        raises LookupError / RuntimeError with a message when that cannot be known."""
        ...

    def changes(self, kind: str, namespace: str, name: str) -> AsyncIterator[None]:
        """Yields whenever a request starts waiting on the route while it is idle."""
        ...


_source: CountsSource | None = None


def use_source(source: CountsSource | None) -> None:
    """Set by the operator that runs the interceptor hub (one per process)."""
    global _source
    _source = source


def _escape(s: str) -> str:
    return _UNSAFE.sub(lambda m: f"_{ord(m.group()):04X}", s)


@dataclass(frozen=True)
class HTTPConfig:
    kind: str  # "HTTPScaledObject", "InterceptorRoute" or "legacy"
    name: str
    target: float


def parse(trigger: Trigger) -> HTTPConfig:
    md = trigger.metadata
    if md.get("interceptorRoute"):
        return HTTPConfig("InterceptorRoute", md["interceptorRoute"], 1.0)
    if md.get("httpScaledObject"):
        return HTTPConfig("HTTPScaledObject", md["httpScaledObject"], 1.0)
    if "interceptorTargetPendingRequests" in md:
        raw = md["interceptorTargetPendingRequests"]
        try:
            target = int(raw)
        except ValueError:
            target = 0
        if target <= 0:
            raise ConfigError(trigger.label, [FieldError("interceptorTargetPendingRequests",
                                                         f"got {raw!r}, expected a positive integer")])
        return HTTPConfig("legacy", "", float(target))
    raise ConfigError(trigger.label, [FieldError(
        "httpScaledObject", "surge serves external-push for the KEDA HTTP add-on only: expected httpScaledObject, "
                            "interceptorRoute or interceptorTargetPendingRequests", unsupported=True)])


class HTTPAddonScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse(trigger)

    def metric_specs(self) -> list[MetricSpec]:
        c = self.config
        if c.kind == "InterceptorRoute":
            name = f"http_{c.name}_load"
        elif c.kind == "HTTPScaledObject":
            name = _escape(f"http-{self.trigger.namespace}/{c.name}")
        else:
            name = _escape(f"http-{self.trigger.namespace}/{self.trigger.name or 'pending'}")
        return [MetricSpec(metric_name(self.trigger, name), c.target, "AverageValue")]

    async def metrics(self) -> Reading:
        if _source is None:
            raise SignalError(self.trigger.label, "no interceptor hub runs in this operator (HTTP scaling is off)")
        try:
            value = _source.load(self.config.kind, self.trigger.namespace, self.config.name)
        except (LookupError, RuntimeError) as exc:
            raise SignalError(self.trigger.label, str(exc)) from None
        return Reading({self.metric_specs()[0].name: value}, active=value > 0)

    async def changes(self) -> AsyncIterator[None]:
        if _source is None:
            return
        async for _ in _source.changes(self.config.kind, self.trigger.namespace, self.config.name):
            yield None

    async def close(self) -> None:
        return None
