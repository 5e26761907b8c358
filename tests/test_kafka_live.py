"""The kafka trigger against a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from scalers.base import Trigger
from scalers.errors import NotFoundError, UnreachableError
from scalers.kafka import KafkaScaler
from tests.servers import Server, free_port


class Broker:
    def __init__(self, address: str) -> None:
        self.address = address

    async def topic(self, partitions: int, per_partition: list[int]) -> str:
        """A new topic with `per_partition[i]` records in partition i, one record per batch
        (tansu reports the latest offset per batch, see INFRA.md)."""
        name = f"t-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=self.address)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=self.address)
        await producer.start()
        try:
            for partition, count in enumerate(per_partition):
                for _ in range(count):
                    await producer.send_and_wait(name, b"x", partition=partition)
        finally:
            await producer.stop()
        return name

    async def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.address, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in offsets])
            await consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()})
        finally:
            await consumer.stop()


@pytest.fixture
async def broker(kafka_broker: Server) -> AsyncIterator[Broker]:
    yield Broker(kafka_broker.address)


async def read(broker: Broker, **meta: str) -> tuple[float, bool]:
    scaler = KafkaScaler(Trigger(type="kafka", name="k", metadata={"bootstrapServers": broker.address} | meta))
    try:
        reading = await scaler.metrics()
        return next(iter(reading.values.values())), reading.active
    finally:
        await scaler.close()


async def test_lag_is_latest_minus_committed(broker: Broker) -> None:
    topic = await broker.topic(3, [5, 3, 0])
    await broker.commit("g1", topic, {0: 2, 1: 3, 2: 0})
    assert await read(broker, consumerGroup="g1", topic=topic) == (3.0, True)


async def test_no_committed_offset_follows_offset_reset_policy(broker: Broker) -> None:
    topic = await broker.topic(2, [4, 2])
    # latest: a partition without commit counts 1 (so the workload wakes up), earliest: everything
    assert await read(broker, consumerGroup="fresh", topic=topic) == (2.0, True)
    assert await read(broker, consumerGroup="fresh", topic=topic, offsetResetPolicy="earliest") == (6.0, True)
    assert await read(broker, consumerGroup="fresh", topic=topic, scaleToZeroOnInvalidOffset="true") == (0.0, False)


async def test_idle_consumer_cap_and_activation(broker: Broker) -> None:
    topic = await broker.topic(2, [30, 30])
    await broker.commit("g2", topic, {0: 0, 1: 0})
    # lag 60 with threshold 10 would ask 6 consumers; only 2 partitions → capped at 2×10
    assert await read(broker, consumerGroup="g2", topic=topic) == (20.0, True)
    assert await read(broker, consumerGroup="g2", topic=topic, allowIdleConsumers="true") == (60.0, True)
    assert (await read(broker, consumerGroup="g2", topic=topic, activationLagThreshold="60"))[1] is False


async def test_partition_limitation_and_group_topics(broker: Broker) -> None:
    topic = await broker.topic(3, [2, 4, 8])
    await broker.commit("g3", topic, {0: 0, 1: 0, 2: 0})
    assert await read(broker, consumerGroup="g3", topic=topic, partitionLimitation="0-1") == (6.0, True)
    # no topic: every topic the group has committed offsets for
    value, active = await read(broker, consumerGroup="g3", allowIdleConsumers="true")
    assert (value, active) == (14.0, True)


async def test_exclude_persistent_lag_across_polls(broker: Broker) -> None:
    topic = await broker.topic(1, [5])
    await broker.commit("g4", topic, {0: 1})
    scaler = KafkaScaler(Trigger(type="kafka", metadata={"bootstrapServers": broker.address, "consumerGroup": "g4",
                                                        "topic": topic, "excludePersistentLag": "true"}))
    try:
        first = await scaler.metrics()
        second = await scaler.metrics()  # committed offset did not move: the lag is persistent
        assert list(first.values.values()) == [4.0] and list(second.values.values()) == [0.0]
        assert second.active  # still active: persistent lag keeps the workload awake
    finally:
        await scaler.close()


async def test_missing_topic_is_not_found(broker: Broker) -> None:
    with pytest.raises(NotFoundError, match='kafka "k"'):
        await read(broker, consumerGroup="g", topic="does-not-exist")


async def test_unreachable_broker_is_typed_and_bounded() -> None:
    scaler = KafkaScaler(Trigger(type="kafka", name="k", timeout_s=0.5,
                                 metadata={"bootstrapServers": f"127.0.0.1:{free_port()}", "consumerGroup": "g",
                                           "topic": "t"}))
    start = time.monotonic()
    with pytest.raises(UnreachableError, match='kafka "k"'):
        await scaler.metrics()
    assert time.monotonic() - start < 10
    await scaler.close()
