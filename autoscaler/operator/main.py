"""`surge operator`: the controller under leader election, with /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import os
import socket

from aiohttp import web
from kubernetes_asyncio import client, config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.history import MemoryHistory, RedisHistory
from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from autoscaler.operator.leader import LeaderElector
from autoscaler.operator.metrics import Metrics
from autoscaler.operator.predictor import Predictor


def http_app(metrics: Metrics, ready: dict[str, bool]) -> web.Application:
    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready") if ready.get("started") else web.Response(status=503, text="starting")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def load_configuration(server: str | None) -> client.Configuration:
    if server:
        return client.Configuration(host=server)
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    return configuration


def make_predictor(redis_url: str | None) -> Predictor:
    """Metric history in Redis when given (shared by replicas, survives restarts), else in memory."""
    if redis_url:
        import redis.asyncio as aioredis

        return Predictor(RedisHistory(aioredis.from_url(redis_url)))
    return Predictor(MemoryHistory())


async def run_operator(server: str | None, lease_namespace: str, port: int, leader_elect: bool = True,
                       identity: str | None = None, history_redis: str | None = None,
                       autoscaler: bool = True) -> None:
    configuration = await load_configuration(server)
    metrics = Metrics()
    predictor = make_predictor(history_redis or os.environ.get("SURGE_HISTORY_REDIS_URL"))
    ready = {"started": False}
    runner = web.AppRunner(http_app(metrics, ready))
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    async with client.ApiClient(configuration) as api:
        controller = ScaledObjectController(Kube(api), metrics, predictor=predictor)
        running: dict[str, asyncio.Task[None]] = {}

        async def start() -> None:
            if autoscaler:
                running["controller"] = asyncio.create_task(controller.run())

        async def stop() -> None:
            task = running.pop("controller", None)
            if task is not None:
                task.cancel()
            await controller.stop()

        ready["started"] = True
        try:
            if leader_elect:
                me = identity or f"{socket.gethostname()}-{os.getpid()}"
                await LeaderElector(api, lease_namespace, "surge-operator", me).run(start, stop)
            elif autoscaler:
                await controller.run()
            else:
                await asyncio.Event().wait()
        finally:
            await stop()
            predictor.close()
            await runner.cleanup()
