"""The interceptor under load, with Debian's `wrk` on localhost, side by side with the upstream
called directly. Four measurements:

1. added latency at ~1,000 req/s (wrk with a per-connection delay; p50/p99 proxied minus direct);
2. throughput of one interceptor process pinned to one core (small responses, keep-alive);
3. cold start: a request at zero replicas → its response, minus the simulated pod start, through
   the whole path (interceptor holds and pushes, operator scales 0→1, "kubelet" starts the pod,
   the EndpointSlice reaches the interceptor, the request is forwarded);
4. 10,000 requests held at zero on one interceptor: its memory, and the time to answer them all
   once the pod is ready.

Every server is a real process (API emulator, upstream aiohttp pod, `surge interceptor`); the
operator runs in this process. Bounded in time (about two minutes). Prints a table and writes
docs/benchmarks-http.md.

    .venv/bin/python bench/http.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# run as a script, this file's directory comes first on the path and its name hides the stdlib's `http`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from kubernetes_asyncio import client  # noqa: E402

from autoscaler.interceptor.operator import make_http_controller  # noqa: E402
from autoscaler.operator.controller import ScaledObjectController  # noqa: E402
from autoscaler.operator.kube import Kube  # noqa: E402
from scalers.http_addon import use_source  # noqa: E402
from tests.http_harness import wait_ready  # noqa: E402
from tests.servers import free_port, wait_for_port  # noqa: E402

PY = sys.executable
HOST = "app.example.com"
CORES = os.cpu_count() or 1


def pinned(core: int | None, *argv: str) -> list[str]:
    """argv run on one core (None: wherever the kernel likes)."""
    if core is None or not shutil.which("taskset"):
        return list(argv)
    return ["taskset", "-c", str(core % CORES), *argv]


def upstream_argv(port: int) -> list[str]:
    return pinned(0, PY, __file__, "upstream", str(port))


# --- the upstream pod, as its own process ---------------------------------------------------------
def serve_upstream(port: int) -> None:
    import uvloop

    async def small(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", small)
    uvloop.install()
    # a listen backlog like a Go server's (somaxconn), not aiohttp's 128
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


@contextlib.contextmanager
def process(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env={**os.environ, "SURGE_LOG_LEVEL": "warning", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- the API emulator, as its own process, written through its REST API ----------------------------
class Api:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession()

    async def put(self, path: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        async with self.session.put(f"{self.url}{path}/{name}", json=obj) as r:
            if r.status == 404:
                async with self.session.post(f"{self.url}{path}", json=obj) as c:
                    c.raise_for_status()
            else:
                r.raise_for_status()

    async def get(self, path: str) -> dict[str, Any]:
        async with self.session.get(f"{self.url}{path}") as r:
            data: dict[str, Any] = await r.json()
            return data

    async def close(self) -> None:
        await self.session.close()


def endpoint_slice(service: str, port: int | None, ns: str = "web", name: str | None = None,
                   port_name: str = "http") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name or f"{service}-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}] if port else [],
            "ports": [{"name": port_name, "port": port or 1}]}


async def declare(api: Api, upstream_port: int | None, admin_port: int | None = None) -> None:
    await api.put("/api/v1/namespaces/web/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "web"},
        "spec": {"ports": [{"name": "http", "port": 80}]}})
    await api.put("/apis/discovery.k8s.io/v1/namespaces/web/endpointslices", endpoint_slice("app", upstream_port))
    await api.put("/apis/apps/v1/namespaces/web/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": "web"},
        "spec": {"replicas": 1 if upstream_port else 0, "selector": {"matchLabels": {"app": "app"}},
                 "template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}}})
    await api.put("/apis/http.keda.sh/v1alpha1/namespaces/web/httpscaledobjects", {
        "apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
        "metadata": {"name": "app", "namespace": "web"},
        "spec": {"hosts": [HOST], "scaleTargetRef": {"name": "app", "service": "app", "port": 80},
                 "scaledownPeriod": 300}})
    if admin_port is not None:
        await api.put("/apis/discovery.k8s.io/v1/namespaces/surge/endpointslices", endpoint_slice(
            "surge-interceptor-admin", admin_port, ns="surge", name="admin-1", port_name="admin"))


@contextlib.asynccontextmanager
async def cluster(upstream_running: bool, interceptor_core: int | None = 1,
                  extra_env: dict[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
    api_port, up_port, proxy_port, admin_port = free_port(), free_port(), free_port(), free_port()
    with process([PY, "-m", "tests.k8s.serve", "--port", str(api_port)], api_port):
        api = Api(f"http://127.0.0.1:{api_port}")
        await declare(api, up_port if upstream_running else None, admin_port)
        up_cm = process(upstream_argv(up_port), up_port) if upstream_running \
            else contextlib.nullcontext()
        argv = pinned(interceptor_core, PY, "-m", "autoscaler.cli", "interceptor", "--server", api.url,
                      "--proxy-port", str(proxy_port), "--admin-port", str(admin_port), "--shutdown-delay", "0")
        with up_cm, process(argv, proxy_port, extra_env) as ic:
            await wait_ready(admin_port)
            try:
                yield {"api": api, "upstream": up_port, "proxy": proxy_port, "admin": admin_port, "pid": ic.pid}
            finally:
                await api.close()


# --- wrk ---------------------------------------------------------------------------------------------
def wrk(url: str, connections: int, seconds: int, delay_ms: int | None = None, core: int = 0) -> dict[str, float]:
    script = f'wrk.headers["Host"] = "{HOST}"\n'
    if delay_ms is not None:
        script += f"function delay() return {delay_ms} end\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(pinned(core, "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                                "-s", f.name, url), capture_output=True, text=True, timeout=seconds + 30).stdout
    os.unlink(f.name)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        result[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


async def latency_and_throughput() -> list[list[str]]:
    rows = []
    async with cluster(True) as c:
        direct, proxied = f"http://127.0.0.1:{c['upstream']}/small", f"http://127.0.0.1:{c['proxy']}/small"
        await asyncio.to_thread(wrk, proxied, 10, 2, 10)  # warm both
        d = await asyncio.to_thread(wrk, direct, 10, 10, 10)
        p = await asyncio.to_thread(wrk, proxied, 10, 10, 10)
        rows.append(["latency at ~1,000 req/s: direct", f"{d['rps']:.0f}", f"{d['p50']:.2f}", f"{d['p99']:.2f}", ""])
        rows.append(["latency at ~1,000 req/s: via interceptor", f"{p['rps']:.0f}", f"{p['p50']:.2f}",
                     f"{p['p99']:.2f}", f"added p50 {p['p50'] - d['p50']:.2f} ms, p99 {p['p99'] - d['p99']:.2f} ms"])
        d = await asyncio.to_thread(wrk, direct, 64, 10)
        cpu0 = cpu_seconds(c["pid"])
        p = await asyncio.to_thread(wrk, proxied, 64, 10)
        user, system = (b - a for a, b in zip(cpu0, cpu_seconds(c["pid"]), strict=True))
        served = p["rps"] * 10
        rows.append(["max throughput: direct (upstream on core 0)", f"{d['rps']:.0f}", f"{d['p50']:.2f}",
                     f"{d['p99']:.2f}", ""])
        rows.append(["max throughput: via interceptor (pinned to core 1)", f"{p['rps']:.0f}", f"{p['p50']:.2f}",
                     f"{p['p99']:.2f}", f"{p['rps'] / d['rps']:.2f}× direct; errors {p['errors']:.0f}; interceptor CPU "
                     f"{1e6 * user / served:.0f} µs user + {1e6 * system / served:.0f} µs system per request = "
                     f"{served / (user + system):,.0f} req/s per core of its own CPU time"])
    return rows


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# --- cold start ---------------------------------------------------------------------------------------
POD_START_S = 0.5


async def cold_start(trials: int = 5) -> list[list[str]]:
    """surge's part of a cold start: request sent → replicas written (push, decision, scale), plus
    endpoint ready → response (watch, forward). The pod's own start in between is not surge's."""
    to_scale, to_response, totals = [], [], []
    async with cluster(False) as c:
        api: Api = c["api"]
        config = client.Configuration(host=api.url)
        async with client.ApiClient(config) as k8s:
            controller = ScaledObjectController(Kube(k8s))
            http = make_http_controller(k8s, {"SURGE_INTERCEPTOR_ADMIN_SERVICE": "surge/surge-interceptor-admin"})
            tasks = [asyncio.create_task(controller.run()), asyncio.create_task(http.run())]
            try:
                while not http.hub.signals.reporters:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)
                for _ in range(trials):
                    total, scaled, answered = await one_cold_start(api, c["proxy"])
                    totals.append(total)
                    to_scale.append(scaled)
                    to_response.append(answered)
                    await declare(api, None)  # back to zero for the next trial (scale-down would wait 300 s)
                    await asyncio.sleep(1.0)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await controller.stop()
                await http.hub.close()
                use_source(None)
    overhead = [a + b for a, b in zip(to_scale, to_response, strict=True)]
    ms = [statistics.median(x) * 1000 for x in (to_scale, to_response, overhead)]
    return [["cold start: request at zero → response", f"{trials} trials", f"{statistics.median(totals) * 1000:.0f}",
             f"{max(totals) * 1000:.0f}",
             f"surge overhead median {ms[2]:.0f} ms (max {max(overhead) * 1000:.0f}): request → replicas=1 written "
             f"{ms[0]:.0f} ms, endpoint ready → response {ms[1]:.0f} ms; the rest is the pod's start "
             f"({POD_START_S * 1000:.0f} ms sleep + process start)"]]


async def one_cold_start(api: Api, proxy_port: int) -> tuple[float, float, float]:
    up_port = free_port()
    marks: dict[str, float] = {}

    async def kubelet() -> None:
        while (await api.get("/apis/apps/v1/namespaces/web/deployments/app"))["spec"]["replicas"] == 0:
            await asyncio.sleep(0.002)
        marks["scaled"] = time.perf_counter()
        await asyncio.sleep(POD_START_S)  # image pull, process start, readiness probe: the pod's own time
        proc = subprocess.Popen(upstream_argv(up_port))
        await asyncio.to_thread(wait_for_port, up_port, 30, proc)
        holder.append(proc)
        marks["ready"] = time.perf_counter()
        await api.put("/apis/discovery.k8s.io/v1/namespaces/web/endpointslices", endpoint_slice("app", up_port))

    holder: list[subprocess.Popen[bytes]] = []
    pod = asyncio.create_task(kubelet())
    async with aiohttp.ClientSession() as s:
        t0 = time.perf_counter()
        async with s.get(f"http://127.0.0.1:{proxy_port}/cold", headers={"Host": HOST}) as r:
            await r.read()
            assert r.status == 200, r.status
        t1 = time.perf_counter()
    await pod
    for p in holder:
        p.terminate()
        p.wait(10)
    return t1 - t0, marks["scaled"] - t0, t1 - marks["ready"]


# --- 10,000 held requests -----------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def held(n: int = 10_000) -> list[list[str]]:
    async with cluster(False, extra_env={"SURGE_HTTP_MAX_CONNS_PER_HOST": "1000"}) as c:
        api: Api = c["api"]
        before = rss_mib(c["pid"])
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
            async def one() -> int:
                async with s.get(f"http://127.0.0.1:{c['proxy']}/held", headers={"Host": HOST}) as r:
                    await r.read()
                    return r.status

            tasks = [asyncio.create_task(one()) for _ in range(n)]
            async with aiohttp.ClientSession() as admin:
                t0 = time.perf_counter()
                while True:
                    async with admin.get(f"http://127.0.0.1:{c['admin']}/queue") as r:
                        if (await r.json()).get("web/app", {}).get("Concurrency", 0) >= n:
                            break
                    if time.perf_counter() - t0 > 120:
                        raise TimeoutError("requests were not all held")
                    await asyncio.sleep(0.2)
            held_s = time.perf_counter() - t0
            during = rss_mib(c["pid"])
            up_port = free_port()
            with process(upstream_argv(up_port), up_port):
                t1 = time.perf_counter()
                await api.put("/apis/discovery.k8s.io/v1/namespaces/web/endpointslices", endpoint_slice("app", up_port))
                statuses = await asyncio.gather(*tasks)
                drain = time.perf_counter() - t1
    ok = sum(1 for s in statuses if s == 200)
    per = (during - before) * 1024 / n
    return [[f"{n:,} requests held at zero", f"{ok:,} answered 200", f"{before:.0f} → {during:.0f} MiB",
             f"{drain:.2f} s", f"{per:.1f} KiB per held request; all held after {held_s:.1f} s; drained at "
                                f"{n / drain:,.0f} req/s once ready"]]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


async def main() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load_before = os.getloadavg()[0]
    perf = await latency_and_throughput()
    cold = await cold_start()
    many = await held()
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    machine = (f"{platform.machine()}, Python {platform.python_version()}, {CORES} cores shared with other work "
               f"({load}), "
               f"wrk {subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.split()[1]}")
    text = "\n\n".join([
        "# HTTP interceptor benchmarks (`bench/http.py`)",
        f"Measured on {machine}. Everything on localhost: API emulator, upstream aiohttp pod (uvloop), "
        "`surge interceptor` (uvloop), wrk with one thread; the interceptor is pinned to core 1, the upstream "
        "and wrk share core 0. Latency rows use wrk's per-connection delay (10 connections × 10 ms) for about "
        "1,000 req/s; wrk's percentiles are per request as sent.",
        table(["case", "req/s", "p50 ms", "p99 ms", "notes"], perf),
        table(["case", "n", "median ms", "max ms", "notes"], cold),
        table(["case", "answered", "interceptor RSS", "drain time", "notes"], many),
    ]) + "\n"
    print(text)
    (ROOT / "docs" / "benchmarks-http.md").write_text(text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "upstream":
        serve_upstream(int(sys.argv[2]))
    else:
        asyncio.run(main())
