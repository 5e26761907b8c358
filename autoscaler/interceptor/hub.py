"""The operator's side of the interceptors: their reports summed into each route's signals.

`Signals` is the pure part (reports and the time in, loads out). Each interceptor replica reports
its per-route in-flight count and monotonic request count; concurrency is the sum of the latest
in-flight counts, and each report's request-count deltas go into the route's `RequestBuckets`
(a new instance of an interceptor — a restart — counts from zero; one the hub finds already running
when it starts is taken as a baseline, so an operator restart adds no burst). An interceptor that
is listed as ready but has not reported for `stale_after_s` makes every reading an error: a
missing reporter is not zero traffic. One that sent its final report (it drained) is simply done.

`InterceptorHub` is the shell: it follows the interceptor admin Service's EndpointSlices and keeps a
`/stream` open to each ready endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from autoscaler.interceptor.counts import RequestBuckets
from autoscaler.interceptor.routes import Metric

log = logging.getLogger("surge.interceptor.hub")
STALE_AFTER_S = 3.0  # six missed 500 ms reports (KEDA's own scaler timeout is 3 s)
STREAM_IDLE_S = 10.0


@dataclass
class Reporter:
    instance: str = ""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    last_seen: float | None = None
    final: bool = False


@dataclass
class Signals:
    started: float  # wall-clock time the hub started: older interceptor instances are baselines
    stale_after_s: float = STALE_AFTER_S
    reporters: dict[str, Reporter] = field(default_factory=dict)  # endpoint → its latest report
    listed: set[str] = field(default_factory=set)  # endpoints the Service lists as ready
    metrics: dict[str, Metric] = field(default_factory=dict)  # route key → what it scales on
    kinds: dict[str, str] = field(default_factory=dict)  # route key → HTTPScaledObject / InterceptorRoute
    buckets: dict[str, RequestBuckets] = field(default_factory=dict)

    def set_endpoints(self, endpoints: set[str]) -> None:
        self.listed = set(endpoints)
        for gone in set(self.reporters) - self.listed:
            if self.reporters[gone].final or self.reporters[gone].last_seen is None:
                del self.reporters[gone]

    def set_route(self, key: str, kind: str, metric: Metric | None) -> None:
        if metric is None:
            self.metrics.pop(key, None)
            self.kinds.pop(key, None)
            self.buckets.pop(key, None)
            return
        self.metrics[key], self.kinds[key] = metric, kind
        b = self.buckets.get(key)
        if b is None or (b.window, b.granularity) != (metric.window_s, metric.granularity_s):
            self.buckets[key] = RequestBuckets(metric.window_s, metric.granularity_s)

    def concurrency(self, key: str) -> int:
        return sum((r.counts.get(key) or {}).get("Concurrency", 0) for r in self.reporters.values() if not r.final)

    def observe(self, endpoint: str, report: dict[str, Any], now: float, mono: float) -> list[str]:
        """Take one report; returns the routes that went from idle to having requests (to wake)."""
        instance = str(report.get("instance", ""))
        counts: dict[str, dict[str, int]] = report.get("counts") or {}
        before = {k: self.concurrency(k) for k in counts}
        r = self.reporters.setdefault(endpoint, Reporter())
        fresh = r.instance != instance
        new_process = fresh and float(report.get("started", 0)) >= self.started
        deltas: dict[str, int] = {}
        for key, c in counts.items():
            total = int(c.get("RequestCount", 0))
            if fresh:
                deltas[key] = total if new_process else 0
            else:
                old = int((r.counts.get(key) or {}).get("RequestCount", 0))
                deltas[key] = total - old if total >= old else total
        r.instance, r.counts, r.last_seen, r.final = instance, counts, mono, bool(report.get("final"))
        for key, b in self.buckets.items():
            b.record(now, deltas.get(key, 0))
        return [k for k in counts if before.get(k, 0) == 0 and self.concurrency(k) > 0]

    def check(self, mono: float) -> None:
        """Raise RuntimeError when the counts cannot be trusted."""
        if not self.listed:
            raise RuntimeError("no interceptor is ready to report request counts")
        for endpoint in sorted(self.listed):
            r = self.reporters.get(endpoint)
            if r is not None and r.final:
                continue
            if r is None or r.last_seen is None:
                raise RuntimeError(f"interceptor {endpoint} has not reported yet")
            if mono - r.last_seen > self.stale_after_s:
                raise RuntimeError(f"interceptor {endpoint} has not reported for {mono - r.last_seen:.1f}s")

    def load(self, kind: str, namespace: str, name: str, now: float, mono: float) -> float:
        """The route's load in replicas (see scalers/http_addon.py); legacy: all pending requests."""
        self.check(mono)
        if kind == "legacy":
            keys = {k for r in self.reporters.values() if not r.final for k in r.counts}
            return float(sum(self.concurrency(k) for k in keys))
        key = f"{namespace}/{name}"
        metric = self.metrics.get(key)
        if metric is None:
            raise LookupError(f"{kind} {key} not found")
        ratios = []
        if metric.concurrency:
            ratios.append(self.concurrency(key) / metric.concurrency)
        if metric.rate:
            rate = self.buckets[key].average(now)
            ratios.append((math.ceil(rate) if metric.ceil_rate else rate) / metric.rate)
        return max(ratios, default=0.0)


