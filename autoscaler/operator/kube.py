"""The Kubernetes calls the ScaledObject controller makes, and nothing else (RBAC follows from here)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from provisioner.watch import DEFAULT_REQUEST_TIMEOUT_S, Watcher

KEDA = ("keda.sh", "v1alpha1")
APPS_SCALE = {"Deployment": "deployment", "StatefulSet": "stateful_set"}
# What a Kubernetes call can raise besides its own ApiException: a refused or reset connection,
# a timeout, a reply that is not the JSON it should be (e.g. garbage from a broken proxy).
API_ERRORS: tuple[type[BaseException], ...] = (ApiException, aiohttp.ClientError, TimeoutError, OSError, ValueError)


class NotLeading(Exception):
    """A write was about to be sent by a replica that may no longer lead: it is dropped."""


def api_client(configuration: client.Configuration, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
               user_agent: str | None = None, fence: Callable[[], None] | None = None) -> client.ApiClient:
    """An ApiClient whose every request has a deadline, and whose writes are fenced.

    kubernetes-asyncio sends a request with aiohttp's `ClientTimeout()` — no limit at all —
    unless the call passes `_request_timeout`; against an API server that accepts and hangs, a
    renewal or a write would then wait for ever (the leader keeps believing it leads). Calls
    that pass their own (watches) keep it. `fence` is called before every write except to
    Leases (the election's own) and raises NotLeading when this replica may no longer lead: no
    controller sharing this client can write after its leadership lapsed, whatever it was doing.
    The user agent names this replica in audit logs.
    """
    api = client.ApiClient(configuration)
    if user_agent:
        api.user_agent = user_agent
    rest = api.rest_client
    send = rest.request

    async def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if fence is not None and method.upper() not in ("GET", "HEAD", "OPTIONS") and "/leases" not in url:
            fence()
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or request_timeout_s
        return await send(method, url, *args, **kwargs)

    rest.request = request  # type: ignore[method-assign]
    return api


class Kube:
    def __init__(self, api: client.ApiClient, secret_namespaces: tuple[str, ...] = ()) -> None:
        self.api = api
        # when given, Secrets are read and watched only here (the chart grants no more: rbac.secretNamespaces)
        self.secret_namespaces = secret_namespaces
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        listed = self.custom.list_cluster_custom_object
        self.watchers = {
            "scaledobjects": Watcher(listed, *KEDA, "scaledobjects"),
            "triggerauthentications": Watcher(listed, *KEDA, "triggerauthentications"),
            "clustertriggerauthentications": Watcher(listed, *KEDA, "clustertriggerauthentications"),
            # spelled out, not built from APPS_SCALE: the chart's RBAC is derived from the calls named here
            "Deployment": Watcher(self.apps.list_deployment_for_all_namespaces),
            "StatefulSet": Watcher(self.apps.list_stateful_set_for_all_namespaces),
        }
        # Secrets: only the granted namespaces when narrowed (rbac.secretNamespaces), else all
        self.secret_watchers = ([Watcher(self.core.list_namespaced_secret, ns) for ns in secret_namespaces]
                                or [Watcher(self.core.list_secret_for_all_namespaces)])

    def watch_scaled_objects(self) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["scaledobjects"].events()

    def watch_trigger_auths(self, cluster: bool) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["clustertriggerauthentications" if cluster else "triggerauthentications"].events()

    async def watch_secrets(self) -> AsyncIterator[dict[str, Any]]:
        """Secret changes, metadata only: the controller re-reads the ones its triggers use."""
        streams = [w.events() for w in self.secret_watchers]
        async for event in (streams[0] if len(streams) == 1 else _merged(*streams)):
            yield {"type": event["type"], "object": {"metadata": event["object"].get("metadata", {})}}

    def may_read_secrets(self, ns: str) -> bool:
        return not self.secret_namespaces or ns in self.secret_namespaces

    def watch_targets(self, kind: str) -> AsyncIterator[dict[str, Any]]:
        """Deployments or StatefulSets as plain dicts: the scale targets' replicas without a GET per poll."""
        return self.watchers[kind].events()

    async def scaled_object(self, ns: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self.custom.get_namespaced_custom_object(*KEDA, ns, "scaledobjects", name)
        return obj

    async def trigger_auth(self, ns: str, kind: str, name: str) -> dict[str, Any] | None:
        try:
            if kind == "ClusterTriggerAuthentication":
                obj: dict[str, Any] = await self.custom.get_cluster_custom_object(
                    *KEDA, "clustertriggerauthentications", name)
            else:
                obj = await self.custom.get_namespaced_custom_object(*KEDA, ns, "triggerauthentications", name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def secret_data(self, ns: str, name: str) -> dict[str, str] | None:
        try:
            secret = await self.core.read_namespaced_secret(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        data.update(secret.string_data or {})
        return data

    async def target_env(self, ns: str, kind: str, name: str, container: str | None) -> dict[str, str]:
        """Plain `value` env of the target's container (KEDA's resolvedEnv for <key>FromEnv)."""
        if kind not in APPS_SCALE:
            return {}
        read = getattr(self.apps, f"read_namespaced_{APPS_SCALE[kind]}")
        obj = await read(name, ns)
        containers = obj.spec.template.spec.containers or [] if obj.spec.template.spec else []
        chosen = next((c for c in containers if c.name == container), containers[0] if containers else None)
        return {e.name: e.value for e in (chosen.env or [])} if chosen is not None and chosen.env else {}

    async def get_scale(self, ns: str, api_version: str, kind: str, name: str) -> tuple[int, int]:
        """(spec.replicas, status.replicas) from the target's scale subresource."""
        if kind in APPS_SCALE and api_version == "apps/v1":
            scale = await getattr(self.apps, f"read_namespaced_{APPS_SCALE[kind]}_scale")(name, ns)
            return int(scale.spec.replicas or 0), int(scale.status.replicas or 0)
        group, _, version = api_version.rpartition("/")
        raw = await self.custom.get_namespaced_custom_object_scale(group, version, ns, plural(kind), name)
        return int(raw["spec"].get("replicas", 0)), int(raw.get("status", {}).get("replicas", 0))

    async def set_scale(self, ns: str, api_version: str, kind: str, name: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        if kind in APPS_SCALE and api_version == "apps/v1":
            await getattr(self.apps, f"patch_namespaced_{APPS_SCALE[kind]}_scale")(name, ns, body)
            return
        group, _, version = api_version.rpartition("/")
        await self.custom.patch_namespaced_custom_object_scale(group, version, ns, plural(kind), name, body)

    async def patch_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object_status(*KEDA, ns, "scaledobjects", name, {"status": status})

    async def event(self, ns: str, obj: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        now = datetime.now(UTC)
        meta = obj.get("metadata", {})
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'surge')}.", namespace=ns),
            involved_object=client.V1ObjectReference(api_version=obj.get("apiVersion"), kind=obj.get("kind"),
                                                     name=meta.get("name"), namespace=ns, uid=meta.get("uid")),
            reason=reason, message=message, type="Warning" if warning else "Normal",
            first_timestamp=now, last_timestamp=now, count=1,
            source=client.V1EventSource(component="surge-operator"))
        await self.core.create_namespaced_event(ns, body)


async def _merged(*streams: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Events of several watches as one stream; it ends when every watch has ended."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for event in stream:
                await queue.put(event)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        running = len(tasks)
        while running:
            event = await queue.get()
            if event is None:
                running -= 1
            else:
                yield event
        for t in tasks:
            t.result()  # a watch that failed fails the merged stream, as a single watch would
    finally:
        for t in tasks:
            t.cancel()


def plural(kind: str) -> str:
    """Lower-case plural of a kind, as CRDs conventionally name their resources."""
    lower = kind.lower()
    return lower + ("es" if lower.endswith(("s", "x", "ch")) else "s")
