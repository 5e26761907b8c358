"""`surge interceptor`: the proxy port (plain and optionally TLS), the admin port, the watches.

Settings come from the KEDA HTTP add-on's environment variables where it has them (so an existing
interceptor Deployment's env carries over), command-line options override them. SIGTERM drains:
readiness turns false, after the shutdown delay the listeners close, requests in flight finish (up
to the drain timeout), then a final report goes to the operator so no answered request goes
uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client

from autoscaler.interceptor import kube
from autoscaler.interceptor.proxy import Interceptor, Settings, State, admin_app, metrics_app
from autoscaler.manifests.keda import duration_seconds

log = logging.getLogger("surge.interceptor")
PARSER_LIMIT = 1 << 20  # aiohttp's own parser limits sit far above ours, so ours answer 414/431 first

# add-on variable → Settings field (durations parsed Go-style)
ENV = {
    "KEDA_HTTP_READINESS_TIMEOUT": "readiness_s", "KEDA_CONDITION_WAIT_TIMEOUT": "readiness_s",
    "KEDA_HTTP_REQUEST_TIMEOUT": "request_s", "KEDA_HTTP_RESPONSE_HEADER_TIMEOUT": "response_header_s",
    "KEDA_RESPONSE_HEADER_TIMEOUT": "response_header_s", "KEDA_HTTP_CONNECT_TIMEOUT": "connect_s",
    "KEDA_HTTP_DRAIN_TIMEOUT": "drain_s", "KEDA_HTTP_MAX_IDLE_CONNS_PER_HOST": "max_idle_per_host",
    "KEDA_HTTP_ENABLE_COLD_START_HEADER": "cold_start_header", "SURGE_HTTP_HEADER_READ_TIMEOUT": "header_read_s",
    "SURGE_HTTP_BODY_IDLE_TIMEOUT": "body_idle_s", "SURGE_HTTP_MAX_URL_BYTES": "max_url_bytes",
    "SURGE_HTTP_MAX_HEADER_BYTES": "max_header_bytes", "SURGE_HTTP_REPORT_INTERVAL": "tick_s",
    "SURGE_HTTP_MAX_CONNS_PER_HOST": "max_conns_per_host",
}


def settings_from_env(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment; a bad value names the variable and what was expected."""
    env = dict(os.environ) if env is None else env
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    for var, name in ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        kind = str(types[name])
        try:
            if kind == "bool":
                values[name] = raw.strip().lower() in ("1", "true", "yes")
            elif kind == "int":
                values[name] = int(raw)
            else:
                values[name] = duration_seconds(raw) if not raw.replace(".", "", 1).isdigit() else float(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r}: expected {'an integer' if kind == 'int' else 'a duration such as 30s'}"
                             ) from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


@dataclass
class Listen:
    proxy_port: int = 8080  # KEDA_HTTP_PROXY_PORT
    admin_port: int = 9090  # KEDA_HTTP_ADMIN_PORT
    host: str = "0.0.0.0"
    tls_port: int | None = None  # KEDA_HTTP_PROXY_TLS_PORT when KEDA_HTTP_PROXY_TLS_ENABLED
    tls_cert: str | None = None
    tls_key: str | None = None
    shutdown_delay_s: float = 5.0  # KEDA_HTTP_SHUTDOWN_DELAY: endpoints see us leave before we stop listening
    metrics_port: int | None = None  # Prometheus /metrics (the add-on's exporter port is 2223)


def proxy_server(interceptor: Interceptor) -> web.Server:
    s = interceptor.state.settings
    # keepalive_timeout also closes a connection whose request headers have not all arrived that long
    # after it opened or after its previous response: the slow-loris bound
    return web.Server(interceptor.handle, keepalive_timeout=s.header_read_s, max_line_size=PARSER_LIMIT,
                      max_field_size=PARSER_LIMIT, access_log=None, handler_cancellation=True)


async def watch_all(api: client.ApiClient, state: State, namespace: str = "") -> None:
    k = kube.kinds(api, namespace)

    def synced(kind: str) -> Any:
        return lambda: state.mark_synced(kind)

    await asyncio.gather(
        kube.follow(k["InterceptorRoute"], lambda t, o: state.apply_route_object("InterceptorRoute", t, o),
                    synced("InterceptorRoute")),
        kube.follow(k["HTTPScaledObject"], lambda t, o: state.apply_route_object("HTTPScaledObject", t, o),
                    synced("HTTPScaledObject")),
        kube.follow(k["Service"], state.endpoints.apply_service, synced("Service")),
        kube.follow(k["EndpointSlice"], state.endpoints.apply_slice, synced("EndpointSlice")))


async def run_interceptor(configuration: client.Configuration, settings: Settings, listen: Listen,
                          namespace: str = "", stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`), then drain and send the final report."""
    state = State(settings)
    interceptor = Interceptor(state)
    await interceptor.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    admin = web.AppRunner(admin_app(state), access_log=None)
    await admin.setup()
    await web.TCPSite(admin, listen.host, listen.admin_port).start()
    metrics = web.AppRunner(metrics_app(interceptor.metrics.registry), access_log=None)
    await metrics.setup()
    if listen.metrics_port is not None:  # its own port: Prometheus may reach it, the admin port stays closed
        await web.TCPSite(metrics, listen.host, listen.metrics_port).start()
    proxy = web.ServerRunner(proxy_server(interceptor), shutdown_timeout=settings.drain_s)
    await proxy.setup()
    await web.TCPSite(proxy, listen.host, listen.proxy_port, backlog=4096).start()
    if listen.tls_port is not None and listen.tls_cert and listen.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(listen.tls_cert, listen.tls_key)
        await web.TCPSite(proxy, listen.host, listen.tls_port, ssl_context=context, backlog=4096).start()
    async with client.ApiClient(configuration) as api:
        watches = asyncio.create_task(watch_all(api, state, namespace))
        log.info("interceptor %s serving on :%d (admin :%d)", state.instance, listen.proxy_port, listen.admin_port)
        try:
            await stop.wait()
        finally:
            state.draining = True
            await asyncio.sleep(listen.shutdown_delay_s)
            # stop listening, let requests in flight finish (held ones included), then report last
            await proxy.cleanup()
            state.final.set()
            state.notify()
            await asyncio.sleep(min(1.0, settings.tick_s * 2))
            watches.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watches
            await interceptor.close()
            await admin.cleanup()
            await metrics.cleanup()
