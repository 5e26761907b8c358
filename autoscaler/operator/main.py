"""`surge operator`: the controller under leader election, with /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client, config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from autoscaler.cost.exporter import install as install_cost_metrics
from autoscaler.history import MemoryHistory, RedisHistory
from autoscaler.interceptor.operator import make_http_controller
from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube, api_client
from autoscaler.operator.leader import LeaderElector, LeaseTiming
from autoscaler.operator.metrics import Metrics
from autoscaler.operator.metrics_auth import TokenReviewAuth
from autoscaler.operator.predictor import Predictor
from provisioner.catalog import load_catalog, restrict_zones
from provisioner.cloud.aws import AWSProvider, ec2_client
from provisioner.cloud.base import LaunchError
from provisioner.controller import ProvisioningController
from provisioner.interruption import InterruptionQueue
from provisioner.kube import ProvisionerKube
from provisioner.metrics import ProvisionerMetrics
from provisioner.nodeclass import EC2NodeClass
from provisioner.watch import DEFAULT_REQUEST_TIMEOUT_S


def http_app(metrics: Metrics, ready: dict[str, bool], auth: dict[str, TokenReviewAuth] | None = None
             ) -> web.Application:
    """/metrics (behind token review when `auth` is given: it gets its reviewer once the API client
    exists), /healthz and /readyz (open: the kubelet probes them)."""

    async def metrics_handler(request: web.Request) -> web.Response:
        if auth is not None:
            reviewer = auth.get("reviewer")
            if reviewer is None:
                return web.Response(status=503, text="starting")
            try:
                allowed = await reviewer.allowed(request.headers.get("Authorization"))
            except Exception as exc:  # the API server is down or refuses us: say so, never serve
                logging.getLogger("surge.operator").warning("metrics token review failed: %s", exc)
                return web.Response(status=503, text="cannot review the token")
            if not allowed:
                return web.Response(status=401 if "Authorization" not in request.headers else 403,
                                    text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
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


class FencedCloud:
    """The cloud provider, refusing launches and terminations once this replica may no longer
    lead (a stale leader must not create or destroy instances the new one is deciding about)."""

    def __init__(self, inner: AWSProvider, fence: Callable[[], None]) -> None:
        self.inner, self.fence = inner, fence

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create_fleet(self, *args: Any, **kwargs: Any) -> Any:
        self.fence()
        return await self.inner.create_fleet(*args, **kwargs)

    async def terminate(self, instance_ids: Any) -> None:
        self.fence()
        await self.inner.terminate(instance_ids)


async def kubernetes_version(api: client.ApiClient, default: str = "1.31") -> str:
    """The API server's major.minor: amiSelectorTerms aliases resolve the AMIs built for it
    (as Karpenter does); the default when the server does not say."""
    try:
        response: Any = await client.VersionApi(api).get_code(_preload_content=False)  # major/minor only
        info = json.loads(await response.read())
        return f"{int(info['major'])}.{int(str(info['minor']).rstrip('+'))}"
    except Exception as exc:
        logging.getLogger("surge.provisioner").warning("Kubernetes version unknown (%s): AMI aliases use %s",
                                                       exc, default)
        return default


async def make_provisioner(api: client.ApiClient, metrics: Metrics,
                           fence: Callable[[], None] | None = None) -> ProvisioningController:
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
    import boto3

    cloud = AWSProvider(ec2, cluster, lambda n: nodeclass_lookup(holder["c"])(n), time.time,
                        ssm=boto3.client("ssm", region_name=region, endpoint_url=endpoint),
                        kubernetes_version=await kubernetes_version(api))
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
        sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint)
        url = queue_name if queue_name.startswith("http") else \
            (await asyncio.to_thread(sqs.get_queue_url, QueueName=queue_name))["QueueUrl"]
        interruptions = InterruptionQueue(sqs, url)
    holder["c"] = ProvisioningController(ProvisionerKube(api), FencedCloud(cloud, fence) if fence else cloud,
                                         catalog, interruptions=interruptions,
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
                       autoscaler: bool = True, provisioner: bool = False, timing: LeaseTiming | None = None,
                       bind_address: str = "0.0.0.0", metrics_auth: str = "none",
                       secret_namespaces: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM/SIGINT: then stop acting, release the Lease and exit (a standby takes
    over at its next retry, ~1 s, instead of waiting out the lease)."""
    timing = timing or LeaseTiming()
    me = identity or f"{socket.gethostname()}-{os.getpid()}"
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: this.cancel() if this is not None else None)
    try:
        await _run(server, lease_namespace, port, leader_elect, me, history_redis, autoscaler, provisioner, timing,
                   bind_address, metrics_auth, secret_namespaces)
    except asyncio.CancelledError:
        logging.getLogger("surge.operator").info("%s stopped", me)


