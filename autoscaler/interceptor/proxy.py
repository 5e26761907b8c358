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

from autoscaler.interceptor.counts import Counter
from autoscaler.interceptor.endpoints import Endpoints, Resolution
from autoscaler.interceptor.routes import Route, ServicePort, build_routes, effective_readiness
from autoscaler.interceptor.routing import MalformedHost, RouteRef, RoutingTable, request_host

log = logging.getLogger("surge.interceptor")
COLD_START_HEADER = "X-KEDA-HTTP-Cold-Start"
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade"))
CHUNK = 64 * 1024


@dataclass
class Settings:
    """Defaults are the add-on's (KEDA_HTTP_* variables) where it has one."""

    readiness_s: float = 0.0  # KEDA_HTTP_READINESS_TIMEOUT: 0 holds as long as the request may
    request_s: float = 0.0  # KEDA_HTTP_REQUEST_TIMEOUT: 0 is no limit
    response_header_s: float = 300.0  # KEDA_HTTP_RESPONSE_HEADER_TIMEOUT
    connect_s: float = 0.5  # KEDA_HTTP_CONNECT_TIMEOUT
    header_read_s: float = 60.0  # the add-on's ReadHeaderTimeout (slow-loris), also the idle keep-alive limit
    body_idle_s: float = 60.0  # a request body that sends nothing for this long is abandoned
    max_url_bytes: int = 8192  # request target longer than this → 414
    max_header_bytes: int = 65536  # header block larger than this → 431
    max_idle_per_host: int = 200  # KEDA_HTTP_MAX_IDLE_CONNS_PER_HOST
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
        self.rebuild()

    def reset_route_objects(self, kind: str, items: list[dict[str, Any]]) -> None:
        self.objects[kind] = {((o.get("metadata") or {}).get("namespace") or "default",
                               (o.get("metadata") or {}).get("name", "")): o for o in items}
        self.synced.add(kind)
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
        self.session: aiohttp.ClientSession | None = None
        self.tunnels: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        s = self.state.settings
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=90)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                             cookie_jar=aiohttp.DummyCookieJar(),
                                             skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_s))

    async def close(self) -> None:
        for t in self.tunnels:
            t.cancel()
        if self.session is not None:
            await self.session.close()

    # --- the request path --------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
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
        if found is Resolution.NOT_READY:
            cold = True
            self.state.notify()  # the operator hears of a request waiting at zero now, not at a tick
            readiness = effective_readiness(route, s.readiness_s)
            address = await self._wait_ready(ns, route.target, readiness)
            if address is None:
                if route.fallback is None:
                    return _static(504, "Gateway Timeout")
                return await self._forward_to(request, route, ns, route.fallback, cold=False, fallback=True)
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

    async def _forward_to(self, request: web.BaseRequest, route: Route, ns: str, target: ServicePort, cold: bool,
                          fallback: bool) -> web.StreamResponse:
        found, address = self.state.endpoints.resolve(ns, target)
        if found is not Resolution.READY or address is None:
            return _static(503 if fallback else 504, "Service Unavailable" if fallback else "Gateway Timeout")
        return await self._forward(request, route, address, cold)

    async def _forward(self, request: web.BaseRequest, route: Route, address: tuple[str, int],
                       cold: bool) -> web.StreamResponse:
        s = self.state.settings
        if request.headers.get("Upgrade") and "upgrade" in request.headers.get("Connection", "").lower():
            return await self._tunnel(request, address, cold)
        assert self.session is not None
        url = f"http://{address[0]}:{address[1]}{request.raw_path}"
        body = _body(request, s.body_idle_s) if request.body_exists else None
        header_s = route.response_header_s if route.response_header_s is not None else s.response_header_s
        try:
            async with asyncio.timeout(header_s if header_s > 0 else None):
                upstream = await self.session.request(request.method, url, headers=_forward_headers(request),
                                                      data=body, allow_redirects=False, compress=None,
                                                      auto_decompress=False)
        except TimeoutError:
            return _static(504, "Gateway Timeout")
        except _BodyStalled:
            return _static(408, "Request Timeout")
        except (aiohttp.ClientError, OSError) as exc:
            if isinstance(exc.__cause__ or exc.__context__, _BodyStalled):
                return _static(408, "Request Timeout")
            return _static(502, "Bad Gateway")
        try:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            if self.state.settings.cold_start_header:
                response.headers[COLD_START_HEADER] = "true" if cold else "false"
            if "Content-Length" not in upstream.headers and request.version >= (1, 1) and \
                    upstream.status not in (204, 304) and request.method != "HEAD":
                response.enable_chunked_encoding()
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError):
            if request.transport is not None:  # cut short: the client must not mistake it for a whole body
                request.transport.close()
            raise
        finally:
            upstream.release()

    async def _tunnel(self, request: web.BaseRequest, address: tuple[str, int], cold: bool) -> web.StreamResponse:
        """Send the upgrade request upstream as written; on 101 pipe bytes both ways until either
        side closes, otherwise relay the refusal."""
        s = self.state.settings
        try:
            async with asyncio.timeout(s.connect_s):
                reader, writer = await asyncio.open_connection(*address)
        except (OSError, TimeoutError):
            return _static(502, "Bad Gateway")
        head = [f"{request.method} {request.raw_path} HTTP/1.1"]
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
        if self.state.settings.cold_start_header:
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
