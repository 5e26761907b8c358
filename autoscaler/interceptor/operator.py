"""The HTTP add-on's operator, inside surge's: HTTPScaledObjects and InterceptorRoutes.

For each HTTPScaledObject it writes the ScaledObject the add-on's operator writes (same name, owned
by it, one `external-push` trigger naming it, pollingInterval 15, min/max from `replicas`,
cooldownPeriod from `scaledownPeriod`, restoreToOriginalReplicaCount) — surge's ScaledObject
controller then scales it on the interceptors' signals through `scalers/http_addon.py`. The
add-on's annotations `httpscaledobject.keda.sh/skip-scaledobject-creation` and
`.../orphan-scaledobject` are honoured. surge's one addition: the annotation
`surge.dev/predictive` (the JSON of `spec.advanced.predictive`) turns forecasting on for the
generated ScaledObject, so it forecasts the route's load like any trigger.

Status follows the add-on: a `Ready` condition (`Reconciled`, or `CreateError` when the ScaledObject
could not be written); surge also sets `Ready=False` when the spec is invalid (`InvalidSpec`) or the
target Service or its port does not exist (`ServiceNotFound` / `PortNotFound`, with a Warning
Event — the interceptor answers that route 503 meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Counter

from autoscaler.interceptor import kube
from autoscaler.interceptor.hub import InterceptorHub, admin_endpoints
from autoscaler.interceptor.routes import (
    Route,
    RouteError,
    ServicePort,
    from_http_scaled_object,
    from_interceptor_route,
)

log = logging.getLogger("surge.interceptor.operator")
SKIP = "httpscaledobject.keda.sh/skip-scaledobject-creation"
ORPHAN = "httpscaledobject.keda.sh/orphan-scaledobject"
PREDICTIVE = "surge.dev/predictive"
SCALER_ADDRESS = "surge-operator.surge:9090"  # written for the add-on's shape; surge serves it in-process
VERSIONS = {"HTTPScaledObject": ("v1alpha1", "httpscaledobjects"), "InterceptorRoute": ("v1beta1", "interceptorroutes")}
ObjKey = tuple[str, str, str]  # (kind, namespace, name)


def _now(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_scaled_object(raw: dict[str, Any], polling_interval: int = 15) -> dict[str, Any]:
    """The ScaledObject the add-on's operator writes for an HTTPScaledObject."""
    meta, spec = raw.get("metadata") or {}, raw.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    so_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": ref.get("apiVersion", "apps/v1"), "kind": ref.get("kind", "Deployment"),
                           "name": ref.get("name")},
        "pollingInterval": polling_interval,
        "advanced": {"restoreToOriginalReplicaCount": True},
        "triggers": [{"type": "external-push", "metadata": {"scalerAddress": SCALER_ADDRESS,
                                                            "httpScaledObject": meta.get("name")}}],
    }
    replicas = spec.get("replicas") or {}
    if replicas.get("min") is not None:
        so_spec["minReplicaCount"] = replicas["min"]
    if replicas.get("max") is not None:
        so_spec["maxReplicaCount"] = replicas["max"]
    if spec.get("scaledownPeriod") is not None:
        so_spec["cooldownPeriod"] = spec["scaledownPeriod"]
    if spec.get("initialCooldownPeriod") is not None:
        so_spec["initialCooldownPeriod"] = spec["initialCooldownPeriod"]
    annotations = dict(meta.get("annotations") or {})
    if PREDICTIVE in annotations:
        with contextlib.suppress(ValueError):  # a bad annotation is reported by reconcile
            so_spec["advanced"]["predictive"] = json.loads(annotations[PREDICTIVE])
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                     "labels": dict(meta.get("labels") or {}), "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
                                          "name": meta.get("name"), "uid": meta.get("uid"), "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": so_spec,
    }


