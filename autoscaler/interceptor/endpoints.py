"""Ready endpoints of Services, from watched Services and EndpointSlices, and the wait for them.

A route names a Service and a port (number or name). The Service maps it to a port name, and the
Service's EndpointSlices (label `kubernetes.io/service-name`) give, per port name, the pod port and
the addresses whose `ready` condition is true or unset — as the add-on's ready-endpoints cache
reads them. Requests for a Service without one wait on an asyncio.Event per Service that is set the
moment a slice brings the first ready endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from autoscaler.interceptor.routes import ServicePort

SERVICE_LABEL = "kubernetes.io/service-name"
SvcKey = tuple[str, str]  # (namespace, service)


class Resolution(Enum):
    READY = "ready"
    NOT_READY = "not-ready"  # the Service and port exist, no endpoint is ready: hold
    NO_SERVICE = "no-service"
    NO_PORT = "no-port"


@dataclass
class _Service:
    ports: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # by name and by "#<port>"
    slices: dict[str, dict[str, list[tuple[str, int]]]] = field(default_factory=dict)  # slice → port name → eps
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    known: bool = False
    turn: itertools.count[int] = field(default_factory=itertools.count)


class Endpoints:
    def __init__(self) -> None:
        self.services: dict[SvcKey, _Service] = {}
        self.slice_owner: dict[tuple[str, str], SvcKey] = {}  # a deletion may name the slice only

    def _svc(self, key: SvcKey) -> _Service:
        svc = self.services.get(key)
        if svc is None:
            svc = self.services[key] = _Service()
        return svc

    # --- watch events ----------------------------------------------------------------------------
    def apply_service(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        svc = self._svc((meta.get("namespace") or "default", meta.get("name", "")))
        if event_type == "DELETED":
            svc.known, svc.ports = False, {}
            return
        svc.known = True
        svc.ports = {}
        for p in (obj.get("spec") or {}).get("ports") or []:
            name = p.get("name") or ""
            entry = (p.get("port"), name)
            svc.ports[f"#{p.get('port')}"] = entry
            if name:
                svc.ports[name] = entry

    def apply_slice(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "default", meta.get("name", "")
        service = (meta.get("labels") or {}).get(SERVICE_LABEL)
        owner = (ns, service) if service else self.slice_owner.get((ns, name))
        if owner is None:
            return
        svc = self._svc(owner)
        if event_type == "DELETED":
            self.slice_owner.pop((ns, name), None)
            svc.slices.pop(name, None)
        else:
            self.slice_owner[(ns, name)] = owner
            ready = [ep["addresses"][0] for ep in obj.get("endpoints") or []
                     if ep.get("addresses") and (ep.get("conditions") or {}).get("ready") is not False]
            by_port: dict[str, list[tuple[str, int]]] = {}
            for p in obj.get("ports") or []:
                if p.get("port") is not None:
                    by_port.setdefault(p.get("name") or "", []).extend((ip, int(p["port"])) for ip in ready)
            svc.slices[name] = by_port if ready else {}
        if any(svc.slices.values()):
            svc.ready.set()
        else:
            svc.ready.clear()

    # --- lookups ---------------------------------------------------------------------------------
    def resolve(self, namespace: str, target: ServicePort) -> tuple[Resolution, tuple[str, int] | None]:
        """One ready address for the target, round robin, or why there is none."""
        svc = self.services.get((namespace, target.service))
        if svc is None or not svc.known:
            return Resolution.NO_SERVICE, None
        port = svc.ports.get(target.port_name) if target.port_name else svc.ports.get(f"#{target.port}")
        if port is None:
            return Resolution.NO_PORT, None
        addresses = [a for ports in svc.slices.values() for a in ports.get(port[1], ())]
        if not addresses:
            return Resolution.NOT_READY, None
        return Resolution.READY, addresses[next(svc.turn) % len(addresses)]

    def ready_event(self, namespace: str, service: str) -> asyncio.Event:
        return self._svc((namespace, service)).ready
