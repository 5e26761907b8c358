"""Per-route counters kept by an interceptor and the request-rate window the operator computes
from them — the KEDA HTTP add-on's definitions, pure (the time is passed in).

An interceptor counts, per route (`namespace/name`), the requests in flight (held ones included:
they are the pending requests the add-on scales on) and a monotonic request count, bumped when a
request arrives. The operator turns count deltas into a rate with `RequestBuckets`: `window /
granularity` buckets, and the rate is the window's total divided by the number of buckets the
window has seen so far — requests per `granularity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PRECISION = 3  # the add-on rounds the window average to three digits
DEFAULT_WINDOW_S = 60.0
DEFAULT_GRANULARITY_S = 1.0


@dataclass
class RouteCount:
    concurrency: int = 0
    request_count: int = 0


@dataclass
class Counter:
    """In-flight and total requests per route key, as one interceptor sees them."""

    routes: dict[str, RouteCount] = field(default_factory=dict)

    def ensure(self, key: str) -> None:
        self.routes.setdefault(key, RouteCount())

    def keep_only(self, keys: set[str]) -> None:
        for key in list(self.routes):
            if key not in keys:
                del self.routes[key]

    def increase(self, key: str) -> None:
        c = self.routes.setdefault(key, RouteCount())
        c.concurrency += 1
        c.request_count += 1

    def decrease(self, key: str) -> None:
        c = self.routes.get(key)
        if c is not None and c.concurrency > 0:
            c.concurrency -= 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The add-on's /queue JSON shape."""
        return {k: {"Concurrency": c.concurrency, "RequestCount": c.request_count} for k, c in self.routes.items()}


class RequestBuckets:
    """Requests per granularity, averaged over a sliding window (times in seconds)."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, granularity_s: float = DEFAULT_GRANULARITY_S) -> None:
        if window_s <= 0:
            window_s = DEFAULT_WINDOW_S
        if granularity_s <= 0:
            granularity_s = DEFAULT_GRANULARITY_S
        self.window = window_s
        self.granularity = granularity_s
        self.buckets = [0] * max(1, math.ceil(window_s / granularity_s))
        self.first: float | None = None
        self.last = -math.inf
        self.total = 0

    def _truncate(self, t: float) -> float:
        return math.floor(t / self.granularity) * self.granularity

    def _index(self, t: float) -> int:
        return math.floor(t / self.granularity)

    def record(self, now: float, value: int) -> None:
        bucket_time = self._truncate(now)
        idx = self._index(now)
        n = len(self.buckets)
        if self.last != bucket_time:
            if bucket_time + self.window <= self.last:
                return  # older than the window: dropped
            if self.first is None or self.first > bucket_time:
                self.first = bucket_time
            if bucket_time > self.last:
                if bucket_time - self.last >= self.window:
                    self.first = bucket_time
                    self.buckets = [0] * n
                    self.total = 0
                else:
                    for i in range(self._index(self.last) + 1, idx + 1):
                        self.total -= self.buckets[i % n]
                        self.buckets[i % n] = 0
                self.last = bucket_time
        self.buckets[idx % n] += value
        self.total += value

    def _seen(self) -> float:
        assert self.first is not None
        return min((self.last - self.first) // self.granularity + 1, len(self.buckets))

    def average(self, now: float) -> float:
        now = self._truncate(now)
        d = now - self.last
        if d >= self.window or self.first is None:
            return 0.0
        total = self.total
        if d > 0:
            n = len(self.buckets)
            for i in range(self._index(self.last) + 1, self._index(now) + 1):
                total -= self.buckets[i % n]
        return round(total / self._seen(), PRECISION)