class HTTPController:
    def __init__(self, api: client.ApiClient, hub: InterceptorHub, interceptor_service: tuple[str, str] | None,
                 clock: Callable[[], float] = time.time, polling_interval: int = 15,
                 registry: CollectorRegistry | None = None) -> None:
        self.errors = Counter("surge_http_object_errors", "HTTPScaledObjects / InterceptorRoutes found invalid or "
                              "pointing at a missing Service or port", ("namespace", "kind", "name", "reason"),
                              registry=registry or CollectorRegistry())
        self.polling_interval = polling_interval  # the add-on's; the HPA's own sync period is also 15 s
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.kinds = kube.kinds(api)
        self.hub = hub
        self.interceptor_service = interceptor_service
        self.clock = clock
        self.objects: dict[ObjKey, dict[str, Any]] = {}
        self.services: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.written: dict[ObjKey, Any] = {}  # last status written (write on change only)
        self.slices: dict[str, dict[str, Any]] = {}
        self.synced: set[str] = set()
        self.lock = asyncio.Lock()

    async def run(self) -> None:
        follows = [kube.follow(self.kinds[k], self._on(k), self._synced(k)) for k in VERSIONS]
        follows.append(kube.follow(self.kinds["Service"], self._on_service, self._synced("Service")))
        if self.interceptor_service is not None:
            ns, name = self.interceptor_service
            selector = f"kubernetes.io/service-name={name}"
            admin = kube.Kind("endpointslices", lambda **kw: self.discovery.list_namespaced_endpoint_slice(
                ns, label_selector=selector, **kw))
            follows.append(kube.follow(admin, self._on_admin_slice))
        await asyncio.gather(*follows)

    # --- interceptor endpoints -------------------------------------------------------------------
    def _on_admin_slice(self, event_type: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if event_type == "DELETED":
            self.slices.pop(name, None)
        else:
            self.slices[name] = obj
        self.hub.set_endpoints(admin_endpoints(self.slices))

    # --- routes ------------------------------------------------------------------------------------
    def _on(self, kind: str) -> Callable[[str, dict[str, Any]], Any]:
        async def handle(event_type: str, obj: dict[str, Any]) -> None:
            meta = obj.get("metadata") or {}
            key = (kind, meta.get("namespace") or "default", meta.get("name", ""))
            if event_type == "DELETED":
                known = self.objects.pop(key, obj)  # a deletion seen after a gap names the object only
                self.written.pop(key, None)
                await self._deleted(key, known)
            else:
                self.objects[key] = obj
            await self.reconcile(key)
        return handle

    def _synced(self, kind: str) -> Callable[[], Any]:
        async def synced() -> None:
            self.synced.add(kind)
            for k in [k for k in self.objects if kind == "Service" or k[0] == kind]:
                await self.reconcile(k)
        return synced

    async def _on_service(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name", ""))
        if event_type == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = (obj.get("spec") or {}).get("ports") or []
        for k in [k for k in self.objects if k[1] == key[0]]:
            await self.reconcile(k)

    def _service_problem(self, ns: str, target: ServicePort) -> tuple[str, str] | None:
        ports = self.services.get((ns, target.service))
        if ports is None:
            return "ServiceNotFound", f"Service {target.service!r} not found in namespace {ns!r}"
        if target.port_name is not None:
            if not any(p.get("name") == target.port_name for p in ports):
                return "PortNotFound", f"Service {target.service!r} has no port named {target.port_name!r}"
        elif not any(p.get("port") == target.port for p in ports):
            return "PortNotFound", f"Service {target.service!r} has no port {target.port}"
        return None

    def _route_for(self, ns: str, name: str) -> Route | None:
        """The route the hub scales this key on: the InterceptorRoute if there is one (as the add-on)."""
        parsers = (("InterceptorRoute", from_interceptor_route), ("HTTPScaledObject", from_http_scaled_object))
        for kind, parse in parsers:
            raw = self.objects.get((kind, ns, name))
            if raw is not None:
                try:
                    return parse(raw)
                except RouteError:
                    return None
        return None

    async def reconcile(self, key: ObjKey) -> None:
        if "Service" not in self.synced:
            return  # judged once the Services are known: no passing ServiceNotFound at start
        async with self.lock:
            try:
                await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one object's trouble stays its own
                log.exception("%s %s/%s: reconcile failed", *key)
                await self._status(key, "False", "CreateError", f"{type(exc).__name__}: {exc}")

    async def _reconcile(self, key: ObjKey) -> None:
        kind, ns, name = key
        route = self._route_for(ns, name)
        self.hub.signals.set_route(f"{ns}/{name}", route.kind if route else kind, route.metric if route else None)
        raw = self.objects.get(key)
        if raw is None:
            return
        parse = from_http_scaled_object if kind == "HTTPScaledObject" else from_interceptor_route
        try:
            own = parse(raw)
        except RouteError as exc:
            await self._status(key, "False", "InvalidSpec", f"{kind} {ns}/{name}: {exc}", warn=True)
            return
        annotations = (raw.get("metadata") or {}).get("annotations") or {}
        if PREDICTIVE in annotations:
            try:
                json.loads(annotations[PREDICTIVE])
            except ValueError:
                await self._status(key, "False", "InvalidSpec", f"annotation {PREDICTIVE}: expected the JSON of "
                                                                 "spec.advanced.predictive", warn=True)
                return
        if kind == "HTTPScaledObject" and annotations.get(ORPHAN) != "true" and annotations.get(SKIP) != "true":
            try:
                await self._ensure_scaled_object(raw)
            except ApiException as exc:
                await self._status(key, "False", "CreateError", f"Failed to create scaled objects: "
                                                                f"{exc.reason or exc.status}", warn=True)
                return
        for target in (own.target, own.fallback):
            problem = self._service_problem(ns, target) if target is not None else None
            if problem is not None:
                await self._status(key, "False", problem[0], problem[1], warn=True)
                return
        message = "ScaledObject created and configured" if kind == "HTTPScaledObject" else "InterceptorRoute reconciled"
        await self._status(key, "True", "Reconciled", message)

    async def _ensure_scaled_object(self, raw: dict[str, Any]) -> None:
        body = generated_scaled_object(raw, self.polling_interval)
        ns = body["metadata"]["namespace"]
        try:
            await self.custom.create_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = await self.custom.get_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects",
                                                                      body["metadata"]["name"])
            spec = existing.get("spec") or {}
            if any(spec.get(k) != v for k, v in body["spec"].items()) or \
                    (existing.get("metadata") or {}).get("labels") != body["metadata"]["labels"]:
                await self.custom.patch_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects",
                                                                 body["metadata"]["name"], body)

    async def _deleted(self, key: ObjKey, raw: dict[str, Any]) -> None:
        """Kubernetes' garbage collector removes the owned ScaledObject; we do it too, so a cluster
        without it (or a test API) does not keep scaling a route that is gone."""
        kind, ns, name = key
        annotations = (raw.get("metadata") or {}).get("annotations") or {}
        if kind != "HTTPScaledObject" or annotations.get(ORPHAN) == "true":
            return
        uid = (raw.get("metadata") or {}).get("uid")
        try:
            so = await self.custom.get_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", name)
            owners = (so.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == uid and o.get("kind") == "HTTPScaledObject" for o in owners):
                await self.custom.delete_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", name)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not remove ScaledObject %s/%s: %s", ns, name, exc.reason)

    async def _status(self, key: ObjKey, status: str, reason: str, message: str, warn: bool = False) -> None:
        kind, ns, name = key
        raw = self.objects.get(key)
        if raw is None or self.written.get(key) == (status, reason, message):
            return
        version, plural = VERSIONS[kind]
        body: dict[str, Any] = {"conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "observedGeneration": (raw.get("metadata") or {}).get("generation", 1),
            "lastTransitionTime": _now(self.clock)}]}
        if kind == "HTTPScaledObject":
            ref = (raw.get("spec") or {}).get("scaleTargetRef") or {}
            body["targetWorkload"] = f"{ref.get('apiVersion', 'apps/v1')}/{ref.get('kind', 'Deployment')}/" \
                                     f"{ref.get('name')}"
            body["targetService"] = f"{ref.get('service')}:{ref.get('port') or ref.get('portName')}"
        try:
            await self.custom.patch_namespaced_custom_object_status("http.keda.sh", version, ns, plural, name,
                                                                    {"status": body})
            self.written[key] = (status, reason, message)
            if warn:
                self.errors.labels(ns, kind, name, reason).inc()
                await self._event(ns, raw, reason, message)
        except ApiException as exc:
            log.warning("could not write the status of %s %s/%s: %s", kind, ns, name, exc.reason)

    async def _event(self, ns: str, raw: dict[str, Any], reason: str, message: str) -> None:
        now = datetime.now(UTC)
        meta = raw.get("metadata") or {}
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'surge')}.", namespace=ns),
            involved_object=client.V1ObjectReference(api_version=raw.get("apiVersion"), kind=raw.get("kind"),
                                                     name=meta.get("name"), namespace=ns, uid=meta.get("uid")),
            reason=reason, message=message, type="Warning", first_timestamp=now, last_timestamp=now, count=1,
            source=client.V1EventSource(component="surge-operator"))
        try:
            await self.core.create_namespaced_event(ns, body)
        except ApiException as exc:
            log.warning("could not record event %s: %s", reason, exc.reason)


def make_http_controller(api: client.ApiClient, env: dict[str, str], registry: CollectorRegistry | None = None
                         ) -> HTTPController:
    """The HTTP controller and its hub from the chart's environment: SURGE_INTERCEPTOR_ADMIN_SERVICE
    (namespace/name of the interceptors' admin Service), SURGE_INTERCEPTOR_STALE_AFTER (seconds) and
    SURGE_HTTP_POLLING_INTERVAL (of the generated ScaledObjects; the add-on's 15 by default)."""
    from scalers.http_addon import use_source

    service = env.get("SURGE_INTERCEPTOR_ADMIN_SERVICE", "")
    ns, _, name = service.partition("/")
    if service and not (ns and name):
        raise ValueError(f"SURGE_INTERCEPTOR_ADMIN_SERVICE={service!r}: expected namespace/name")
    hub = InterceptorHub(float(env.get("SURGE_INTERCEPTOR_STALE_AFTER") or 3.0))
    use_source(hub)
    return HTTPController(api, hub, (ns, name) if service else None,
                          polling_interval=int(env.get("SURGE_HTTP_POLLING_INTERVAL") or 15), registry=registry)
