"""What the interceptor and the HTTP controller follow, as plain dicts, through the one
list-then-watch helper. The kubernetes-asyncio method names appear here literally, so the RBAC
table in autoscaler/operator/rbac.py can be checked against them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from provisioner.watch import Watcher

log = logging.getLogger("surge.interceptor")
HTTP_GROUP = "http.keda.sh"
Handler = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class Kind:
    name: str
    lister: Callable[..., Awaitable[Any]]


def kinds(api: client.ApiClient, namespace: str = "") -> dict[str, Kind]:
    """The listers of everything the HTTP parts follow (all namespaces, or one)."""
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)

    def custom_lister(version: str, plural: str) -> Callable[..., Awaitable[Any]]:
        if namespace:
            return lambda **kw: custom.list_namespaced_custom_object(HTTP_GROUP, version, namespace, plural, **kw)
        return lambda **kw: custom.list_cluster_custom_object(HTTP_GROUP, version, plural, **kw)

    return {
        "InterceptorRoute": Kind("interceptorroutes", custom_lister("v1beta1", "interceptorroutes")),
        "HTTPScaledObject": Kind("httpscaledobjects", custom_lister("v1alpha1", "httpscaledobjects")),
        "Service": Kind("services", (lambda **kw: core.list_namespaced_service(namespace, **kw)) if namespace
                        else core.list_service_for_all_namespaces),
        "EndpointSlice": Kind("endpointslices",
                              (lambda **kw: discovery.list_namespaced_endpoint_slice(namespace, **kw)) if namespace
                              else discovery.list_endpoint_slice_for_all_namespaces),
    }


async def follow(kind: Kind, handle: Handler, synced: Callable[[], Any] | None = None,
                 timeout_s: int = 300) -> None:
    """Forever: apply the collection's events with `handle` (through the shared list-then-watch
    helper, `provisioner/watch.py`: objects deleted while disconnected come out as DELETED with
    their namespace and name only); `synced` runs once the first list has been applied."""
    watcher = Watcher(kind.lister, timeout_s=timeout_s)
    failures = 0
    while True:
        try:
            async for event in watcher.events():
                failures = 0
                if event["type"] == "SYNCED":
                    result = synced() if synced is not None else None
                else:
                    result = handle(event["type"], event["object"])
                if asyncio.iscoroutine(result):
                    await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # back off 1, 2, 4 … 30 s while the API cannot be reached
            failures += 1
            log.warning("%s watch ended: %s", kind.name, exc)
            await asyncio.sleep(min(30.0, 2.0 ** (failures - 1)))
