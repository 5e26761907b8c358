"""Pieces shared by the interceptor tests and bench/http.py: real upstream aiohttp servers playing
the pods, Services/EndpointSlices/routes written into the API emulator, an interceptor running on
free ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio.client import Configuration

from autoscaler.interceptor.main import Listen, run_interceptor
from autoscaler.interceptor.proxy import Settings
from tests.k8s.emulator import Emulator
from tests.servers import free_port

NS = "web"
POD = web.AppKey("pod", str)


async def _echo(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    return web.json_response({"pod": request.app[POD], "path": request.path_qs, "method": request.method,
                              "headers": dict(request.headers), "body": len(body)})


async def _stream(request: web.Request) -> web.StreamResponse:
    """Sends `n` chunks `gap` seconds apart, then ends: a client sees the first before the last is sent."""
    n, gap = int(request.query.get("n", "3")), float(request.query.get("gap", "0.2"))
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(n):
        await resp.write(f"chunk {i}\n".encode())
        await asyncio.sleep(gap)
    await resp.write_eof()
    return resp


async def _upload(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    return web.json_response({"received": total, "chunked": request.headers.get("Transfer-Encoding") == "chunked"})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="slow")


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"{request.app[POD]}:{msg.data}")
    return ws


async def _small(_: web.Request) -> web.Response:
    return web.Response(text="ok")


@dataclass
class Upstream:
    """One pod: an aiohttp server with echo, stream, upload, slow, ws and small handlers."""

    name: str
    port: int = 0
    runner: web.AppRunner | None = None

    async def start(self) -> Upstream:
        app = web.Application()
        app[POD] = self.name
        app.router.add_get("/ws", _ws)
        app.router.add_get("/stream", _stream)
        app.router.add_post("/upload", _upload)
        app.router.add_get("/slow", _slow)
        app.router.add_get("/small", _small)
        app.router.add_route("*", "/{tail:.*}", _echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def put_service(em: Emulator, name: str, port: int = 80, port_name: str = "http", ns: str = NS) -> None:
    em.put("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                              "spec": {"ports": [{"name": port_name, "port": port, "targetPort": port_name}]}})


def put_endpoints(em: Emulator, service: str, pod_ports: list[int], ready: bool = True, port_name: str = "http",
                  ns: str = NS, slice_name: str | None = None) -> None:
    """One EndpointSlice for the Service; pods on 127.0.0.1 differ by port, so each gets its own slice."""
    for i, p in enumerate(pod_ports or [0]):
        em.put("discovery.k8s.io/v1", "endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": slice_name or f"{service}-{i}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}] if pod_ports else [],
            "ports": [{"name": port_name, "port": p, "protocol": "TCP"}]})


def clear_endpoints(em: Emulator, service: str, ns: str = NS) -> None:
    for obj in list(em.all("discovery.k8s.io/v1", "endpointslices")):
        meta = obj["metadata"]
        if meta.get("namespace") == ns and meta["labels"].get("kubernetes.io/service-name") == service:
            put_endpoints(em, service, [], slice_name=meta["name"], ns=ns)


def http_scaled_object(name: str, service: str, hosts: list[str] | None = None, paths: list[str] | None = None,
                       ns: str = NS, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"hosts": hosts or [], "pathPrefixes": paths or [],
                     "scaleTargetRef": {"name": name, "kind": "Deployment", "apiVersion": "apps/v1",
                                        "service": service, "port": 80}, **spec}}


def put_http_scaled_object(em: Emulator, obj: dict[str, Any]) -> None:
    em.put("http.keda.sh/v1alpha1", "httpscaledobjects", obj)


@dataclass
class Running:
    """An interceptor serving in this event loop."""

    proxy_port: int
    admin_port: int
    task: asyncio.Task[None]
    stop: asyncio.Event
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 30)


async def start_interceptor(api_url: str, settings: Settings | None = None, tls: tuple[str, str] | None = None
                            ) -> Running:
    proxy_port, admin_port = free_port(), free_port()
    stop = asyncio.Event()
    listen = Listen(proxy_port, admin_port, host="127.0.0.1", shutdown_delay_s=0.0, metrics_port=free_port())
    if tls is not None:
        listen.tls_port, listen.tls_cert, listen.tls_key = free_port(), tls[0], tls[1]
    task = asyncio.create_task(run_interceptor(Configuration(host=api_url), settings or Settings(), listen,
                                               stop=stop))
    running = Running(proxy_port, admin_port, task, stop, {"tls_port": listen.tls_port,
                                                           "metrics_port": listen.metrics_port})
    await wait_ready(admin_port, task)
    return running


async def wait_ready(admin_port: int, task: asyncio.Task[None] | None = None, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as s:
        while asyncio.get_running_loop().time() < deadline:
            if task is not None and task.done():
                task.result()
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(f"http://127.0.0.1:{admin_port}/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError("interceptor not ready")


async def counts(admin_port: int) -> dict[str, dict[str, int]]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin_port}/queue") as r:
        data: dict[str, dict[str, int]] = await r.json()
        return data


async def until(predicate: Any, timeout_s: float = 10.0, every_s: float = 0.02) -> None:
    """Wait for an outcome (a sync or async predicate), not for a fixed time."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def upstreams(*names: str) -> AsyncIterator[list[Upstream]]:
    ups = [await Upstream(n).start() for n in names]
    try:
        yield ups
    finally:
        for u in ups:
            await u.stop()
