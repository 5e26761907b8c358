"""A small Kubernetes API server emulator for tests, spoken to by the real kubernetes-asyncio client.

What it does faithfully enough for the operator: namespaced and cluster-scoped objects of any
group/version/plural, resourceVersion on every write with 409 Conflict on a stale PUT or
merge-patch carrying an old resourceVersion, JSON merge patch (RFC 7386), the `status` and `scale`
subresources (scale maps to spec.replicas and status.replicas, like Deployments), label selectors
(equality), and `watch=true` streams from a resourceVersion. Not emulated: admission, defaulting,
field selectors beyond metadata.name, strategic merge (treated as a merge patch), garbage collection.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

Key = tuple[str, str]  # (group/version, plural)


@dataclass(frozen=True)
class ScaleWrite:
    """One write to a scale subresource, as an audit log would show it: who sent it (the client's
    User-Agent) and who held each Lease at that instant — what the chaos suite's split-brain
    check compares."""

    at: float  # time.monotonic() in the emulator's process
    target: str  # namespace/name
    replicas: int
    user_agent: str
    holders: dict[str, str]  # lease namespace/name → holderIdentity


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def status_error(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
            "code": code}
    return web.json_response(body, status=code)


@dataclass
class Store:
    objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    version: int = 0
    events: list[tuple[int, Key, str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Condition | None = None

    def bump(self, key: Key, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.events.append((self.version, key, kind, copy.deepcopy(obj)))
        if self.changed is not None:
            cond = self.changed

            async def notify() -> None:
                async with cond:
                    cond.notify_all()

            asyncio.get_event_loop().create_task(notify())


def _matches(obj: dict[str, Any], selector: str | None, ns: str | None) -> bool:
    if ns and obj["metadata"].get("namespace") != ns:
        return False
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    for term in selector.split(","):
        k, _, v = term.partition("=")
        if labels.get(k.strip()) != v.strip():
            return False
    return True


class Emulator:
    def __init__(self) -> None:
        self.store = Store()
        self.clock: Callable[[], float] = time.time  # creationTimestamp's clock (a test's fake one)
        # authentication and authorization, for TokenReview / SubjectAccessReview: token → user
        # info ({"username", "groups"}), and the (user, non-resource path, verb) triples allowed
        self.tokens: dict[str, dict[str, Any]] = {}
        self.allowed: set[tuple[str, str, str]] = set()
        self.reviews = 0
        self.scale_writes: list[ScaleWrite] = []
        self.app = web.Application()
        self.app.router.add_get("/version", self.version)
        self.app.router.add_get("/version/", self.version)
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            self.app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}", self.collection)
            self.app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}/{name}", self.item)
            self.app.router.add_route("*", prefix + "/namespaces/{ns}/{plural}/{name}/{sub}", self.item)
            self.app.router.add_route("*", prefix + "/{plural}", self.collection)
            self.app.router.add_route("*", prefix + "/{plural}/{name}", self.item)
            self.app.router.add_route("*", prefix + "/{plural}/{name}/{sub}", self.item)
        self.app.on_startup.append(self._startup)

    async def _startup(self, _: web.Application) -> None:
        self.store.changed = asyncio.Condition()

    @staticmethod
    def _key(req: web.Request) -> Key:
        gv = req.match_info["version"] if "group" not in req.match_info else \
            f"{req.match_info['group']}/{req.match_info['version']}"
        return gv, req.match_info["plural"]

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0-surge-emulator"})

    # --- direct access for tests -------------------------------------------------------------------
    def put(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        existed = (meta.get("namespace", ""), meta["name"]) in self.store.objects[(api_version, plural)]
        self.store.objects[(api_version, plural)][(meta.get("namespace", ""), meta["name"])] = obj
        self.store.bump((api_version, plural), "MODIFIED" if existed else "ADDED", obj)
        return obj

    def get(self, api_version: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.store.objects[(api_version, plural)].get((ns, name))

    def all(self, api_version: str, plural: str) -> list[dict[str, Any]]:
        return list(self.store.objects[(api_version, plural)].values())

    # --- HTTP --------------------------------------------------------------------------------------
    async def collection(self, req: web.Request) -> web.StreamResponse:
        key = self._key(req)
        ns = req.match_info.get("ns")
        if req.method == "GET":
            if req.query.get("watch") in ("true", "True", "1"):
                return await self._watch(req, key, ns)
            items = [o for o in self.store.objects[key].values() if _matches(o, req.query.get("labelSelector"), ns)]
            return web.json_response({"kind": "List", "apiVersion": key[0], "items": items,
                                      "metadata": {"resourceVersion": str(self.store.version)}})
        if req.method == "POST" and key[1] in ("tokenreviews", "subjectaccessreviews"):
            return web.json_response(self._review(key[1], await req.json()), status=201)
        if req.method == "POST":
            obj = await req.json()
            meta = obj.setdefault("metadata", {})
            if ns:
                meta["namespace"] = ns
            if "name" not in meta and "generateName" in meta:
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if (meta.get("namespace", ""), meta["name"]) in self.store.objects[key]:
                return status_error(409, "AlreadyExists", f"{key[1]} {meta['name']!r} already exists")
            return web.json_response(self.put(key[0], key[1], obj), status=201)
        return status_error(405, "MethodNotAllowed", req.method)

    async def item(self, req: web.Request) -> web.Response:
        key = self._key(req)
        ns, name, sub = req.match_info.get("ns", ""), req.match_info["name"], req.match_info.get("sub")
        objects = self.store.objects[key]
        obj = objects.get((ns, name))
        if obj is None:
            return status_error(404, "NotFound", f"{key[1]} {name!r} not found")
        if req.method == "GET":
            return web.json_response(self._scale(obj) if sub == "scale" else obj)
        if req.method == "DELETE":
            del objects[(ns, name)]
            self.store.bump(key, "DELETED", obj)
            return web.json_response(obj)
        body = await req.json()
        if sub == "eviction" and req.method == "POST":
            return self._evict(key, ns, name, obj)
        sent_rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        if sent_rv and sent_rv != obj["metadata"]["resourceVersion"]:
            return status_error(409, "Conflict", f"the object has been modified; resourceVersion {sent_rv} is stale")
        new = copy.deepcopy(obj)
        if sub == "scale":
            replicas = (body.get("spec") or {}).get("replicas")
            if replicas is None:
                return status_error(422, "Invalid", "scale.spec.replicas is required")
            new["spec"]["replicas"] = int(replicas)
            holders = {f"{ns_}/{n}": (lease.get("spec") or {}).get("holderIdentity") or ""
                       for (ns_, n), lease in self.store.objects[("coordination.k8s.io/v1", "leases")].items()}
            self.scale_writes.append(ScaleWrite(time.monotonic(), f"{ns}/{name}", int(replicas),
                                                req.headers.get("User-Agent", ""), holders))
        elif sub == "status":
            patch = body.get("status")
            new["status"] = patch if req.method == "PUT" else merge_patch(obj.get("status"), patch)
        elif req.method == "PUT":
            body["metadata"] = merge_patch(obj["metadata"], body.get("metadata") or {})
            body["status"] = obj.get("status")
            new = body
        else:
            new = merge_patch(obj, {k: v for k, v in body.items() if k != "status"})
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        objects[(ns, name)] = new
        self.store.bump(key, "MODIFIED", new)
        return web.json_response(self._scale(new) if sub == "scale" else new)

    def _review(self, plural: str, review: dict[str, Any]) -> dict[str, Any]:
        """TokenReview: authenticated when the token is known. SubjectAccessReview: allowed when
        (user, path, verb) of its nonResourceAttributes was granted."""
        self.reviews += 1
        spec = review.get("spec") or {}
        if plural == "tokenreviews":
            user = self.tokens.get(spec.get("token", ""))
            review["status"] = {"authenticated": True, "user": user} if user else {"authenticated": False}
        else:
            attrs = spec.get("nonResourceAttributes") or {}
            review["status"] = {"allowed": (spec.get("user"), attrs.get("path"), attrs.get("verb")) in self.allowed}
        return review

    def _evict(self, key: Key, ns: str, name: str, pod: dict[str, Any]) -> web.Response:
        """The Eviction API: refused with 429 when a PodDisruptionBudget selecting the pod would be
        violated (minAvailable / maxUnavailable as integers, over the pods that exist)."""
        labels = pod["metadata"].get("labels") or {}
        pods = [p for (pns, _), p in self.store.objects[key].items() if pns == ns]
        for pdb in self.store.objects[("policy/v1", "poddisruptionbudgets")].values():
            if pdb["metadata"].get("namespace") != ns:
                continue
            spec = pdb.get("spec") or {}
            wanted = (spec.get("selector") or {}).get("matchLabels") or {}
            if not all(labels.get(k) == v for k, v in wanted.items()):
                continue
            healthy = sum(1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v
                                                 for k, v in wanted.items()))
            if "minAvailable" in spec and healthy - 1 < int(spec["minAvailable"]):
                return status_error(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's "
                                                            "disruption budget.")
            if "maxUnavailable" in spec and int(spec["maxUnavailable"]) < 1:
                return status_error(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's "
                                                            "disruption budget.")
        del self.store.objects[key][(ns, name)]
        self.store.bump(key, "DELETED", pod)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201},
                                 status=201)

    @staticmethod
    def _scale(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                             "resourceVersion": meta["resourceVersion"]},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in
                                                ((obj.get("spec") or {}).get("selector") or {})
                                                .get("matchLabels", {}).items())}}

    async def _watch(self, req: web.Request, key: Key, ns: str | None) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)
        since = int(req.query.get("resourceVersion") or 0)
        timeout = float(req.query.get("timeoutSeconds") or 3600)
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        if since == 0:  # a watch without a version starts with the current state
            for obj in list(self.store.objects[key].values()):
                if _matches(obj, req.query.get("labelSelector"), ns):
                    await resp.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            since = self.store.version
        cond = self.store.changed
        assert cond is not None
        while loop.time() < deadline:
            if req.transport is None or req.transport.is_closing():
                break  # the client went away
            # events[i] has resourceVersion i + 1: start right after the last one sent
            for rv, k, kind, obj in itertools.islice(self.store.events, since, None):
                if k == key and _matches(obj, req.query.get("labelSelector"), ns):
                    await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                since = rv
            since = max(since, self.store.version)
            try:
                async with cond:  # asyncio.timeout, not wait_for: a cancelled wait_for can leave the lock released
                    async with asyncio.timeout(max(0.05, min(1.0, deadline - loop.time()))):
                        await cond.wait()
            except TimeoutError:
                pass
        return resp
