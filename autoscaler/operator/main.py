"""`surge operator`: the controller under leader election, with /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from collections.abc import Callable

from aiohttp import web
from kubernetes_asyncio import client, config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from autoscaler.history import MemoryHistory, RedisHistory
from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from autoscaler.operator.leader import LeaderElector
from autoscaler.operator.metrics import Metrics
from autoscaler.operator.predictor import Predictor
from provisioner.catalog import load_catalog, restrict_zones
from provisioner.cloud.aws import AWSProvider, ec2_client
from provisioner.cloud.base import LaunchError
from provisioner.controller import ProvisioningController
from provisioner.interruption import InterruptionQueue
from provisioner.kube import ProvisionerKube
from provisioner.metrics import ProvisionerMetrics
from provisioner.nodeclass import EC2NodeClass


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


def nodeclass_lookup(controller: object) -> Callable[[str], EC2NodeClass]:
    def lookup(name: str) -> EC2NodeClass:
        raw = getattr(controller, "nodeclasses", {}).get(name)
        if raw is None:
            raise LaunchError(f"EC2NodeClass {name!r} not found (referenced by a NodePool's nodeClassRef)")
        try:
            return EC2NodeClass.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise LaunchError(f"EC2NodeClass {name}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return lookup


async def make_provisioner(api: client.ApiClient, metrics: Metrics) -> ProvisioningController:
    """The AWS provisioner from the environment the chart sets: AWS_REGION, SURGE_CLUSTER_NAME,
    SURGE_INTERRUPTION_QUEUE (optional), SURGE_AWS_ENDPOINT_URL (optional, e.g. moto)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    cluster = os.environ.get("SURGE_CLUSTER_NAME")
    if not region or not cluster:
        raise SystemExit("the provisioner needs AWS_REGION and SURGE_CLUSTER_NAME (helm values aws.region and "
                         "aws.clusterName)")
    endpoint = os.environ.get("SURGE_AWS_ENDPOINT_URL") or None
    ec2 = ec2_client(region, endpoint)
    zones = [z["ZoneName"] for z in (await asyncio.to_thread(ec2.describe_availability_zones))["AvailabilityZones"]]
    holder: dict[str, ProvisioningController] = {}
    cloud = AWSProvider(ec2, cluster, lambda n: nodeclass_lookup(holder["c"])(n), time.time)
    names = [t.name for t in load_catalog(zones)]
    try:  # live spot prices; without them only on-demand offerings exist (said in the log)
        spot = await cloud.spot_prices(names)
    except Exception as exc:
        logging.getLogger("surge.provisioner").warning("spot prices unavailable (%s): on-demand only", exc)
        spot = {}
    catalog = load_catalog(zones, spot)
    try:  # offerings only where EC2 offers each type (DescribeInstanceTypeOfferings)
        catalog = restrict_zones(catalog, await cloud.type_zones())
    except Exception as exc:
        logging.getLogger("surge.provisioner").warning("instance type offerings unavailable (%s): every type is "
                                                       "assumed offered in every zone", exc)
    queue_name = os.environ.get("SURGE_INTERRUPTION_QUEUE")
    interruptions = None
    if queue_name:
        import boto3

        sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint)
        url = queue_name if queue_name.startswith("http") else \
            (await asyncio.to_thread(sqs.get_queue_url, QueueName=queue_name))["QueueUrl"]
        interruptions = InterruptionQueue(sqs, url)
    holder["c"] = ProvisioningController(ProvisionerKube(api), cloud, catalog, interruptions=interruptions,
                                         metrics=ProvisionerMetrics(metrics.registry))
    return holder["c"]


def make_predictor(redis_url: str | None) -> Predictor:
    """Metric history in Redis when given (shared by replicas, survives restarts), else in memory."""
    if redis_url:
        import redis.asyncio as aioredis

        return Predictor(RedisHistory(aioredis.from_url(redis_url)))
    return Predictor(MemoryHistory())


async def run_operator(server: str | None, lease_namespace: str, port: int, leader_elect: bool = True,
                       identity: str | None = None, history_redis: str | None = None,
                       autoscaler: bool = True, provisioner: bool = False) -> None:
    configuration = await load_configuration(server)
    # tens of thousands of long-lived objects per thousand ScaledObjects: the default young-generation
    # threshold (700) makes the cyclic collector rescan them many times a second
    gc.set_threshold(100_000, 50, 50)
    metrics = Metrics()
    predictor = make_predictor(history_redis or os.environ.get("SURGE_HISTORY_REDIS_URL"))
    ready = {"started": False}
    runner = web.AppRunner(http_app(metrics, ready))
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    async with client.ApiClient(configuration) as api:
        controller = ScaledObjectController(Kube(api), metrics, predictor=predictor)
        nodes = await make_provisioner(api, metrics) if provisioner else None
        if nodes is not None and autoscaler:
            controller.on_scale_up = nodes.prepare_for  # pods and nodes together
            controller.on_forecast = nodes.note_forecast  # consolidation keeps what the forecast needs
        running: dict[str, asyncio.Task[None]] = {}

        async def start() -> None:
            if autoscaler:
                running["controller"] = asyncio.create_task(controller.run())
            if nodes is not None:
                running["provisioner"] = asyncio.create_task(nodes.run())

        async def stop() -> None:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            running.clear()
            await controller.stop()

        ready["started"] = True
        try:
            if leader_elect:
                me = identity or f"{socket.gethostname()}-{os.getpid()}"
                await LeaderElector(api, lease_namespace, "surge-operator", me).run(start, stop)
            else:
                await start()
                await asyncio.gather(*running.values()) if running else await asyncio.Event().wait()
        finally:
            await stop()
            predictor.close()
            await runner.cleanup()