class InterceptorHub:
    """Follows the interceptors' reports; the `CountsSource` of scalers/http_addon.py."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.clock, self.monotonic = clock, monotonic
        self.signals = Signals(clock(), stale_after_s)
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.waiters: dict[str, set[asyncio.Queue[None]]] = {}
        self.session: aiohttp.ClientSession | None = None

    # --- CountsSource ------------------------------------------------------------------------------
    def load(self, kind: str, namespace: str, name: str) -> float:
        return self.signals.load(kind, namespace, name, self.clock(), self.monotonic())

    async def changes(self, kind: str, namespace: str, name: str) -> AsyncIterator[None]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        key = "*" if kind == "legacy" else f"{namespace}/{name}"
        self.waiters.setdefault(key, set()).add(queue)
        try:
            while True:
                await queue.get()
                yield None
        finally:
            self.waiters[key].discard(queue)

    # --- following the interceptors ----------------------------------------------------------------
    def set_endpoints(self, endpoints: set[str]) -> None:
        """Open a stream to every new endpoint, close the ones no longer listed."""
        self.signals.set_endpoints(endpoints)
        for gone in set(self.followers) - endpoints:
            self.followers.pop(gone).cancel()
        for new in endpoints - set(self.followers):
            self.followers[new] = asyncio.create_task(self._follow(new), name=f"interceptor/{new}")

    def take(self, endpoint: str, report: dict[str, Any]) -> None:
        woken = self.signals.observe(endpoint, report, self.clock(), self.monotonic())
        for key in woken:
            for k in (key, "*"):
                for q in self.waiters.get(k, ()):
                    with contextlib.suppress(asyncio.QueueFull):
                        q.put_nowait(None)

    async def _follow(self, endpoint: str) -> None:
        if self.session is None:
            # a stream silent for STREAM_IDLE_S (twenty reports' worth) is reopened: a dead peer on a
            # half-open connection would otherwise keep it forever (staleness errors come at 3 s anyway)
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=2,
                                                                               sock_read=STREAM_IDLE_S))
        while True:
            try:
                async with self.session.get(f"http://{endpoint}/stream") as resp:
                    resp.raise_for_status()
                    async for line in resp.content:  # after a final line the process may come back
                        if line.strip():
                            self.take(endpoint, json.loads(line))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("interceptor %s stream ended: %s", endpoint, exc)
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        for task in self.followers.values():
            task.cancel()
        await asyncio.gather(*self.followers.values(), return_exceptions=True)
        self.followers.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None


def admin_endpoints(slices: dict[str, dict[str, Any]], port_name: str = "admin") -> set[str]:
    """host:port of every ready endpoint on the admin port, from the admin Service's EndpointSlices."""
    out: set[str] = set()
    for obj in slices.values():
        ports = [p for p in obj.get("ports") or [] if p.get("port") is not None]
        chosen = [p for p in ports if p.get("name") == port_name] or (ports if len(ports) == 1 else [])
        for ep in obj.get("endpoints") or []:
            if ep.get("addresses") and (ep.get("conditions") or {}).get("ready") is not False:
                for p in chosen:
                    out.add(f"{ep['addresses'][0]}:{p['port']}")
    return out
