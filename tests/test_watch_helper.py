"""provisioner/watch.py, the one list-then-watch helper of both controllers, against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client

from autoscaler.operator.kube import api_client
from provisioner.watch import Watcher
from tests.chaos.proxy import FaultProxy
from tests.k8s.fixture import K8s


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "w"},
            "spec": {"replicas": 1}}


async def take(stream: AsyncIterator[dict[str, Any]], n: int, timeout_s: float = 10) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        event = await asyncio.wait_for(anext(stream), timeout_s)
        out.append((event["type"], (event["object"].get("metadata") or {}).get("name", "")))
    return out


async def test_list_synced_watch_resume_and_deletions_seen_after_a_gap(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    for name in ("a", "b"):
        em.put("apps/v1", "deployments", deployment(name))
    async with client.ApiClient(k8s_api.configuration) as api:
        watcher = Watcher(client.AppsV1Api(api).list_deployment_for_all_namespaces, timeout_s=1)
        stream = watcher.events()
        assert await take(stream, 3) == [("ADDED", "a"), ("ADDED", "b"), ("SYNCED", "")]
        await asyncio.sleep(1.5)  # the server ends the 1 s watch: the helper resumes from its version
        em.put("apps/v1", "deployments", deployment("c"))
        assert await take(stream, 1) == [("ADDED", "c")]
        await stream.aclose()  # the watch breaks ...
        em.store.objects[("apps/v1", "deployments")].pop(("w", "a"))  # ... and "a" goes meanwhile, unseen
        again = watcher.events()
        events = await take(again, 4)
        assert events == [("ADDED", "b"), ("ADDED", "c"), ("DELETED", "a"), ("SYNCED", "")]
        await again.aclose()


async def test_a_hung_api_server_ends_the_list_with_a_timeout(k8s_api: K8s) -> None:
    port = int(k8s_api.url.rsplit(":", 1)[1])
    proxy = await FaultProxy(port).start()
    proxy.set("hang")
    async with api_client(client.Configuration(host=f"http://127.0.0.1:{proxy.port}"), 0.5) as api:
        watcher = Watcher(client.AppsV1Api(api).list_deployment_for_all_namespaces, request_timeout_s=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await take(watcher.events(), 1, timeout_s=10)
            raise AssertionError("a hung API server produced an event")
        except TimeoutError:
            assert loop.time() - started < 3  # the request's own deadline, not the test's 10 s
    await proxy.stop()
