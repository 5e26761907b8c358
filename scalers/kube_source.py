"""Reading the Kubernetes API from the triggers that scale on Kubernetes itself (cpu, memory,
kubernetes-workload): pods, their metrics.k8s.io usage, and the scale target's selector.

The operator hands over its API client once (`use`), so every such trigger shares its one
connection pool; outside the operator (`surge read`) the client comes from the in-cluster
service account or the kubeconfig. Label selectors are matched here, with Kubernetes' grammar
(`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`), so set-based selectors work against any
API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

_client: Any = None


def use(api_client: Any) -> None:
    """Share the operator's kubernetes_asyncio ApiClient with the Kubernetes-reading triggers."""
    global _client
    _client = api_client


async def client() -> Any:
    global _client
    if _client is None:
        from kubernetes_asyncio import client as k8s
        from kubernetes_asyncio import config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            await config.load_kube_config()
        _client = k8s.ApiClient()
    return _client


_shared: contextvars.ContextVar[dict[str, asyncio.Future[dict[str, Any]]] | None] = contextvars.ContextVar(
    "kube_shared_reads", default=None)


@contextlib.asynccontextmanager
async def shared_reads() -> AsyncIterator[None]:
    """Within one polling cycle, triggers asking for the same API path share one request (all the
    cpu/memory/workload triggers of a namespace read its pods once)."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


async def _once(key: str, read: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """`read()`, shared by every caller asking for `key` within one polling cycle."""
    shared = _shared.get()
    if shared is None:
        return await read()
    if key not in shared:
        shared[key] = asyncio.ensure_future(read())
    return await asyncio.shield(shared[key])


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !exists
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # != and notin match absent keys too


_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


def parse_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Kubernetes' labels.Parse; ValueError names the bad part."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    reqs: list[Requirement] = []
    for raw in (p.strip() for p in parts):
        if not raw:
            if text.strip():
                raise ValueError(f"empty requirement in selector {text!r}")
            continue
        if m := re.fullmatch(rf"({_NAME})\s+(in|notin)\s*\(([^)]*)\)", raw):
            values = tuple(v.strip() for v in m.group(4).split(","))
            if not all(re.fullmatch(_VALUE, v) for v in values):
                raise ValueError(f"invalid value in {raw!r}")
            reqs.append(Requirement(m.group(1), m.group(3), values))
        elif m := re.fullmatch(rf"({_NAME})\s*(==|=|!=)\s*(.*)", raw):
            value = m.group(4).strip()
            if not re.fullmatch(_VALUE, value):
                raise ValueError(f"invalid value {value!r} in {raw!r}")
            reqs.append(Requirement(m.group(1), "!=" if m.group(3) == "!=" else "=", (value,)))
        elif m := re.fullmatch(rf"!\s*({_NAME})", raw):
            reqs.append(Requirement(m.group(1), "!exists"))
        elif re.fullmatch(_NAME, raw):
            reqs.append(Requirement(raw, "exists"))
        else:
            raise ValueError(f"unable to parse requirement {raw!r}")
    return lambda labels: all(r.matches(labels) for r in reqs)


def selector_from_match(spec: Mapping[str, Any]) -> Callable[[Mapping[str, str]], bool]:
    """A workload's spec.selector (matchLabels + matchExpressions) as a predicate."""
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (spec.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in spec.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return lambda labels: all(r.matches(labels) for r in reqs)


_APPS = {"Deployment": "deployment", "StatefulSet": "stateful_set"}


async def pods(namespace: str, timeout_s: float) -> list[dict[str, Any]]:
    async def read() -> dict[str, Any]:
        from kubernetes_asyncio.client import CoreV1Api

        resp: Any = await CoreV1Api(await client()).list_namespaced_pod(
            namespace, _preload_content=False, _request_timeout=timeout_s)
        return dict(json.loads(await resp.read()))

    return list((await _once(f"pods/{namespace}", read)).get("items") or [])


async def pod_metrics(namespace: str, timeout_s: float) -> dict[str, dict[str, Any]]:
    """metrics.k8s.io PodMetrics of a namespace, by pod name."""
    async def read() -> dict[str, Any]:
        from kubernetes_asyncio.client import CustomObjectsApi

        data: dict[str, Any] = await CustomObjectsApi(await client()).list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", namespace, "pods", _request_timeout=timeout_s)
        return data

    data = await _once(f"podmetrics/{namespace}", read)
    return {m["metadata"]["name"]: m for m in data.get("items") or []}


async def workload(api_version: str, kind: str, namespace: str, name: str, timeout_s: float) -> dict[str, Any]:
    """The scale target (a Deployment or StatefulSet) as a dict."""
    if api_version != "apps/v1" or kind not in _APPS:
        raise LookupError(f"cpu/memory triggers read Deployments and StatefulSets (apps/v1), not {api_version} "
                          f"{kind}")

    async def read() -> dict[str, Any]:
        from kubernetes_asyncio.client import AppsV1Api

        method = getattr(AppsV1Api(await client()), f"read_namespaced_{_APPS[kind]}")
        resp = await method(name, namespace, _preload_content=False, _request_timeout=timeout_s)
        return dict(json.loads(await resp.read()))

    return await _once(f"{kind}/{namespace}/{name}", read)


async def endpoint_slices(namespace: str, service: str, timeout_s: float) -> list[dict[str, Any]]:
    """The EndpointSlices of a Service (label kubernetes.io/service-name), as dicts."""
    async def read() -> dict[str, Any]:
        from kubernetes_asyncio.client import DiscoveryV1Api

        resp: Any = await DiscoveryV1Api(await client()).list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}", _preload_content=False,
            _request_timeout=timeout_s)
        return dict(json.loads(await resp.read()))

    data = await _once(f"endpointslices/{namespace}/{service}", read)
    return [s for s in data.get("items") or []
            if ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == service]
