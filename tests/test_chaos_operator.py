"""Chaos, in CI: two real `surge operator` processes, the API emulator and redis-server behind
fault-injecting proxies; links hang, redis resets, leaders are killed with SIGKILL and SIGTERM.

Checked over everything the emulator recorded: no scale write by anyone but the Lease's holder
at that instant (no split brain), no replica change of a ScaledObject without fallback while its
redis is failing, the fallback engaging exactly when failures exceed failureThreshold, recovery
after each fault, a prompt takeover after SIGTERM, bounded RSS.
"""

from __future__ import annotations

import asyncio
import itertools
import signal

import aiohttp

from tests.chaos.harness import LEASE_S, NS, Workload, cluster
from tests.servers import Server

PLAIN, FB = "plain", "fb"


async def scaler_errors(metrics_port: int) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("keda_scaler_errors_total{") and f'scaledObject="{PLAIN}"' in line)


def condition(c: object, name: str, kind: str) -> tuple[str, str]:
    so = c.emulator.get("keda.sh/v1alpha1", "scaledobjects", NS, name) or {}  # type: ignore[attr-defined]
    for cond in (so.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return cond["status"], cond.get("reason", "")
    return "", ""


def events(c: object, reason: str) -> list[dict[str, object]]:
    return [e for e in c.emulator.all("v1", "events") if e.get("reason") == reason]  # type: ignore[attr-defined]


async def test_operators_under_faults_and_kills(redis_plain: Server) -> None:
    async with cluster(redis_plain.port) as c:
        c.add(Workload(PLAIN), replicas=2)
        c.add(Workload(FB, fallback={"failureThreshold": 2, "replicas": 4}), replicas=1)
        await c.set_queue(PLAIN, 15)
        await c.set_queue(FB, 5)
        a = await c.start_operator("op-a")
        await c.wait_for("op-a to lead", lambda: c.leader() == "op-a", 30)
        standbys = [await c.start_operator("op-b"), await c.start_operator("op-c")]
        await c.wait_for("plain at 3 replicas", lambda: c.replicas(PLAIN) == 3)

        # 1. redis resets every connection: the object without fallback holds, the other falls back
        c.redis_fault("reset")
        await c.wait_for("fb to fall back to 4", lambda: c.replicas(FB) == 4)
        await c.wait_for("plain Ready=False", lambda: condition(c, PLAIN, "Ready") == ("False", "TriggerError"))
        assert c.replicas(PLAIN) == 3
        assert await scaler_errors(a.metrics_port) >= 1
        assert events(c, "KEDAScalerFailed") and events(c, "ScaledObjectFallbackActivated")
        # ... then hangs: reads time out, same outcome, although the queue moved on meanwhile
        c.redis_fault("hang")
        await c.set_queue(PLAIN, 40)
        await asyncio.sleep(3)
        assert c.replicas(PLAIN) == 3
        c.redis_fault("pass")
        await c.wait_for("plain to recover to 8", lambda: c.replicas(PLAIN) == 8)
        await c.wait_for("fb to leave fallback", lambda: condition(c, FB, "Fallback")[0] == "False")
        await c.wait_for("plain Ready again", lambda: condition(c, PLAIN, "Ready")[0] == "True")
        for op in standbys:
            await c.wait_for_ready(op)

        # 2. the leader's link to the API server hangs: it must stop writing before another takes over
        c.operators["op-a"].proxy.set("hang")
        await c.wait_for("a standby to take over", lambda: c.leader() in ("op-b", "op-c"), 4 * LEASE_S + 10)
        await c.set_queue(PLAIN, 50)
        await c.wait_for("plain at 10 by the new leader", lambda: c.replicas(PLAIN) == 10)
        c.operators["op-a"].proxy.set("pass")  # op-a comes back as a standby

        # 3. SIGKILL the leader: a standby takes over once the lease runs out
        killed = c.leader()
        await c.stop_operator(killed, signal.SIGKILL)
        await c.wait_for("a takeover after SIGKILL", lambda: c.leader() not in ("", killed), 4 * LEASE_S + 10)
        await c.set_queue(PLAIN, 20)
        await c.wait_for("plain at 4", lambda: c.replicas(PLAIN) == 4)

        # 4. SIGTERM the leader: it releases the Lease, the last standby takes over at its next retry
        stopped = c.leader()
        await c.stop_operator(stopped, signal.SIGTERM)
        [last] = c.operators
        took = await c.wait_for("a takeover after SIGTERM", lambda: c.leader() == last, LEASE_S + 10)
        assert took < LEASE_S, f"takeover after SIGTERM took {took:.1f} s (lease {LEASE_S:g} s): not released?"
        await c.set_queue(PLAIN, 30)
        await c.wait_for("plain at 6", lambda: c.replicas(PLAIN) == 6)

        c.sample()
        violations = c.violations()
        assert not violations, "\n".join(violations)
        writers = [w.user_agent for w in c.emulator.scale_writes]
        terms = 1 + sum(1 for x, y in itertools.pairwise(writers) if x != y)
        assert terms >= 4, writers  # op-a, its successor, the one after the SIGKILL, the one after the SIGTERM
