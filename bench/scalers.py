"""Polling-cycle cost: 1,000 Redis list triggers and 200 Kafka consumer groups, read one at a time
versus in one batched cycle (scalers.batch.poll_cycle). Starts its own redis-server and tansu.

Prints a table and writes docs/benchmarks-scalers.md. Run: `make bench` or `.venv/bin/python bench/scalers.py`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.structs import OffsetAndMetadata  # noqa: E402

from scalers.base import Scaler, Trigger  # noqa: E402
from scalers.batch import poll_cycle  # noqa: E402
from scalers.kafka import KafkaScaler  # noqa: E402
from scalers.redis_lists import RedisListScaler  # noqa: E402
from tests.fixtures.kafka import tansu_binary  # noqa: E402
from tests.fixtures.redis import redis_argv  # noqa: E402
from tests.servers import free_port, run_server  # noqa: E402

REDIS_TRIGGERS = 1000
KAFKA_GROUPS = 200
CYCLES = 7


async def timed(label: str, fn: Callable[[], Awaitable[object]], n: int) -> dict[str, float | str]:
    await fn()  # warm: connections open
    walls, cpus = [], []
    for _ in range(CYCLES):
        w0, c0 = time.perf_counter(), time.process_time()
        await fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"case": label, "triggers": n, "cycle_ms": wall * 1000, "per_trigger_us": wall / n * 1e6,
            "cpu_ms": cpu * 1000}


async def redis_cases(address: str) -> list[dict[str, float | str]]:
    port = int(address.rsplit(":", 1)[1])
    pipe = subprocess.run(["redis-cli", "-p", str(port)], input="".join(
        f"RPUSH bench:{i} {' '.join(['x'] * (i % 7 + 1))}\n" for i in range(REDIS_TRIGGERS)),
        text=True, capture_output=True, check=True)
    del pipe
    scalers: list[Scaler] = [RedisListScaler(Trigger(type="redis", index=i, metadata={
        "address": address, "listName": f"bench:{i}"})) for i in range(REDIS_TRIGGERS)]

    async def sequential() -> None:
        for s in scalers:
            await s.metrics()

    async def concurrent() -> None:
        await asyncio.gather(*(s.metrics() for s in scalers))

    async def batched() -> None:
        out = await poll_cycle(scalers)
        assert all(not isinstance(r, Exception) for r in out)

    rows = [await timed("redis: one at a time (own connection each)", sequential, REDIS_TRIGGERS),
            await timed("redis: concurrent (own connection each)", concurrent, REDIS_TRIGGERS),
            await timed("redis: batched cycle (one pipeline per server)", batched, REDIS_TRIGGERS)]
    for s in scalers:
        await s.close()
    return rows


async def kafka_cases(address: str) -> list[dict[str, float | str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    await admin.create_topics([NewTopic("bench", 4, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    for i in range(40):
        await producer.send_and_wait("bench", b"x", partition=i % 4)
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id="bench-0", enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition("bench", p) for p in range(4)])
    await consumer.commit({TopicPartition("bench", p): OffsetAndMetadata(p, "") for p in range(4)})
    await consumer.stop()
    scalers: list[Scaler] = [KafkaScaler(Trigger(type="kafka", index=i, metadata={
        "bootstrapServers": address, "consumerGroup": f"bench-{i}", "topic": "bench"})) for i in range(KAFKA_GROUPS)]

    async def sequential() -> None:
        for s in scalers:
            await s.metrics()

    async def batched() -> None:
        out = await poll_cycle(scalers)
        assert all(not isinstance(r, Exception) for r in out), [r for r in out if isinstance(r, Exception)][:1]

    rows = [await timed("kafka: one at a time (shared connection)", sequential, KAFKA_GROUPS),
            await timed("kafka: batched cycle (shared metadata + end offsets)", batched, KAFKA_GROUPS)]
    for s in scalers:
        await s.close()
    return rows


def render(rows: list[dict[str, float | str]]) -> str:
    lines = ["| case | triggers | cycle (ms) | per trigger (µs) | client CPU (ms) | vs one at a time |",
             "|---|---:|---:|---:|---:|---:|"]
    base: dict[str, float] = {}
    for r in rows:
        kind = str(r["case"]).split(":")[0]
        base.setdefault(kind, float(r["cycle_ms"]))
        ratio = float(r["cycle_ms"]) / base[kind]
        lines.append(f"| {r['case']} | {r['triggers']} | {float(r['cycle_ms']):.1f} | {float(r['per_trigger_us']):.1f}"
                     f" | {float(r['cpu_ms']):.1f} | {ratio:.3f}× |")
    return "\n".join(lines)


async def main() -> None:
    redis_port, kafka_port = free_port(), free_port()
    url = f"tcp://127.0.0.1:{kafka_port}"
    with run_server(redis_argv(redis_port), redis_port), run_server(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"], kafka_port):
        rows = await redis_cases(f"127.0.0.1:{redis_port}")
        rows += await kafka_cases(f"127.0.0.1:{kafka_port}")
    table = render(rows)
    print(table)
    header = (f"# Scaler polling-cycle benchmark\n\nMeasured by `bench/scalers.py` on {platform.machine()}, "
              f"Python {platform.python_version()}, {os.cpu_count()} cores; median of {CYCLES} warm cycles. "
              "Servers are local (redis-server 7, tansu), so the numbers are client cost plus loopback round "
              "trips. 'client CPU' is this process's CPU time per cycle (the servers run in other processes).\n\n")
    (ROOT / "docs" / "benchmarks-scalers.md").write_text(header + table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
