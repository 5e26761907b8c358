"""HTTP scaling through the operator: interceptors (in-process and as `surge interceptor`
processes) report to the operator's hub over real sockets, the ScaledObject controller scales the
Deployment in the API emulator, and a test "kubelet" turns replicas into ready endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from autoscaler.interceptor.operator import make_http_controller
from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from scalers.base import Trigger
from scalers.http_addon import HTTPAddonScaler, SignalError, use_source
from tests.http_harness import (
    NS,
    Upstream,
    clear_endpoints,
    http_scaled_object,
    put_endpoints,
    put_http_scaled_object,
    put_service,
    start_interceptor,
    until,
    upstreams,
    wait_ready,
)
from tests.k8s.emulator import Emulator
from tests.k8s.fixture import K8s
from tests.servers import free_port

pytestmark = pytest.mark.timeout(90)
ADMIN = "surge-interceptor-admin"


def register_admin(em: Emulator, name: str, admin_port: int) -> None:
    em.put("discovery.k8s.io/v1", "endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name, "namespace": "surge", "labels": {"kubernetes.io/service-name": ADMIN}},
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "admin", "port": admin_port}]})


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}}}


@contextlib.asynccontextmanager
async def operator(k8s: K8s, **env: str) -> AsyncIterator[tuple[ScaledObjectController, Any, list[tuple]]]:
    """The ScaledObject controller and the HTTP controller, as `surge operator` wires them."""
    handed: list[tuple] = []

    async def on_scale_up(ns: str, kind: str, name: str, adding: int, protect_s: float) -> None:
        handed.append((ns, kind, name, adding))

    async with client.ApiClient(k8s.configuration) as api:
        controller = ScaledObjectController(Kube(api))
        controller.on_scale_up = on_scale_up  # what the provisioner is told, in the same step
        http = make_http_controller(api, {"SURGE_INTERCEPTOR_ADMIN_SERVICE": f"surge/{ADMIN}",
                                          "SURGE_HTTP_POLLING_INTERVAL": "1", **env})
        tasks = [asyncio.create_task(controller.run()), asyncio.create_task(http.run())]
        try:
            yield controller, http, handed
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await controller.stop()
            await http.hub.close()
            use_source(None)


async def kubelet(em: Emulator, name: str, pod: Upstream, start_s: float = 0.3) -> None:
    """Replicas ≥ 1 → after `start_s` the pod is a ready endpoint; replicas 0 → no endpoint."""
    serving = False
    while True:
        replicas = int(em.get("apps/v1", "deployments", NS, name)["spec"]["replicas"])
        if replicas and not serving:
            await asyncio.sleep(start_s)
            put_endpoints(em, name, [pod.port])
            serving = True
        elif not replicas and serving:
            clear_endpoints(em, name)
            serving = False
        await asyncio.sleep(0.05)


async def test_scale_zero_to_one_to_zero_end_to_end(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    em.put("apps/v1", "deployments", deployment("app"))
    put_service(em, "app")
    put_endpoints(em, "app", [])
    put_http_scaled_object(em, http_scaled_object("app", "app", hosts=["app.example.com"], scaledownPeriod=1,
                                                  replicas={"min": 0, "max": 5}))
    put_http_scaled_object(em, http_scaled_object("broken", "nope", hosts=["broken.example.com"]))
    em.put("http.keda.sh/v1beta1", "interceptorroutes", {
        "apiVersion": "http.keda.sh/v1beta1", "kind": "InterceptorRoute", "metadata": {"name": "ir", "namespace": NS},
        "spec": {"target": {"service": "app", "portName": "http"}, "rules": [{"hosts": ["ir.example.com"]}],
                 "scalingMetric": {"concurrency": {"targetValue": 5}, "requestRate": {"targetValue": 20}}}})

    def replicas() -> int:
        return int(em.get("apps/v1", "deployments", NS, "app")["spec"]["replicas"])

    async with upstreams("app") as (pod,), operator(k8s_api) as (_, http, handed):
        ic = await start_interceptor(k8s_api.url)
        register_admin(em, "i0", ic.admin_port)
        node = asyncio.create_task(kubelet(em, "app", pod))
        try:
            await until(lambda: em.get("keda.sh/v1alpha1", "scaledobjects", NS, "app") is not None)
            so = em.get("keda.sh/v1alpha1", "scaledobjects", NS, "app")
            assert so["spec"]["triggers"][0] == {"type": "external-push", "metadata": {
                "scalerAddress": "surge-operator.surge:9090", "httpScaledObject": "app"}}
            assert so["spec"]["cooldownPeriod"] == 1 and so["spec"]["maxReplicaCount"] == 5
            assert so["metadata"]["ownerReferences"][0]["kind"] == "HTTPScaledObject"
            await until(lambda: http.hub.signals.reporters)
            await asyncio.sleep(1.5)
            assert replicas() == 0  # no traffic: stays at zero
            loop = asyncio.get_running_loop()
            async with aiohttp.ClientSession() as s:
                t0 = loop.time()
                async with s.get(ic.url + "/hello", headers={"Host": "app.example.com"}) as r:
                    assert r.status == 200 and r.headers["X-KEDA-HTTP-Cold-Start"] == "true"
                    assert '"pod": "app"' in await r.text()
                took = loop.time() - t0
                assert took < 10  # pushed, not waiting for the 1 s poll plus a 15 s HPA sync
                assert ("web", "Deployment", "app", 1) in handed  # nodes asked for with the pods
                status = em.get("http.keda.sh/v1alpha1", "httpscaledobjects", NS, "app")["status"]
                assert status["conditions"][0]["reason"] == "Reconciled" and status["targetService"] == "app:80"
                # a route to a missing Service: a condition, a Warning event, 503 naming nothing internal
                broken = em.get("http.keda.sh/v1alpha1", "httpscaledobjects", NS, "broken")["status"]["conditions"]
                assert (broken[0]["status"], broken[0]["reason"]) == ("False", "ServiceNotFound")
                assert any(e["reason"] == "ServiceNotFound" and e["type"] == "Warning" for e in em.all("v1", "events"))
                assert http.errors.labels(NS, "HTTPScaledObject", "broken", "ServiceNotFound")._value.get() == 1
                async with s.get(ic.url + "/", headers={"Host": "broken.example.com"}) as r:
                    assert r.status == 503 and "nope" not in await r.text()
                ir = em.get("http.keda.sh/v1beta1", "interceptorroutes", NS, "ir")["status"]["conditions"][0]
                assert (ir["type"], ir["status"], ir["reason"]) == ("Ready", "True", "Reconciled")
                async with s.get(ic.url + "/", headers={"Host": "ir.example.com"}) as r:
                    assert r.status == 200  # an InterceptorRoute to the same Service, now ready
            await until(lambda: replicas() == 0, timeout_s=30)  # idle past scaledownPeriod → back to zero
            # deleting the HTTPScaledObject removes the ScaledObject it owns
            em.store.objects[("http.keda.sh/v1alpha1", "httpscaledobjects")].pop((NS, "app"))
            em.store.bump(("http.keda.sh/v1alpha1", "httpscaledobjects"), "DELETED", {
                **so, "apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
                "metadata": {"name": "app", "namespace": NS,
                             "uid": so["metadata"]["ownerReferences"][0]["uid"]}})
            await until(lambda: em.get("keda.sh/v1alpha1", "scaledobjects", NS, "app") is None)
        finally:
            node.cancel()
            await ic.close()


async def test_two_interceptors_are_summed_and_a_silent_one_is_an_error(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    put_service(em, "app")
    put_endpoints(em, "app", [])  # at zero: requests are held, and counted, on both interceptors
    put_http_scaled_object(em, http_scaled_object("app", "app", hosts=["app.example.com"],
                                                  scalingMetric={"concurrency": {"targetValue": 2}}))
    async with operator(k8s_api, SURGE_INTERCEPTOR_STALE_AFTER="1") as (_, _http, _handed):
        one = await start_interceptor(k8s_api.url)
        register_admin(em, "i1", one.admin_port)
        admin2, proxy2 = free_port(), free_port()
        two = subprocess.Popen([sys.executable, "-m", "autoscaler.cli", "interceptor", "--server", k8s_api.url,
                                "--proxy-port", str(proxy2), "--admin-port", str(admin2), "--shutdown-delay", "0"],
                               env={**os.environ, "SURGE_LOG_LEVEL": "warning"})
        held: list[asyncio.Task[Any]] = []
        try:
            await wait_ready(admin2, timeout_s=30)
            register_admin(em, "i2", admin2)
            scaler = HTTPAddonScaler(Trigger("external-push", {"httpScaledObject": "app"}, namespace=NS))
            session = aiohttp.ClientSession()
            for port, n in ((one.proxy_port, 2), (proxy2, 3)):
                for _ in range(n):
                    held.append(asyncio.create_task(session.get(f"http://127.0.0.1:{port}/",
                                                                 headers={"Host": "app.example.com"})))

            async def load() -> float | None:
                with contextlib.suppress(SignalError):
                    return (await scaler.metrics()).values[scaler.metric_specs()[0].name]
                return None

            await until(lambda: _equals(load(), 2.5), timeout_s=15)  # (2 + 3) held / target 2
            two.send_signal(signal.SIGKILL)  # gone without a final report
            two.wait(10)
            await until(lambda: _raises(scaler), timeout_s=10)
            with pytest.raises(SignalError, match="has not reported"):
                await scaler.metrics()
            for t in held:
                t.cancel()
            await session.close()
        finally:
            if two.poll() is None:
                two.kill()
            await one.close()


async def _equals(value: Any, expected: float) -> bool:
    return (await value) == expected


async def _raises(scaler: HTTPAddonScaler) -> bool:
    try:
        await scaler.metrics()
    except SignalError:
        return True
    return False


async def test_interceptor_restart_loses_no_answered_request(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("app") as (pod,), operator(k8s_api) as (_, http, _handed):
        put_service(em, "app")
        put_endpoints(em, "app", [pod.port])
        put_http_scaled_object(em, http_scaled_object("app", "app", hosts=["app.example.com"], scalingMetric={
            "requestRate": {"targetValue": 10, "window": "1m", "granularity": "1s"}}))
        admin, proxy = free_port(), free_port()
        cmd = [sys.executable, "-m", "autoscaler.cli", "interceptor", "--server", k8s_api.url, "--proxy-port",
               str(proxy), "--admin-port", str(admin), "--shutdown-delay", "0"]
        env = {**os.environ, "SURGE_LOG_LEVEL": "warning", "SURGE_HTTP_REPORT_INTERVAL": "5"}
        answered = 0
        for _round in range(2):
            proc = subprocess.Popen(cmd, env=env)
            try:
                await wait_ready(admin, timeout_s=30)
                register_admin(em, "i", admin)
                await until(lambda: http.hub.signals.reporters.get(f"127.0.0.1:{admin}") is not None)
                async with aiohttp.ClientSession() as s:
                    async def one(path: str) -> int:
                        async with s.get(f"http://127.0.0.1:{proxy}{path}", headers={"Host": "app.example.com"}) as r:
                            await r.read()
                            return r.status
                    assert all(st == 200 for st in await asyncio.gather(*[one("/x") for _ in range(7)]))
                    answered += 7
                    # in flight when SIGTERM comes: answered while draining, then reported in the final line
                    slow = [asyncio.create_task(one("/slow?s=0.5")) for _ in range(3)]
                    await asyncio.sleep(0.2)
                    proc.send_signal(signal.SIGTERM)
                    answered += sum(1 for st in await asyncio.gather(*slow) if st == 200)
                assert proc.wait(20) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
            await until(lambda n=answered: http.hub.signals.buckets["web/app"].total == n, timeout_s=10)
        assert answered == 20
