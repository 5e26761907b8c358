"""The work the pods do: a first-in-first-out fluid queue, advanced one tick at a time.

Both workload kinds are this queue. A queue workload (Kafka, Redis, SQS) never drops items;
an HTTP workload drops requests that waited longer than its timeout. Waits are recorded in a
histogram at tick resolution (whole items, fractional masses), which is what makes percentiles
and "minutes above the SLO" cheap on a 14-day trace.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WaitStats:
    arrived: float
    processed: float
    dropped: float
    backlog: float
    p50: float
    p95: float
    p99: float
    mean: float
    violation_minutes: int
    cold_violation_minutes: int = 0  # of those, minutes whose work arrived while no pod was ready


class FifoQueue:
    """Arrivals are spread evenly inside a tick; service takes the oldest mass first."""

    def __init__(self, tick: float, span: float, slo_seconds: float, timeout: float | None = None):
        self.tick = tick
        self.slo = slo_seconds
        self.timeout = timeout
        self._chunks: deque[list[float]] = deque()  # [arrival_time, mass]
        self.backlog = 0.0
        self.arrived = 0.0
        self.processed = 0.0
        self.dropped = 0.0
        self._hist = [0.0] * 4096  # waits in ticks (a list: cheaper per tick than numpy scalars); last bin unused
        self._tail_waits: list[tuple[float, float]] = []
        self._violated = np.zeros(int(span // 60) + 2, dtype=bool)
        self._cold = np.zeros(int(span // 60) + 2, dtype=bool)

    def mark_cold(self, now: float) -> None:
        """Work arriving now finds no ready pod: a cold start (from zero, or a fresh workload)."""
        self._cold[min(int(now // 60), len(self._cold) - 1)] = True

    def arrive(self, now: float, mass: float) -> None:
        if mass > 0:
            self._chunks.append([now, mass])
            self.backlog += mass
            self.arrived += mass

    def serve(self, now: float, capacity: float) -> float:
        """Process up to `capacity` items at the end of the tick that began at `now`; returns how many."""
        if self.timeout is not None:
            self._drop_expired(now)
        done = 0.0
        chunks = self._chunks
        hist, tick, slo, last = self._hist, self.tick, self.slo, len(self._hist) - 1
        while capacity > 1e-12 and chunks:
            chunk = chunks[0]
            arrived_at, mass = chunk
            take = mass if mass <= capacity else capacity
            wait = now - arrived_at  # the wait histogram, inline: this is the simulator's hottest loop
            bin_ = int(wait / tick + 0.5)
            if bin_ < last:
                hist[bin_] += take
            else:
                self._tail_waits.append((wait, take))
            if wait > slo:
                self._mark(arrived_at)
            capacity -= take
            done += take
            if take >= mass:
                chunks.popleft()
            else:
                chunk[1] -= take
        self.backlog -= done
        if self.backlog < 1e-9:
            self.backlog = 0.0
        self.processed += done
        return done

    def _drop_expired(self, now: float) -> None:
        assert self.timeout is not None
        chunks = self._chunks
        while chunks and now - chunks[0][0] > self.timeout:
            t, mass = chunks.popleft()
            self.dropped += mass
            self.backlog -= mass
            self._mark(t)

    def _mark(self, arrived_at: float) -> None:
        self._violated[min(int(arrived_at // 60), len(self._violated) - 1)] = True

    def stats(self, now: float) -> WaitStats:
        """Items still queued at the end count with the wait they have had so far (a lower bound)."""
        hist = np.array(self._hist)
        tail = list(self._tail_waits)
        for t, left in self._chunks:
            wait = now - t
            if wait > self.slo:
                self._mark(t)
            b = int(wait / self.tick + 0.5)
            if b < len(hist) - 1:
                hist[b] += left
            else:
                tail.append((wait, left))
        waits = np.concatenate([np.arange(len(hist) - 1) * self.tick, [w for w, _ in tail]])
        mass = np.concatenate([hist[:-1], [m for _, m in tail]])
        return WaitStats(
            arrived=self.arrived, processed=self.processed, dropped=self.dropped, backlog=self.backlog,
            p50=_quantile(waits, mass, 0.5), p95=_quantile(waits, mass, 0.95), p99=_quantile(waits, mass, 0.99),
            mean=float(np.average(waits, weights=mass)) if mass.sum() > 0 else 0.0,
            violation_minutes=int(self._violated.sum()),
            cold_violation_minutes=int((self._violated & self._cold).sum()),
        )


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    total = weights.sum()
    if total <= 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cum, q * total - 1e-9))])