async def _run(server: str | None, lease_namespace: str, port: int, leader_elect: bool, me: str,
               history_redis: str | None, autoscaler: bool, provisioner: bool, timing: LeaseTiming,
               bind_address: str, metrics_auth: str, secret_namespaces: tuple[str, ...]) -> None:
    configuration = await load_configuration(server)
    # tens of thousands of long-lived objects per thousand ScaledObjects: the default young-generation
    # threshold (700) makes the cyclic collector rescan them many times a second
    gc.set_threshold(100_000, 50, 50)
    metrics = Metrics()
    predictor = make_predictor(history_redis or os.environ.get("SURGE_HISTORY_REDIS_URL"))
    ready = {"started": False}
    auth: dict[str, TokenReviewAuth] | None = {} if metrics_auth == "token-review" else None
    runner = web.AppRunner(http_app(metrics, ready, auth))
    await runner.setup()
    await web.TCPSite(runner, bind_address, port).start()
    # every API call has a deadline short enough that a write sent just before the renew
    # deadline has landed or failed before another replica may take the Lease; every write (and
    # every launch or termination) is fenced: refused once this replica may no longer lead
    electors: list[LeaderElector] = []

    def fence() -> None:
        for e in electors:
            e.fence()

    async with api_client(configuration, min(DEFAULT_REQUEST_TIMEOUT_S, timing.write_budget_s),
                          user_agent=f"surge-operator/{me}", fence=fence) as api:
        if auth is not None:
            auth["reviewer"] = TokenReviewAuth(api)
        from scalers import kube_source

        kube_source.use(api)  # cpu, memory, kubernetes-workload read through the operator's client
        controller = ScaledObjectController(Kube(api, secret_namespaces), metrics, predictor=predictor)
        elector = LeaderElector(api, lease_namespace, "surge-operator", me, timing) if leader_elect else None
        if elector is not None:
            electors.append(elector)
            controller.fence = elector.fence
        nodes = await make_provisioner(api, metrics, fence) if provisioner else None
        install_cost_metrics(metrics.registry, controller if autoscaler else None, nodes, time.time)
        if nodes is not None and autoscaler:
            controller.on_scale_up = nodes.prepare_for  # pods and nodes together
            controller.on_forecast = nodes.note_forecast  # consolidation keeps what the forecast needs
        # HTTPScaledObjects / InterceptorRoutes and the interceptors' signals (autoscaler/interceptor/)
        http = make_http_controller(api, dict(os.environ), metrics.registry) if autoscaler else None
        running: dict[str, asyncio.Task[None]] = {}

        async def start() -> None:
            if autoscaler:
                running["controller"] = asyncio.create_task(controller.run())
            if http is not None:
                running["http"] = asyncio.create_task(http.run())
            if nodes is not None:
                running["provisioner"] = asyncio.create_task(nodes.run())

        async def stop() -> None:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            running.clear()
            await controller.stop()
            if http is not None:
                await http.hub.close()

        ready["started"] = True
        try:
            if elector is not None:
                await elector.run(start, stop)
            else:
                await start()
                await asyncio.gather(*running.values()) if running else await asyncio.Event().wait()
        finally:
            await stop()
            predictor.close()
            await runner.cleanup()
