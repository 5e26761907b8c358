"""The interceptor over real sockets: real upstream aiohttp servers play the pods, the API emulator
holds Services, EndpointSlices and routes, and clients are aiohttp or raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from autoscaler.interceptor.proxy import Settings
from tests.http_harness import (
    clear_endpoints,
    counts,
    http_scaled_object,
    put_endpoints,
    put_http_scaled_object,
    put_service,
    start_interceptor,
    until,
    upstreams,
)
from tests.k8s.fixture import K8s

pytestmark = pytest.mark.timeout(60)


async def get(session: aiohttp.ClientSession, url: str, host: str, **kw: object) -> tuple[int, str, dict[str, str]]:
    async with session.get(url, headers={"Host": host, **kw.pop("headers", {})}, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.text(), dict(r.headers)


async def test_routes_to_the_declared_service_only(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("a1", "a2", "b") as (a1, a2, b):
        put_service(em, "a")
        put_endpoints(em, "a", [a1.port, a2.port])
        put_service(em, "b", port=8080, port_name="web")
        put_endpoints(em, "b", [b.port], port_name="web")
        put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"]))
        obj = http_scaled_object("b", "b", hosts=["a.example.com"], paths=["/b"])
        obj["spec"]["scaleTargetRef"].update(port=None, portName="web")
        del obj["spec"]["scaleTargetRef"]["port"]
        put_http_scaled_object(em, obj)
        ic = await start_interceptor(k8s_api.url)
        try:
            async with aiohttp.ClientSession() as s:
                pods = set()
                for _ in range(4):
                    status, body, headers = await get(s, ic.url + "/x", "A.example.com:80")
                    assert status == 200 and headers["X-KEDA-HTTP-Cold-Start"] == "false"
                    pods.add(__import__("json").loads(body)["pod"])
                assert pods == {"a1", "a2"}  # both ready endpoints take turns
                status, body, _ = await get(s, ic.url + "/b/c?q=1", "a.example.com")
                assert status == 200 and '"pod": "b"' in body and '"/b/c?q=1"' in body
                # no route: 404, whatever the Host or an absolute URL says — never an open proxy
                assert (await get(s, ic.url + "/x", "b.example.com"))[0] == 404
                reader, writer = await asyncio.open_connection("127.0.0.1", ic.proxy_port)
                writer.write(f"GET http://127.0.0.1:{b.port}/ HTTP/1.1\r\nHost: evil.example.com\r\n\r\n".encode())
                assert (await raw_response(reader))[0] == 404
                # absolute-form to a declared host reaches that route's pod, as a path
                writer.write(b"GET http://a.example.com/abs?x=1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
                status, body = await raw_response(reader)
                assert status == 200 and b'"path": "/abs?x=1"' in body
                # Expect: 100-continue is answered before the body is sent
                writer.write(b"POST /upload HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\n"
                             b"Expect: 100-continue\r\n\r\n")
                assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
                writer.write(b"hello")
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
                writer.close()
            assert (await counts(ic.admin_port))["web/a"]["RequestCount"] == 6
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{ic.extra['metrics_port']}/metrics") as r:
                text = await r.text()  # the add-on's metric names
            assert 'interceptor_request_count_total{code="200",method="GET",route_name="a",route_namespace="web"} 5.0' \
                in text
            assert 'interceptor_request_count_total{code="404",method="GET",route_name="",route_namespace=""}' in text
            assert 'interceptor_request_concurrency{route_name="a",route_namespace="web"} 0.0' in text
        finally:
            await ic.close()


async def raw_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return int(head.split()[1]), await reader.readexactly(length)


async def test_hold_at_zero_then_forward_and_disconnect_frees_the_slot(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("a") as (a,):
        put_service(em, "a")
        put_endpoints(em, "a", [])  # scaled to zero: the Service exists, no endpoint
        put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"]))
        ic = await start_interceptor(k8s_api.url)
        try:
            async with aiohttp.ClientSession() as s:
                held = asyncio.create_task(get(s, ic.url + "/held", "a.example.com"))
                await until(lambda: _conc(ic.admin_port, 1))
                assert not held.done()
                put_endpoints(em, "a", [a.port])  # the pod became ready
                status, body, headers = await asyncio.wait_for(held, 10)
                assert status == 200 and '"/held"' in body and headers["X-KEDA-HTTP-Cold-Start"] == "true"
                assert (await counts(ic.admin_port))["web/a"] == {"Concurrency": 0, "RequestCount": 1}

                clear_endpoints(em, "a")
                gone = asyncio.create_task(get(s, ic.url + "/gone", "a.example.com"))
                await until(lambda: _conc(ic.admin_port, 1))
                gone.cancel()  # the client gives up while held
                with contextlib.suppress(asyncio.CancelledError):
                    await gone
            await until(lambda: _conc(ic.admin_port, 0))
        finally:
            await ic.close()


async def _conc(admin_port: int, n: int) -> bool:
    return (await counts(admin_port)).get("web/a", {}).get("Concurrency") == n


async def test_readiness_timeout_gives_504_or_the_failover(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("fallback") as (fb,):
        put_service(em, "a")
        put_endpoints(em, "a", [])
        put_service(em, "fb")
        put_endpoints(em, "fb", [fb.port])
        put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"],
                                                      timeouts={"conditionWait": "300ms", "responseHeader": "5s"}))
        put_http_scaled_object(em, http_scaled_object("f", "a", hosts=["f.example.com"], coldStartTimeoutFailoverRef={
            "service": "fb", "port": 80, "timeoutSeconds": 1}))
        ic = await start_interceptor(k8s_api.url)
        try:
            async with aiohttp.ClientSession() as s:
                status, body, _ = await get(s, ic.url + "/", "a.example.com")
                assert status == 504 and body == "Gateway Timeout\n"
                status, body, headers = await get(s, ic.url + "/p", "f.example.com")
                assert status == 200 and '"pod": "fallback"' in body
                assert "X-KEDA-HTTP-Cold-Start" not in headers  # as the add-on: no header on the fallback path
        finally:
            await ic.close()


async def test_response_header_timeout_is_504_and_upstream_gone_is_502(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("a") as (a,):
        put_service(em, "a")
        put_endpoints(em, "a", [a.port])
        put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"],
                                                      timeouts={"responseHeader": "300ms"}))
        ic = await start_interceptor(k8s_api.url, Settings(dial_retry_s=0.3))
        try:
            async with aiohttp.ClientSession() as s:
                assert (await get(s, ic.url + "/slow?s=1", "a.example.com"))[0] == 504
                await a.stop()  # listed as ready, refuses connections: dialled again for 0.3 s, then 502
                assert (await get(s, ic.url + "/x", "a.example.com"))[0] == 502
        finally:
            await ic.close()


async def test_limits_bad_host_and_missing_service(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("a") as (a,):
        put_service(em, "a")
        put_endpoints(em, "a", [a.port])
        put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"]))
        put_http_scaled_object(em, http_scaled_object("m", "secret-internal-svc", hosts=["m.example.com"]))
        ic = await start_interceptor(k8s_api.url, Settings(max_url_bytes=1024, max_header_bytes=4096))
        try:
            async with aiohttp.ClientSession() as s:
                assert (await get(s, ic.url + "/" + "x" * 2000, "a.example.com"))[0] == 414
                assert (await get(s, ic.url + "/", "a.example.com", headers={"X-Big": "y" * 5000}))[0] == 431
                assert (await get(s, ic.url + "/" + "x" * 900, "a.example.com"))[0] == 200
                status, body, _ = await get(s, ic.url + "/", "m.example.com")
                assert status == 503 and "secret" not in body and "m.example.com" not in body
            for bad in (b"Host: a.example.com:99999\r\n", b"Host: a..example.com\r\n", b"",
                        b"Host: a.example.com\r\nHost: b.example.com\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", ic.proxy_port)
                writer.write(b"GET / HTTP/1.1\r\n" + bad + b"\r\n")
                line = await reader.readline()  # aiohttp's own parser refuses some of these first
                assert line.split()[1:2] == [b"400"], (bad, line)
                writer.close()
        finally:
            await ic.close()


async def test_slow_loris_connections_are_closed(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    put_service(em, "a")
    put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"]))
    ic = await start_interceptor(k8s_api.url, Settings(header_read_s=0.5))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ic.proxy_port)
        start = asyncio.get_running_loop().time()
        closed = False
        for piece in [b"GET / HTTP/1.1\r\n", b"Host: a.example.com\r\n"] + [b"X-A: 1\r\n"] * 30:
            try:
                writer.write(piece)
                await writer.drain()
                data = await asyncio.wait_for(reader.read(100), 0.25)
                if data == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
        assert closed, "the interceptor kept a connection whose headers never completed"
        assert asyncio.get_running_loop().time() - start < 6
        writer.close()
    finally:
        await ic.close()


async def test_streams_bodies_both_ways_and_tunnels_websockets(k8s_api: K8s, tmp_path: Path) -> None:
    em = k8s_api.emulator
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=a.example.com"], check=True, capture_output=True)
    async with upstreams("a") as (a,):
        put_service(em, "a")
        put_endpoints(em, "a", [a.port])
        put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"]))
        ic = await start_interceptor(k8s_api.url, tls=(str(cert), str(key)))
        try:
            async with aiohttp.ClientSession() as s:
                # the first chunk arrives while the upstream is still sending the rest
                async with s.get(ic.url + "/stream?n=4&gap=0.5", headers={"Host": "a.example.com"}) as r:
                    assert r.headers["Transfer-Encoding"] == "chunked"
                    loop = asyncio.get_running_loop()
                    t0 = loop.time()
                    first = await r.content.readline()
                    t_first = loop.time() - t0
                    rest = await r.content.read()
                    assert first == b"chunk 0\n" and rest.count(b"chunk") == 3 and t_first < 1.0

                async def body() -> object:
                    for _ in range(20):
                        yield b"z" * 65536

                async with s.post(ic.url + "/upload", data=body(), headers={"Host": "a.example.com"}) as r:
                    assert await r.json() == {"received": 20 * 65536, "chunked": True}
                async with s.post(ic.url + "/upload", data=b"q" * 300_000, headers={"Host": "a.example.com"}) as r:
                    assert await r.json() == {"received": 300_000, "chunked": False}
                async with s.ws_connect(ic.url + "/ws", headers={"Host": "a.example.com"}) as ws:
                    for i in range(3):
                        await ws.send_str(f"m{i}")
                        assert (await ws.receive_str()) == f"a:m{i}"
                # TLS termination on its own port, same routes
                ctx = ssl.create_default_context(cafile=str(cert))
                ctx.check_hostname = False
                async with s.get(f"https://127.0.0.1:{ic.extra['tls_port']}/t", ssl=ctx,
                                 headers={"Host": "a.example.com"}) as r:
                    assert r.status == 200 and '"/t"' in await r.text()
            assert (await counts(ic.admin_port))["web/a"]["RequestCount"] == 5
        finally:
            await ic.close()


async def test_upstream_framing_and_stale_keep_alive(k8s_api: K8s) -> None:
    """HEAD and 204 carry no body, a 5 MB body arrives intact, and a pooled connection the pod
    closed while idle is replaced without the client noticing."""
    from aiohttp import web

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * 20480)

    async def empty(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/empty", empty)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=0.2)  # the pod drops idle connections fast
    await runner.setup()
    from tests.servers import free_port

    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    em = k8s_api.emulator
    put_service(em, "a")
    put_endpoints(em, "a", [port])
    put_http_scaled_object(em, http_scaled_object("a", "a", hosts=["a.example.com"]))
    ic = await start_interceptor(k8s_api.url)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(ic.url + "/big", headers={"Host": "a.example.com"}) as r:
                assert r.status == 200 and await r.read() == bytes(range(256)) * 20480
            await asyncio.sleep(0.5)  # the pooled connection is closed by the pod meanwhile
            async with s.head(ic.url + "/big", headers={"Host": "a.example.com"}) as r:
                assert r.status == 200 and r.headers["Content-Length"] == str(256 * 20480)
            async with s.get(ic.url + "/empty", headers={"Host": "a.example.com"}) as r:
                assert r.status == 204 and await r.read() == b""
    finally:
        await ic.close()
        await runner.cleanup()


async def test_placeholder_and_static_routes_of_an_interceptor_route(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    async with upstreams("a") as (a,):
        put_service(em, "a")
        put_endpoints(em, "a", [])
        em.put("http.keda.sh/v1beta1", "interceptorroutes", {
            "apiVersion": "http.keda.sh/v1beta1", "kind": "InterceptorRoute",
            "metadata": {"name": "p", "namespace": "web"},
            "spec": {"target": {"service": "a", "port": 80}, "rules": [{"hosts": ["p.example.com"]}],
                     "scalingMetric": {"concurrency": {"targetValue": 10}},
                     "coldStart": {"placeholder": {"response": {"body": "warming up",
                                                                "headers": {"Retry-After": "5"}}}},
                     "staticRoutes": [
                         {"rules": [{"paths": [{"value": "/healthz"}]}], "response": {"body": "ok"},
                          "responseMode": "Always"},
                         {"rules": [{"paths": [{"value": "/maint"}]}],
                          "response": {"statusCode": 202, "body": "down for now"}}]}})
        ic = await start_interceptor(k8s_api.url)
        try:
            async with aiohttp.ClientSession() as s:
                status, body, headers = await get(s, ic.url + "/x", "p.example.com")
                assert (status, body, headers["Retry-After"]) == (503, "warming up", "5")  # at once, not held
                assert (await get(s, ic.url + "/maint/1", "p.example.com"))[:2] == (202, "down for now")
                assert (await get(s, ic.url + "/healthz", "p.example.com"))[:2] == (200, "ok")
                put_endpoints(em, "a", [a.port])
                await until(lambda: _status_of(s, ic.url + "/x", "p.example.com", 200))
                status, body, _ = await get(s, ic.url + "/maint/1", "p.example.com")
                assert status == 200 and '"pod": "a"' in body  # WhenUnavailable: the pod answers once ready
                assert (await get(s, ic.url + "/healthz", "p.example.com"))[:2] == (200, "ok")  # Always
            # the placeholder request was counted (it wakes the workload); static routes are not
            assert (await counts(ic.admin_port))["web/p"]["RequestCount"] >= 2
        finally:
            await ic.close()


async def _status_of(s: aiohttp.ClientSession, url: str, host: str, want: int) -> bool:
    return (await get(s, url, host))[0] == want
