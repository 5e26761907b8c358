"""Signal → replicas written: a message lands on an idle (zero) workload's Redis list; how long
until the operator writes replicas=1? Event-driven (keyspace notifications) vs 1 s polling vs
KEDA's default 30 s polling, against the API emulator and a real redis-server.

Prints a table and writes docs/benchmarks-reaction.md. Takes about three minutes.
"""

from __future__ import annotations

import asyncio
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from kubernetes_asyncio import client  # noqa: E402

from autoscaler.operator.controller import ScaledObjectController  # noqa: E402
from autoscaler.operator.kube import Kube  # noqa: E402
from tests.fixtures.redis import redis_argv  # noqa: E402
from tests.k8s.emulator import Emulator  # noqa: E402
from tests.servers import free_port, run_server  # noqa: E402

MODES = [("event-driven (keyspace notifications), poll 30 s", 30, True, 20),
         ("polling every 1 s", 1, False, 20),
         ("polling every 30 s (KEDA default)", 30, False, 4)]


async def trial(em: Emulator, redis_port: int, name: str, interval: int, notify: bool) -> float:
    em.put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": name, "namespace": "bench"},
                                      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                                               "template": {"spec": {"containers": [{"name": "c"}]}}}})
    em.put("keda.sh/v1alpha1", "scaledobjects", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name, "namespace": "bench"},
        "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": interval,
                 "triggers": [{"type": "redis", "metadata": {"address": f"127.0.0.1:{redis_port}",
                                                             "listName": name, "listLength": "5"}}]}})
    await asyncio.sleep(0.5)  # first (idle) cycle
    await asyncio.sleep(random.uniform(0, interval if not notify else 1))  # the message arrives at any moment
    start = time.perf_counter()
    subprocess.run(["redis-cli", "-p", str(redis_port), "RPUSH", name, "job"], check=True, capture_output=True)
    while em.get("apps/v1", "deployments", "bench", name)["spec"]["replicas"] == 0:
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def main() -> None:
    random.seed(7)
    rows = []
    for label, interval, notify, trials in MODES:
        port = free_port()
        extra = ["--notify-keyspace-events", "Kl"] if notify else []
        with run_server(redis_argv(port, *extra), port):
            em = Emulator()
            runner = web.AppRunner(em.app, shutdown_timeout=1.0)
            await runner.setup()
            api_port = free_port()
            await web.TCPSite(runner, "127.0.0.1", api_port).start()
            async with client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{api_port}")) as api:
                controller = ScaledObjectController(Kube(api))
                task = asyncio.create_task(controller.run())
                samples = [await trial(em, port, f"t{i}", interval, notify) for i in range(trials)]
                task.cancel()
                await controller.stop()
            await runner.cleanup()
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
        rows.append((label, trials, statistics.median(samples), p99))
        print(rows[-1], flush=True)
    base = rows[-1][2]
    lines = ["| mode | trials | p50 (s) | p99 (s) | p50 vs 30 s polling |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {m} | {n} | {p50:.3f} | {p99:.3f} | {p50 / base:.3f}× |" for m, n, p50, p99 in rows]
    table = "\n".join(lines)
    print(table)
    (ROOT / "docs" / "benchmarks-reaction.md").write_text(
        f"# Reaction: message on an idle Redis list → replicas=1 written\n\nMeasured by `bench/reaction.py` "
        f"({platform.machine()}, Python {platform.python_version()}): the operator against the API emulator and "
        "a local redis-server; the message arrives at a random moment of the polling period. The 30 s row has few "
        "trials (each costs up to 30 s); its expectation is ~15 s.\n\n" + table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
