"""The interceptor's request path: route, count, hold at zero, forward, stream back.

Every request is routed by the add-on's table (no route → 404: only declared Services are ever
reached), counted for its route while it is in flight, and — when the route's Service has no ready
endpoint — held until one is ready, up to the route's readiness timeout (then 504, or the cold-start
fallback Service). Bodies stream both ways in chunks as they arrive, never buffered whole; a
WebSocket upgrade becomes a byte tunnel. Sizes and timeouts bound what one client can hold: the
request line (414), the header block (431), headers arriving too slowly (the connection is
closed), a body that stops arriving (408 before the upstream answers, else the connection drops).

The admin side (`admin_app`) is what the operator reads: `/queue` (the add-on's counts JSON) and
`/stream`, one JSON line per tick and one at once whenever a request starts waiting at zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from autoscaler.interceptor.counts import Counter
from autoscaler.interceptor.endpoints import Endpoints, Resolution
from autoscaler.interceptor.metrics import InterceptorMetrics
from autoscaler.interceptor.routes import Route, ServicePort, Static, build_routes, effective_readiness
from autoscaler.interceptor.routing import MalformedHost, RouteRef, RoutingTable, request_host, rule_matches
from autoscaler.interceptor.upstream import ConnectError, Pool, UpstreamError

log = logging.getLogger("surge.interceptor")
COLD_START_HEADER = "X-KEDA-HTTP-Cold-Start"
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade"))
CHUNK = 64 * 1024
DIAL_RETRY_EVERY_S = 0.05  # the add-on's dial retry interval


@dataclass
class Settings:
    """Defaults are the add-on's (KEDA_HTTP_* variables) where it has one."""

    readiness_s: float = 0.0  # KEDA_HTTP_READINESS_TIMEOUT: 0 holds as long as the request may
    request_s: float = 0.0  # KEDA_HTTP_REQUEST_TIMEOUT: 0 is no limit
    response_header_s: float = 300.0  # KEDA_HTTP_RESPONSE_HEADER_TIMEOUT
    connect_s: float = 0.5  # KEDA_HTTP_CONNECT_TIMEOUT
    dial_retry_s: float = 60.0  # a failed dial is retried every 50 ms for this long (the add-on's maxRetryDuration)
    header_read_s: float = 60.0  # the add-on's ReadHeaderTimeout (slow-loris), also the idle keep-alive limit
    body_idle_s: float = 60.0  # a request body that sends nothing for this long is abandoned
    max_url_bytes: int = 8192  # request target longer than this → 414
    max_header_bytes: int = 65536  # header block larger than this → 431
    max_idle_per_host: int = 200  # KEDA_HTTP_MAX_IDLE_CONNS_PER_HOST
    max_conns_per_host: int = 0  # upstream connections per pod address; 0 is no limit (Go's default)
    cold_start_header: bool = True  # KEDA_HTTP_ENABLE_COLD_START_HEADER
    tick_s: float = 0.5  # how often /stream reports (the add-on's scaler polls every 500 ms)
    drain_s: float = 30.0  # KEDA_HTTP_DRAIN_TIMEOUT


