"""The operator's side of least privilege, against the API emulator over real sockets: /metrics
behind token review (kube-rbac-proxy style), and Secrets read and watched only in the namespaces
the chart grants (rbac.secretNamespaces → --secret-namespaces)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable

import aiohttp
import pytest
from kubernetes_asyncio import client

from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from autoscaler.operator.main import run_operator
from tests.fixtures.redis import PASSWORD
from tests.k8s.fixture import K8s
from tests.servers import Server, free_port


async def until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(60)
async def test_metrics_need_a_reviewed_token(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    em.tokens = {"scraper-token": {"username": "system:serviceaccount:monitoring:prometheus", "groups": ["x"]},
                 "other-token": {"username": "system:serviceaccount:default:nosy"}}
    em.allowed = {("system:serviceaccount:monitoring:prometheus", "/metrics", "get")}
    port = free_port()
    task = asyncio.create_task(run_operator(k8s_api.url, "surge", port, leader_elect=False,
                                            bind_address="127.0.0.1", metrics_auth="token-review"))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def status(path: str, token: str | None = None) -> int:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.get(url + path, headers=headers) as resp:
                    await resp.read()
                    return resp.status

            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    if await status("/healthz") == 200:
                        break
                await asyncio.sleep(0.1)
            assert await status("/healthz") == 200  # the kubelet's probes need no token
            codes = [await status("/metrics"), await status("/metrics", "forged"),
                     await status("/metrics", "other-token")]
            assert codes == [401, 403, 403]
            async with http.get(url + "/metrics", headers={"Authorization": "Bearer scraper-token"}) as resp:
                assert resp.status == 200 and "surge_" in await resp.text()
            reviews = em.reviews
            assert await status("/metrics", "scraper-token") == 200
            assert em.reviews == reviews  # the verdict is cached: no review per scrape
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.timeout(60)
async def test_secrets_only_in_the_granted_namespaces(k8s_api: K8s, redis_auth: Server) -> None:
    em = k8s_api.emulator
    for ns in ("team-a", "team-b"):
        em.put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                                 "data": {"password": base64.b64encode(PASSWORD.encode()).decode()}})
        em.put("keda.sh/v1alpha1", "triggerauthentications", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "auth", "namespace": ns},
            "spec": {"secretTargetRef": [{"parameter": "password", "name": "creds", "key": "password"}]}})
        em.put("apps/v1", "deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": ns},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "w"}},
                     "template": {"spec": {"containers": [{"name": "w", "image": "w"}]}}}})
        em.put("keda.sh/v1alpha1", "scaledobjects", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "w", "namespace": ns},
            "spec": {"scaleTargetRef": {"name": "w"}, "pollingInterval": 1,
                     "triggers": [{"type": "redis", "name": "q", "authenticationRef": {"name": "auth"},
                                   "metadata": {"address": redis_auth.address, "listName": "q", "listLength": "5"}}]}})

    def ready(ns: str) -> dict | None:
        status = (em.get("keda.sh/v1alpha1", "scaledobjects", ns, "w") or {}).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ScaledObjectController(Kube(api, ("team-a",)))
        task = asyncio.create_task(controller.run())
        try:
            await until(lambda: ready("team-a") is not None and ready("team-b") is not None)
            await until(lambda: (ready("team-a") or {}).get("status") == "True")
            denied = ready("team-b")
            assert denied is not None and denied["status"] == "False" and denied["reason"] == "SecretNotFound"
            assert "['team-a']" in denied["message"] and "rbac.secretNamespaces" in denied["message"]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await controller.stop()
