"""A batched polling cycle gives the same readings as reading each trigger alone."""

from __future__ import annotations

import uuid

from scalers.base import Scaler, Trigger
from scalers.batch import poll_cycle
from scalers.errors import NotFoundError, UnreachableError
from scalers.kafka import KafkaScaler
from scalers.redis_lists import RedisListScaler
from tests.fixtures.redis import cli
from tests.servers import Server, free_port
from tests.test_kafka_live import Broker


async def test_cycle_equals_single_reads(redis_plain: Server, kafka_broker: Server) -> None:
    names = [f"b-{uuid.uuid4().hex[:6]}" for _ in range(5)]
    for n, name in enumerate(names):
        if n:
            cli(redis_plain.port, "RPUSH", name, *["x"] * n)
    broker = Broker(kafka_broker.address)
    topic = await broker.topic(2, [3, 4])
    await broker.commit("bg1", topic, {0: 1, 1: 0})
    await broker.commit("bg2", topic, {0: 3, 1: 4})
    scalers: list[Scaler] = [RedisListScaler(Trigger(type="redis", index=i, metadata={
        "address": redis_plain.address, "listName": name})) for i, name in enumerate(names)]
    scalers += [KafkaScaler(Trigger(type="kafka", metadata={
        "bootstrapServers": kafka_broker.address, "consumerGroup": g, "topic": topic})) for g in ("bg1", "bg2")]
    scalers.append(RedisListScaler(Trigger(type="redis", name="down", metadata={
        "address": f"127.0.0.1:{free_port()}", "listName": "x"}, timeout_s=0.5)))
    scalers.append(KafkaScaler(Trigger(type="kafka", name="missing", metadata={
        "bootstrapServers": kafka_broker.address, "consumerGroup": "g", "topic": "absent-topic"})))
    try:
        batched = await poll_cycle(scalers)
        singles = []
        for s in scalers[:-2]:
            singles.append(await s.metrics())
        assert batched[:-2] == singles
        assert [next(iter(r.values.values())) for r in singles] == [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 0.0]
        assert isinstance(batched[-2], UnreachableError) and 'redis "down"' in str(batched[-2])
        assert isinstance(batched[-1], NotFoundError) and 'kafka "missing"' in str(batched[-1])
    finally:
        for s in scalers:
            await s.close()