@dataclass
class State:
    """Routes, endpoints and counts of one interceptor process."""

    settings: Settings = field(default_factory=Settings)
    endpoints: Endpoints = field(default_factory=Endpoints)
    counter: Counter = field(default_factory=Counter)
    table: RoutingTable = field(default_factory=RoutingTable)
    routes: dict[RouteRef, Route] = field(default_factory=dict)
    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=lambda: {"InterceptorRoute": {}, "HTTPScaledObject": {}})
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.time)
    synced: set[str] = field(default_factory=set)
    # one per open /stream: set when counts should reach the operator now rather than at the next tick
    listeners: set[asyncio.Event] = field(default_factory=set)
    draining: bool = False
    final: asyncio.Event = field(default_factory=asyncio.Event)

    # --- routes from watch events ----------------------------------------------------------------
    def apply_route_object(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name", ""))
        if event_type == "DELETED":
            self.objects[kind].pop(key, None)
        else:
            self.objects[kind][key] = obj
        if kind in self.synced:  # the first list is applied in one rebuild, when it is complete
            self.rebuild()

    def mark_synced(self, kind: str) -> None:
        self.synced.add(kind)
        if kind in self.objects:
            self.rebuild()

    def rebuild(self) -> None:
        routes, errors = build_routes(self.objects["InterceptorRoute"].values(),
                                      self.objects["HTTPScaledObject"].values())
        for what, message in errors.items():
            log.warning("%s is not routed: %s", what, message)
        self.routes = {r.ref: r for r in routes}
        self.table = RoutingTable.build((r.ref, r.rules) for r in routes)
        for r in routes:
            self.counter.ensure(r.key)
        self.counter.keep_only({r.key for r in routes})

    def notify(self) -> None:
        for event in self.listeners:
            event.set()

    def ready(self) -> bool:
        return {"InterceptorRoute", "HTTPScaledObject", "Service", "EndpointSlice"} <= self.synced

    def report(self, final: bool = False) -> dict[str, Any]:
        return {"instance": self.instance, "started": self.started, "counts": self.counter.snapshot(),
                "final": final}


def _static(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """A short plain-text answer that names nothing internal."""
    return web.Response(status=status, text=text + "\n", headers=headers)


def _answer(static: Static, default_status: int) -> web.Response:
    """A placeholder or static-route response: its status (or the default), headers and body."""
    response = web.Response(status=static.status or default_status, body=static.body.encode())
    for k, v in static.headers:
        response.headers[k] = v
    if "Content-Type" not in response.headers:
        response.content_type, response.charset = "text/plain", "utf-8"
    return response


def _check_limits(request: web.BaseRequest, settings: Settings) -> web.Response | None:
    if len(request.raw_path) > settings.max_url_bytes:
        return _static(414, "URI Too Long")
    size = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    if size > settings.max_header_bytes:
        return _static(431, "Request Header Fields Too Large")
    return None


def _forward_headers(request: web.BaseRequest, keep_upgrade: bool = False) -> CIMultiDict[str]:
    drop = set(HOP_BY_HOP)
    for token in request.headers.getall("Connection", []):
        drop.update(t.strip().lower() for t in token.split(","))
    if keep_upgrade:
        drop -= {"connection", "upgrade"}
    out: CIMultiDict[str] = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    out.setdefault("X-Forwarded-Host", request.host)
    out.setdefault("X-Forwarded-Proto", request.scheme)
    return out


class Interceptor:
    """The proxy's aiohttp handler and its upstream connection pool."""

    def __init__(self, state: State) -> None:
        self.state = state
        s = state.settings
        self.pool = Pool(s.connect_s, s.max_idle_per_host, s.max_conns_per_host)
        self.metrics = InterceptorMetrics(state.counter)
        self.tunnels: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Nothing to open ahead: upstream connections are made on first use and pooled."""

    async def close(self) -> None:
        for t in self.tunnels:
            t.cancel()
        self.pool.close()

    # --- the request path --------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        routed: list[RouteRef] = []
        response = await self._handle(request, routed)
        self.metrics.record(request.method, response.status, routed[0] if routed else None)
        return response

    async def _handle(self, request: web.BaseRequest, routed: list[RouteRef]) -> web.StreamResponse:
        s = self.state.settings
        refused = _check_limits(request, s)
        if refused is not None:
            return refused
        hosts = request.headers.getall("Host", [])
        try:
            if len(hosts) != 1:
                raise MalformedHost("expected exactly one Host header")
            host = request_host(hosts[0])
        except MalformedHost:
            return _static(400, "Bad Request")
        ref = self.state.table.route(host, request.path, list(request.headers.items()))
        route = self.state.routes.get(ref) if ref is not None else None
        if route is None:
            return _static(404, "Not Found")
        routed.append(route.ref)
        if route.static_routes:  # served before counting, as the add-on's static routes are
            headers = list(request.headers.items())
            for sr in route.static_routes:
                if any(rule_matches(r, host, request.path, headers) for r in sr.rules):
                    if not sr.always:
                        found, address = self.state.endpoints.resolve(route.ref.namespace, route.target)
                        if found is Resolution.READY and address is not None:
                            return await self._forward(request, route, address, None)
                    return _answer(sr.response, 200)
        request_s = route.request_s if route.request_s is not None else s.request_s
        key = route.key
        self.state.counter.increase(key)
        try:
            if request_s > 0:
                async with asyncio.timeout(request_s):
                    return await self._serve(request, route)
            return await self._serve(request, route)
        except TimeoutError:
            return _static(504, "Gateway Timeout")
        finally:
            self.state.counter.decrease(key)

    async def _serve(self, request: web.BaseRequest, route: Route) -> web.StreamResponse:
        s = self.state.settings
        ns = route.ref.namespace
        found, address = self.state.endpoints.resolve(ns, route.target)
        cold = False
        if found in (Resolution.NO_SERVICE, Resolution.NO_PORT):
            return _static(503, "Service Unavailable")
        if found is Resolution.NOT_READY and route.placeholder is not None:
            self.state.notify()  # counted, and the operator hears of it: the workload wakes meanwhile
            return _answer(route.placeholder, 503)
        if found is Resolution.NOT_READY:
            cold = True
            self.state.notify()  # the operator hears of a request waiting at zero now, not at a tick
            readiness = effective_readiness(route, s.readiness_s)
            address = await self._wait_ready(ns, route.target, readiness)
            if address is None:
                if route.fallback is None:
                    return _static(504, "Gateway Timeout")
                return await self._to_fallback(request, route, route.fallback)
        assert address is not None
        return await self._forward(request, route, address, cold)

    async def _wait_ready(self, ns: str, target: ServicePort, readiness_s: float) -> tuple[str, int] | None:
        event = self.state.endpoints.ready_event(ns, target.service)
        deadline = asyncio.get_running_loop().time() + readiness_s if readiness_s > 0 else None
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await event.wait()
            except TimeoutError:
                return None
            found, address = self.state.endpoints.resolve(ns, target)
            if found is Resolution.READY:
                return address
            if found is not Resolution.NOT_READY:
                return None
            await asyncio.sleep(0.05)  # ready for another port of the Service: look again shortly

    async def _to_fallback(self, request: web.BaseRequest, route: Route, target: ServicePort) -> web.StreamResponse:
        found, address = self.state.endpoints.resolve(route.ref.namespace, target)
        if found is not Resolution.READY or address is None:
            return _static(503, "Service Unavailable")
        return await self._forward(request, route, address, None)

    async def _forward(self, request: web.BaseRequest, route: Route, address: tuple[str, int],
                       cold: bool | None) -> web.StreamResponse:
        """`cold`: whether the request waited for a pod (None: it went to the fallback, no header)."""
        s = self.state.settings
        if request.headers.get("Upgrade") and "upgrade" in request.headers.get("Connection", "").lower():
            return await self._tunnel(request, address, cold)
        body = _body(request, s.body_idle_s) if request.body_exists else None
        header_s = route.response_header_s if route.response_header_s is not None else s.response_header_s
        headers = _forward_headers(request)
        chunked = body is not None and "Content-Length" not in headers
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        if body is not None and request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # we want the body: ask for it
            headers.popall("Expect", None)
        # origin-form only: an absolute-form target (`GET http://elsewhere/`) reaches the pod as its path
        lines = [f"{request.method} {request.rel_url.raw_path_qs} HTTP/1.1\r\n"]
        lines += [f"{k}: {v}\r\n" for k, v in headers.items()]
        head = ("".join(lines) + "\r\n").encode("latin-1")
        loop = asyncio.get_running_loop()
        give_up = loop.time() + s.dial_retry_s
        try:
            while True:
                try:
                    async with asyncio.timeout(header_s if header_s > 0 else None):
                        upstream = await self.pool.request(address, head, body, chunked, request.method)
                    break
                except ConnectError:
                    # nothing was sent yet: dial again, as the add-on does, every 50 ms for a while
                    if loop.time() >= give_up:
                        raise
                    await asyncio.sleep(DIAL_RETRY_EVERY_S)
        except TimeoutError:
            return _static(504, "Gateway Timeout")
        except _BodyStalled:
            return _static(408, "Request Timeout")
        except (UpstreamError, OSError):
            return _static(502, "Bad Gateway")
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason or None)
        try:
            for k, v in upstream.headers:
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            if self.state.settings.cold_start_header and cold is not None:
                response.headers[COLD_START_HEADER] = "true" if cold else "false"
            if upstream.body_framing == "length":
                # a body of known length: its headers leave with its first bytes, one write, not two
                response._send_headers_immediately = False
            elif upstream.body_framing != "none" and request.version >= (1, 1):
                response.enable_chunked_encoding()
            await response.prepare(request)
            async for chunk in upstream.chunks():
                await response.write(chunk)
            await response.write_eof()
            return response
        except (UpstreamError, OSError, aiohttp.ClientError):
            # either side went away mid-body: the client must not mistake what it got for a whole body
            if request.transport is not None:
                request.transport.close()
            return response
        finally:
            upstream.release()

    async def _tunnel(self, request: web.BaseRequest, address: tuple[str, int], cold: bool | None
                      ) -> web.StreamResponse:
        """Send the upgrade request upstream as written; on 101 pipe bytes both ways until either
        side closes, otherwise relay the refusal."""
        s = self.state.settings
        try:
            async with asyncio.timeout(s.connect_s):
                reader, writer = await asyncio.open_connection(*address)
        except (OSError, TimeoutError):
            return _static(502, "Bad Gateway")
        head = [f"{request.method} {request.rel_url.raw_path_qs} HTTP/1.1"]
        head += [f"{k}: {v}" for k, v in _forward_headers(request, keep_upgrade=True).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        try:
            async with asyncio.timeout(s.response_header_s or None):
                raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return _static(502, "Bad Gateway")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        response = web.StreamResponse(status=status)
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                response.headers.add(k.strip(), v.strip())
        if self.state.settings.cold_start_header and cold is not None:
            response.headers[COLD_START_HEADER] = "true" if cold else "false"
        if status != 101:
            writer.close()
            response.headers.popall("Transfer-Encoding", None)
            response.headers["Content-Length"] = "0"
            await response.prepare(request)
            return response
        await response.prepare(request)
        protocol, transport = request.protocol, request.transport
        assert transport is not None
        done = asyncio.get_running_loop().create_future()
        protocol.set_parser(_Pipe(writer, done))  # type: ignore[arg-type]  # client bytes go straight upstream
        protocol.keep_alive(False)

        async def downstream() -> None:
            try:
                while chunk := await reader.read(CHUNK):
                    transport.write(chunk)
            finally:
                if not done.done():
                    done.set_result(None)

        task = asyncio.create_task(downstream())
        self.tunnels.add(task)
        task.add_done_callback(self.tunnels.discard)
        with contextlib.suppress(Exception):
            await done
        task.cancel()
        writer.close()
        return response


class _BodyStalled(Exception):
    """The client stopped sending its request body."""


class _Pipe:
    """A payload parser for aiohttp's protocol: after an upgrade, client bytes go to upstream."""

    def __init__(self, writer: asyncio.StreamWriter, done: asyncio.Future[None]) -> None:
        self.writer, self.done = writer, done

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.writer.write(data)
        return False, b""

    def feed_eof(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _body(request: web.BaseRequest, idle_s: float) -> AsyncIterator[bytes]:
    while True:
        try:
            async with asyncio.timeout(idle_s):
                chunk = await request.content.readany()
        except TimeoutError:
            raise _BodyStalled from None
        if not chunk:
            return
        yield chunk


def metrics_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


# --- admin: what the operator reads -----------------------------------------------------------------
def admin_app(state: State) -> web.Application:
    async def queue(_: web.Request) -> web.Response:
        return web.json_response(state.counter.snapshot())

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        tick = state.settings.tick_s
        changed = asyncio.Event()
        state.listeners.add(changed)
        try:
            while True:
                final = state.final.is_set()
                await resp.write(json.dumps(state.report(final=final)).encode() + b"\n")
                if final:
                    break
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await changed.wait()
        finally:
            state.listeners.discard(changed)
        await resp.write_eof()
        return resp

    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if state.draining or not state.ready():
            return web.Response(status=503, text="not ready")
        return web.Response(text="ready")

    app = web.Application()
    app.router.add_get("/queue", queue)
    app.router.add_get("/stream", stream)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app
