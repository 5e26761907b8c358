"""Polling-cycle cost: 1,000 Redis list triggers and 200 Kafka consumer groups, read one at a time
versus in one batched cycle (scalers.batch.poll_cycle). Starts its own redis-server and tansu.

Then the read cost of each newer scaler (postgresql, mysql, rabbitmq over AMQP and HTTP,
nats-jetstream, metrics-api, cpu, kubernetes-workload): 50 triggers on one server, one at a time
versus one cycle (shared connection or pool per server, reads in parallel). Starts PostgreSQL,
MariaDB, RabbitMQ, nats-server, an aiohttp endpoint and the Kubernetes API emulator.

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

NEW_TRIGGERS = 50
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


async def compare(kind: str, make: Callable[[int], Scaler], n: int = NEW_TRIGGERS) -> list[dict[str, float | str]]:
    scalers = [make(i) for i in range(n)]

    async def sequential() -> None:
        for sc in scalers:
            await sc.metrics()

    async def batched() -> None:
        out = await poll_cycle(scalers)
        assert all(not isinstance(r, Exception) for r in out), [r for r in out if isinstance(r, Exception)][:1]

    rows = [await timed(f"{kind}: one at a time", sequential, n), await timed(f"{kind}: batched cycle", batched, n)]
    for sc in scalers:
        await sc.close()
    return rows


async def new_scaler_cases() -> list[dict[str, float | str]]:
    import contextlib

    import aio_pika
    import nats
    from aiohttp import web
    from kubernetes_asyncio import client as k8s

    from scalers import kube_source
    from scalers.cpu_memory import CpuMemoryScaler
    from scalers.kubernetes_workload import KubernetesWorkloadScaler
    from scalers.metrics_api import MetricsApiScaler
    from scalers.mysql import MySqlScaler
    from scalers.nats_jetstream import NatsJetStreamScaler
    from scalers.postgresql import PostgresScaler
    from scalers.rabbitmq import RabbitMQScaler
    from tests.fixtures.http import http_server
    from tests.fixtures.rabbitmq import start_broker, stop_broker
    from tests.fixtures.sql import mariadb, postgres
    from tests.k8s.emulator import Emulator
    from tests.servers import require_binary

    rows: list[dict[str, float | str]] = []
    with postgres() as pg:
        rows += await compare("postgresql", lambda i: PostgresScaler(Trigger(type="postgresql", index=i, metadata={
            "query": "SELECT 42", "targetQueryValue": "5", "host": pg.host, "port": str(pg.port),
            "userName": pg.user, "dbName": pg.database, "sslmode": "disable"}, auth_params={"password": pg.password})))
    with mariadb() as my:
        rows += await compare("mysql", lambda i: MySqlScaler(Trigger(type="mysql", index=i, metadata={
            "query": "SELECT 42", "queryValue": "5", "host": my.host, "port": str(my.port), "username": my.user,
            "dbName": my.database}, auth_params={"password": my.password})))
    broker = start_broker()
    try:
        conn = await aio_pika.connect(broker.amqp_url)
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("bench")
        rows += await compare("rabbitmq (AMQP)", lambda i: RabbitMQScaler(Trigger(type="rabbitmq", index=i, metadata={
            "queueName": "bench", "host": broker.amqp_url})))
        rows += await compare("rabbitmq (management API)", lambda i: RabbitMQScaler(Trigger(
            type="rabbitmq", index=i, auth_params={"username": "guest", "password": "guest"},
            metadata={"queueName": "bench", "host": broker.http_url})))
    finally:
        stop_broker(broker)
    port, monitor = free_port(), free_port()
    with run_server([require_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js"],
                    port):
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream()
        await js.add_stream(name="bench", subjects=["bench.*"])
        await js.pull_subscribe("bench.*", durable="w", stream="bench")
        await nc.close()
        rows += await compare("nats-jetstream", lambda i: NatsJetStreamScaler(Trigger(
            type="nats-jetstream", index=i, metadata={"natsServerMonitoringEndpoint": f"127.0.0.1:{monitor}",
                                                      "account": "$G", "stream": "bench", "consumer": "w"})))

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"queue": {"depth": 7}})

    async with http_server(handle) as url:
        rows += await compare("metrics-api", lambda i: MetricsApiScaler(Trigger(
            type="metrics-api", index=i, metadata={"url": url, "valueLocation": "queue.depth", "targetValue": "5"})))
    em = Emulator()
    runner = web.AppRunner(em.app)
    await runner.setup()
    kport = free_port()
    await web.TCPSite(runner, "127.0.0.1", kport).start()
    em.put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}})
    for i in range(20):
        em.put("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"web-{i}", "namespace": "default", "labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": "500m"}}}]}, "status": {"phase": "Running"}})
        em.put("metrics.k8s.io/v1beta1", "pods", {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
                                                  "metadata": {"name": f"web-{i}", "namespace": "default"},
                                                  "containers": [{"name": "app", "usage": {"cpu": "250m"}}]})
    try:
        async with k8s.ApiClient(k8s.Configuration(host=f"http://127.0.0.1:{kport}")) as api:
            kube_source.use(api)
            rows += await compare("cpu (20 pods)", lambda i: CpuMemoryScaler(Trigger(
                type="cpu", index=i, metadata={"value": "50"}, metric_type="Utilization", namespace="default",
                scale_target=("apps/v1", "Deployment", "web"))))
            rows += await compare("kubernetes-workload (20 pods)", lambda i: KubernetesWorkloadScaler(Trigger(
                type="kubernetes-workload", index=i, namespace="default", metadata={"podSelector": "app=web",
                                                                                    "value": "5"})))
            kube_source.use(None)
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
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
    rows += await new_scaler_cases()
    table = render(rows)
    print(table)
    header = (f"# Scaler polling-cycle benchmark\n\nMeasured by `bench/scalers.py` on {platform.machine()}, "
              f"Python {platform.python_version()}, {os.cpu_count()} cores; median of {CYCLES} warm cycles. "
              "Servers are local (redis-server 7, tansu, PostgreSQL 15, MariaDB, RabbitMQ, nats-server, an aiohttp "
              "endpoint, the Kubernetes API emulator), so the numbers are client cost plus loopback round "
              "trips. 'client CPU' is this process's CPU time per cycle (the servers run in other processes).\n\n")
    (ROOT / "docs" / "benchmarks-scalers.md").write_text(header + table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
