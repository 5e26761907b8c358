"""Metric history per (ScaledObject, trigger): what the forecaster learns from.

Three tiers, like a round-robin database: raw readings for an hour, 1-minute buckets for two
days, 5-minute buckets for fourteen days; each bucket keeps sum, count and max so means and peaks
survive downsampling. Two stores with one interface: in memory (simulator, tests) and Redis
(survives operator restarts and is shared by its replicas; one hash per tier plus a sorted-set
index to expire buckets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Tier:
    name: str
    step_s: float  # 0: raw readings
    keep_s: float


TIERS = (Tier("raw", 0, 3600), Tier("1m", 60, 2 * 86400), Tier("5m", 300, 14 * 86400))


class History(Protocol):
    async def append(self, key: str, t: float, value: float) -> None: ...

    async def series(self, key: str, since: float, until: float, step_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(bucket start times, mean values) on a `step_s` grid, NaN where nothing was recorded."""
        ...


def pick_tier(since: float, until: float, step_s: float) -> Tier:
    """The coarsest bucket tier that still holds `since` and is no coarser than `step_s` (least data
    to read); the finest tier holding the span when `step_s` is finer than every tier."""
    holds = [t for t in TIERS[1:] if until - since <= t.keep_s] or [TIERS[-1]]
    fine_enough = [t for t in holds if t.step_s <= step_s]
    return max(fine_enough, key=lambda t: t.step_s) if fine_enough else holds[0]


def regrid(points: list[tuple[float, float, float]], since: float, until: float, step_s: float) -> tuple[
        np.ndarray, np.ndarray]:
    """Weighted means of (time, sum, count) buckets on the requested grid."""
    n = max(0, math.ceil((until - since) / step_s))
    sums, counts = np.zeros(n), np.zeros(n)
    for t, s, c in points:
        i = int((t - since) // step_s)
        if 0 <= i < n:
            sums[i] += s
            counts[i] += c
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    return since + np.arange(n) * step_s, means


@dataclass
class MemoryHistory:
    raw: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    buckets: dict[tuple[str, str], dict[float, list[float]]] = field(default_factory=dict)  # [sum, count, max]

    async def append(self, key: str, t: float, value: float) -> None:
        raw = self.raw.setdefault(key, [])
        raw.append((t, value))
        cutoff = t - TIERS[0].keep_s
        if raw[0][0] < cutoff:
            self.raw[key] = [p for p in raw if p[0] >= cutoff]
        for tier in TIERS[1:]:
            b = self.buckets.setdefault((key, tier.name), {})
            start = t - t % tier.step_s
            cell = b.setdefault(start, [0.0, 0.0, -math.inf])
            cell[0] += value
            cell[1] += 1
            cell[2] = max(cell[2], value)
            old = [s for s in b if s < t - tier.keep_s]
            for s in old:
                del b[s]

    async def series(self, key: str, since: float, until: float, step_s: float) -> tuple[np.ndarray, np.ndarray]:
        if until - since <= TIERS[0].keep_s and step_s < TIERS[1].step_s:
            points = [(t, v, 1.0) for t, v in self.raw.get(key, []) if since <= t < until]
        else:
            tier = pick_tier(since, until, step_s)
            points = [(s, c[0], c[1]) for s, c in self.buckets.get((key, tier.name), {}).items()]
        return regrid(points, since, until, step_s)


# Atomically add one reading to a tier's bucket: sum, count, max, and the expiry index.
_APPEND = """
local start = ARGV[1]
local value = tonumber(ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], start, value)
redis.call('HINCRBY', KEYS[2], start, 1)
local old = redis.call('HGET', KEYS[3], start)
if (not old) or tonumber(old) < value then redis.call('HSET', KEYS[3], start, ARGV[2]) end
redis.call('ZADD', KEYS[4], start, start)
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
  redis.call('HDEL', KEYS[3], unpack(expired))
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])
end
return #expired
"""


class RedisHistory:
    """The same tiers in Redis under `prefix`; `client` is a redis.asyncio client."""

    def __init__(self, client: Any, prefix: str = "surge:history"):
        self.client = client
        self.prefix = prefix
        self._sha: str | None = None

    def _k(self, key: str, tier: str, part: str) -> str:
        return f"{self.prefix}:{{{key}}}:{tier}:{part}"

    async def append(self, key: str, t: float, value: float) -> None:
        if self._sha is None:
            self._sha = await self.client.script_load(_APPEND)
        pipe = self.client.pipeline(transaction=False)
        raw = self._k(key, "raw", "z")
        pipe.zadd(raw, {f"{t!r}:{value!r}": t})
        pipe.zremrangebyscore(raw, "-inf", f"({t - TIERS[0].keep_s!r}")
        for tier in TIERS[1:]:
            start = t - t % tier.step_s
            pipe.evalsha(self._sha, 4, *[self._k(key, tier.name, p) for p in ("sum", "count", "max", "idx")],
                         repr(start), repr(value), repr(t - tier.keep_s))
        await pipe.execute()

    async def series(self, key: str, since: float, until: float, step_s: float) -> tuple[np.ndarray, np.ndarray]:
        if until - since <= TIERS[0].keep_s and step_s < TIERS[1].step_s:
            members = await self.client.zrangebyscore(self._k(key, "raw", "z"), since, f"({until!r}")
            points = []
            for m in members:
                t, v = (m.decode() if isinstance(m, bytes) else m).split(":")
                points.append((float(t), float(v), 1.0))
            return regrid(points, since, until, step_s)
        tier = pick_tier(since, until, step_s)
        sums = await self.client.hgetall(self._k(key, tier.name, "sum"))
        counts = await self.client.hgetall(self._k(key, tier.name, "count"))
        pts = [(float(s), float(v), float(counts.get(s, 0))) for s, v in sums.items()]
        return regrid(pts, since, until, step_s)
