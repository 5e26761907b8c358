"""A small cluster for chaos runs, and the invariants checked over what it recorded.

The API emulator runs in this process (it records every write to a scale subresource with the
writer's identity and the Lease holder at that instant); redis-server sits behind a fault proxy;
each `surge operator` is a real child process with its own fault proxy in front of the API, so
one replica's link can hang while the other's works. Used by tests/test_chaos_operator.py (a
short fixed script, in CI) and bench/chaos.py (a long randomized run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.chaos.proxy import FaultProxy
from tests.k8s.emulator import Emulator
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
NS, LEASE = "chaos", "surge/surge-operator"
POLL_S = 1
# fast leader election, so a run sees many terms: lease 3 s, renew deadline 2 s, retry 0.25 s
LEASE_S, RENEW_S, RETRY_S = 3.0, 2.0, 0.25
FAST_HPA = {"behavior": {  # no stabilization, any step per second: replicas follow the queues at once
    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}]},
    "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 100,
                                                                 "periodSeconds": 1}]}}}


@dataclass
class Operator:
    identity: str
    proc: subprocess.Popen[bytes]
    proxy: FaultProxy
    metrics_port: int
    log: Path
    peak_rss_mb: float = 0.0

    def sample_rss(self) -> float:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
        return self.peak_rss_mb

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Workload:
    """One Deployment scaled by one ScaledObject on one Redis list (5 items per replica)."""

    name: str
    fallback: dict[str, Any] | None = None


@dataclass
class Cluster:
    workdir: Path
    emulator: Emulator
    api_port: int
    redis_port: int
    redis_proxy: FaultProxy
    runner: web.AppRunner
    operators: dict[str, Operator] = field(default_factory=dict)
    retired: list[Operator] = field(default_factory=list)
    redis_faults: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, mode)
    _fault_start: tuple[float, str] | None = None
    workloads: list[Workload] = field(default_factory=list)

    # --- objects ------------------------------------------------------------------------------------
    def add(self, w: Workload, replicas: int) -> None:
        self.workloads.append(w)
        self.emulator.put("apps/v1", "deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": w.name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": w.name}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}},
            "status": {"replicas": replicas}})
        spec: dict[str, Any] = {
            "scaleTargetRef": {"name": w.name}, "pollingInterval": POLL_S, "cooldownPeriod": 1,
            "minReplicaCount": 0, "maxReplicaCount": 40,
            "advanced": {"horizontalPodAutoscalerConfig": FAST_HPA},
            "triggers": [{"type": "redis", "name": "q", "metadata": {
                "address": f"127.0.0.1:{self.redis_proxy.port}", "listName": f"q-{w.name}", "listLength": "5"}}]}
        if w.fallback is not None:
            spec["fallback"] = w.fallback
        self.emulator.put("keda.sh/v1alpha1", "scaledobjects", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": w.name, "namespace": NS},
            "spec": spec})

    def replicas(self, name: str) -> int:
        dep = self.emulator.get("apps/v1", "deployments", NS, name) or {}
        return int((dep.get("spec") or {}).get("replicas") or 0)

    def leader(self) -> str:
        lease = self.emulator.get("coordination.k8s.io/v1", "leases", *LEASE.split("/")) or {}
        return (lease.get("spec") or {}).get("holderIdentity") or ""

    async def set_queue(self, name: str, length: int) -> None:
        """Set a list's length directly on redis (not through the proxy)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        try:
            cmds = [["DEL", f"q-{name}"]] + ([["RPUSH", f"q-{name}", *(["x"] * length)]] if length else [])
            for cmd in cmds:
                writer.write(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in cmd))
                await writer.drain()
                await reader.readline()
        finally:
            writer.close()

    # --- faults ---------------------------------------------------------------------------------
    def redis_fault(self, mode: str, **params: Any) -> None:
        now = time.monotonic()
        if self._fault_start is not None:
            self.redis_faults.append((self._fault_start[0], now, self._fault_start[1]))
            self._fault_start = None
        if mode not in ("pass", "delay"):  # a delay below the read timeout fails no read
            self._fault_start = (now, mode)
        self.redis_proxy.set(mode, **params)

    # --- operators -------------------------------------------------------------------------------
    async def start_operator(self, identity: str, controllers: str = "autoscaler",
                             env: dict[str, str] | None = None) -> Operator:
        proxy = await FaultProxy(self.api_port).start()
        port = free_port()
        log = self.workdir / f"{identity}.log"
        argv = [sys.executable, "-m", "autoscaler.cli", "operator", "--server", f"http://127.0.0.1:{proxy.port}",
                "--identity", identity, "--port", str(port), "--lease-namespace", LEASE.split("/")[0],
                "--leader-elect-lease-duration", str(LEASE_S), "--leader-elect-renew-deadline", str(RENEW_S),
                "--leader-elect-retry-period", str(RETRY_S), "--controllers", controllers]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "SURGE_LOG_LEVEL": "info", **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        op = Operator(identity, proc, proxy, port, log)
        self.operators[identity] = op
        return op

    async def stop_operator(self, identity: str, sig: int = signal.SIGKILL) -> float:
        """Signal it and wait for it to exit; returns how long it took."""
        op = self.operators.pop(identity)
        op.sample_rss()
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            op.proc.send_signal(sig)
        while op.proc.poll() is None and time.monotonic() - started < 15:
            await asyncio.sleep(0.05)
        if op.proc.poll() is None:
            op.proc.kill()
            op.proc.wait()
        await op.proxy.stop()
        self.retired.append(op)
        return time.monotonic() - started

    def sample(self) -> None:
        for op in self.operators.values():
            op.sample_rss()

    async def wait_for(self, what: str, test: Any, timeout_s: float = 30.0) -> float:
        """Wait until `test()` holds; returns the seconds it took. Samples RSS meanwhile."""
        started = time.monotonic()
        while not test():
            if time.monotonic() - started > timeout_s:
                logs = "\n".join(f"--- {op.identity}\n" + op.log.read_text(errors="replace")[-3000:]
                                 for op in [*self.operators.values(), *self.retired])
                raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}\n{logs}")
            self.sample()
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def wait_for_ready(self, op: Operator, timeout_s: float = 30.0) -> None:
        """Until its /readyz answers (it is then electing), plus one retry period."""
        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with aiohttp.ClientSession() as http, \
                        http.get(f"http://127.0.0.1:{op.metrics_port}/readyz") as resp:
                    return resp.status == 200
            return False

        started = time.monotonic()
        while not await ready():
            if time.monotonic() - started > timeout_s or not op.alive:
                raise AssertionError(f"{op.identity} not ready: {op.log.read_text(errors='replace')[-3000:]}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(2 * RETRY_S)

    # --- invariants ------------------------------------------------------------------------------
    def violations(self, max_rss_mb: float = 400.0) -> list[str]:
        out = []
        for w in self.emulator.scale_writes:
            writer = w.user_agent.removeprefix("surge-operator/")
            holder = w.holders.get(LEASE, "")
            if writer != holder:  # the Lease names one holder per term: any other writer is a second leader
                out.append(f"split brain: {writer} wrote {w.target}={w.replicas} while {holder or 'nobody'} "
                           f"held the lease")
        plain = {f"{NS}/{w.name}" for w in self.workloads if w.fallback is None}
        grace = 2.0  # a write decided on a read that succeeded just before the fault
        for start, end, mode in self.redis_faults:
            for w in self.emulator.scale_writes:
                if w.target in plain and start + grace < w.at <= end:
                    out.append(f"{w.target} scaled to {w.replicas} during a redis fault ({mode}) without fallback")
        for w in self.workloads:
            if w.fallback is not None:
                out += self.fallback_violations(w)
        for op in [*self.operators.values(), *self.retired]:
            if op.peak_rss_mb > max_rss_mb:
                out.append(f"{op.identity}: peak RSS {op.peak_rss_mb:.0f} MB > {max_rss_mb:g} MB")
        return out

    def fallback_violations(self, w: Workload) -> list[str]:
        """The fallback engages on the first poll with more than failureThreshold failures in a row
        (the status written by each poll shows the count), never earlier, never later."""
        assert w.fallback is not None
        threshold = int(w.fallback["failureThreshold"])
        out = []
        for _, key, _, obj in self.emulator.store.events:
            if key != ("keda.sh/v1alpha1", "scaledobjects") or obj["metadata"]["name"] != w.name:
                continue
            status = obj.get("status") or {}
            fallback = [c for c in status.get("conditions") or [] if c.get("type") == "Fallback"]
            health = next(iter((status.get("health") or {}).values()), {})  # the one trigger's
            failures = int(health.get("numberOfFailures", 0))
            if fallback and fallback[0]["status"] == "True" and failures <= threshold:
                out.append(f"fallback: {w.name} engaged after {failures} failures (threshold {threshold})")
            if fallback and fallback[0]["status"] == "False" and failures > threshold:
                out.append(f"fallback: {w.name} not engaged after {failures} failures (threshold {threshold})")
        return out


@contextlib.asynccontextmanager
async def cluster(redis_port: int, emulator: Emulator | None = None) -> Any:
    """The emulator (this process), a proxy in front of `redis_port`; operators are added by the caller."""
    workdir = Path(tempfile.mkdtemp(prefix="surge-chaos-"))
    emulator = emulator or Emulator()
    runner = web.AppRunner(emulator.app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    api_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", api_port).start()
    redis_proxy = await FaultProxy(redis_port).start()
    c = Cluster(workdir, emulator, api_port, redis_port, redis_proxy, runner)
    try:
        yield c
    finally:
        for identity in list(c.operators):
            await c.stop_operator(identity, signal.SIGKILL)
        await redis_proxy.stop()
        await runner.cleanup()
