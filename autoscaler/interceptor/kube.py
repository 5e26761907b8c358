"""List-then-watch of the objects the interceptor and the HTTP controller follow, as plain dicts.

Each round lists the kind (replacing what was known, so deletions missed while disconnected are
not kept) and then watches from the list's resourceVersion; a watch that ends or fails starts a new
round after a short pause. The kubernetes-asyncio method names appear here literally, so the RBAC
table in autoscaler/operator/rbac.py can be checked against them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client, watch

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


async def follow(kind: Kind, handle: Handler, reset: Callable[[list[dict[str, Any]]], Any],
                 timeout_s: int = 300, label_selector: str | None = None) -> None:
    """Forever: list (`reset` gets every item), then apply watch events with `handle`."""
    extra = {"label_selector": label_selector} if label_selector else {}
    while True:
        try:
            resp = await kind.lister(_preload_content=False, **extra)
            body = json.loads(await resp.read())
            result = reset(body.get("items") or [])
            if asyncio.iscoroutine(result):
                await result
            w = watch.Watch()
            stream = w.stream(kind.lister, resource_version=(body.get("metadata") or {}).get("resourceVersion"),
                              timeout_seconds=timeout_s, **extra)
            w.return_type = None  # type: ignore[assignment]  # keep plain dicts
            async for event in stream:
                result = handle(event["type"], event["raw_object"])
                if asyncio.iscoroutine(result):
                    await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s watch ended: %s", kind.name, exc)
            await asyncio.sleep(1)
