"""Metric history: tiers, expiry and downsampling, the same in memory and in a real redis-server."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis

from autoscaler.history import TIERS, History, MemoryHistory, RedisHistory, pick_tier
from tests.servers import Server


@pytest.fixture(params=["memory", "redis"])
async def history(request: pytest.FixtureRequest) -> AsyncIterator[History]:
    if request.param == "memory":
        yield MemoryHistory()
        return
    server: Server = request.getfixturevalue("redis_plain")
    client = aioredis.Redis(host="127.0.0.1", port=server.port)
    yield RedisHistory(client, prefix=f"test:{uuid.uuid4().hex}")
    await client.aclose()


def test_tier_choice() -> None:
    assert pick_tier(0, 3 * 3600, 60).name == "1m"
    assert pick_tier(0, 3 * 3600, 300).name == "5m"
    assert pick_tier(0, 5 * 86400, 60).name == "5m"  # 1-minute buckets are kept two days only
    assert pick_tier(0, 600, 15).name == "1m"


async def test_raw_readings_within_the_hour(history: History) -> None:
    for i in range(60):
        await history.append("so/q", 1000.0 + 10 * i, float(i))
    t, v = await history.series("so/q", 1000.0, 1600.0, 30.0)
    assert len(t) == 20 and t[0] == 1000.0
    assert v[0] == pytest.approx(1.0)  # readings 0, 1, 2 at 1000, 1010, 1020
    assert v[-1] == pytest.approx(58.0)


async def test_downsampled_means_and_gaps(history: History) -> None:
    start = 86400.0 * 10
    for minute in range(180):
        if 60 <= minute < 70:
            continue  # ten minutes without readings
        for s in (0, 20, 40):
            await history.append("so/q", start + 60 * minute + s, float(minute % 30))
    t, v = await history.series("so/q", start, start + 3 * 3600, 300.0)
    assert len(t) == 36
    assert v[0] == pytest.approx(np.mean(range(5)))
    assert math.isnan(v[12]) and math.isnan(v[13])  # 60..69 missing
    _, v1 = await history.series("so/q", start, start + 3 * 3600, 60.0)
    assert v1[7] == pytest.approx(7.0)


async def test_old_buckets_expire(history: History) -> None:
    await history.append("so/q", 0.0, 5.0)
    await history.append("so/q", TIERS[1].keep_s + 600.0, 7.0)
    _, v = await history.series("so/q", 0.0, 120.0, 60.0)  # 1-minute tier, asked for the old bucket
    assert math.isnan(v[0])
    _, v5 = await history.series("so/q", 0.0, 600.0, 300.0)  # 5-minute tier keeps 14 days
    assert v5[0] == pytest.approx(5.0)


async def test_keys_are_separate(history: History) -> None:
    await history.append("a", 100.0, 1.0)
    await history.append("b", 100.0, 9.0)
    _, va = await history.series("a", 0.0, 300.0, 60.0)
    _, vb = await history.series("b", 0.0, 300.0, 60.0)
    assert va[1] == 1.0 and vb[1] == 9.0
