"""A long randomized chaos run: `surge operator` processes, the API emulator and redis-server
behind fault-injecting proxies, faults and kills drawn at random, invariants checked at the end.

Every step (0.5–2.5 s) draws one action: a redis fault (reset, hang, garbage, delay) or its end,
a fault on one operator's link to the API server (hang, delay beyond the request timeout, reset,
500s, garbage) or its end, SIGKILL or SIGTERM of the leader or a standby (a replacement starts
so 2–3 replicas run), or new queue lengths. At the end every fault is lifted and the run waits
for recovery: every target at the replicas its queue asks for. Then the invariants of
tests/chaos/harness.py: no scale write by anyone but the Lease holder at that instant, no scale
of an object without fallback during a redis fault, fallback exactly past failureThreshold,
peak RSS per operator.

    python bench/chaos.py [seconds] [seed]    (default 240 s, seed 1; writes docs/benchmarks-chaos.md)
"""

from __future__ import annotations

import asyncio
import math
import platform
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos.harness import FAST_HPA, Workload, cluster  # noqa: E402
from tests.fixtures.redis import redis_argv  # noqa: E402
from tests.servers import free_port, run_server  # noqa: E402

WORKLOADS = [Workload("w0"), Workload("w1"), Workload("w2"),
             Workload("f0", {"failureThreshold": 2, "replicas": 6}),
             Workload("f1", {"failureThreshold": 4, "replicas": 3, "behavior": "currentReplicasIfHigher"})]
REDIS_FAULTS = [("reset", {}), ("hang", {}), ("garbage", {}), ("delay", {"seconds": 0.3})]
API_FAULTS = [("hang", {}), ("delay", {"seconds": 3.0}), ("reset", {}), ("http500", {}), ("garbage", {})]


async def run(seconds: float, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    actions: Counter[str] = Counter()
    redis_port = free_port()
    with run_server(redis_argv(redis_port), redis_port):
        async with cluster(redis_port) as c:
            queues = {w.name: rng.randint(0, 60) for w in WORKLOADS}
            for w in WORKLOADS:
                c.add(w, replicas=1)
                await c.set_queue(w.name, queues[w.name])
            serial = 0

            async def spawn() -> None:
                nonlocal serial
                serial += 1
                await c.start_operator(f"op-{serial}")

            for _ in range(2):
                await spawn()
            await c.wait_for("a leader", lambda: bool(c.leader()), 60)
            api_faulty: set[str] = set()
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                c.sample()
                roll = rng.random()
                if roll < 0.25:
                    if c.redis_proxy.mode == "pass":
                        mode, params = rng.choice(REDIS_FAULTS)
                        c.redis_fault(mode, **params)
                        actions[f"redis {mode}"] += 1
                    else:
                        c.redis_fault("pass")
                elif roll < 0.5 and c.operators:
                    who = rng.choice(sorted(c.operators))
                    op = c.operators[who]
                    if op.proxy.mode == "pass":
                        mode, params = rng.choice(API_FAULTS)
                        op.proxy.set(mode, **params)
                        api_faulty.add(who)
                        actions[f"API link {mode}" + (" (leader)" if c.leader() == who else "")] += 1
                    else:
                        op.proxy.set("pass")
                        api_faulty.discard(who)
                elif roll < 0.65 and c.operators:
                    leader = c.leader()
                    who = leader if leader in c.operators and rng.random() < 0.7 else rng.choice(sorted(c.operators))
                    sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                    await c.stop_operator(who, sig)
                    api_faulty.discard(who)
                    actions[f"{sig.name} {'leader' if who == leader else 'standby'}"] += 1
                    if len(c.operators) < 2 or rng.random() < 0.5:
                        await spawn()
                else:
                    for w in rng.sample(WORKLOADS, 2):
                        queues[w.name] = rng.randint(0, 100)
                        await c.set_queue(w.name, queues[w.name])
                    actions["queue change"] += 1
                if len(c.operators) < 2:
                    await spawn()
            # lift every fault and wait for the system to catch up
            c.redis_fault("pass")
            for op in c.operators.values():
                op.proxy.set("pass")
            healed = time.monotonic()
            want = {w.name: min(40, math.ceil(queues[w.name] / 5)) for w in WORKLOADS if w.fallback is None}
            recovered = True
            try:
                await c.wait_for("recovery", lambda: all(c.replicas(n) == r for n, r in want.items()), 90)
            except AssertionError:
                recovered = False
            recovery_s = time.monotonic() - healed
            c.sample()
            violations = c.violations()
            if not recovered:
                violations.append(f"no recovery within 90 s: want {want}, have "
                                  f"{ {n: c.replicas(n) for n in want} }")
            proxies = [c.redis_proxy, *(op.proxy for op in [*c.operators.values(), *c.retired])]
            injected = Counter[str]()
            for p in proxies:
                injected.update(p.stats.faults)
            return {
                "seconds": seconds, "seed": seed, "actions": actions, "injected": injected,
                "operators": len(c.operators) + len(c.retired),
                "terms": len({w.holders.get("surge/surge-operator") for w in c.emulator.scale_writes}),
                "scale_writes": len(c.emulator.scale_writes),
                "status_versions": sum(1 for e in c.emulator.store.events if e[1][1] == "scaledobjects"),
                "redis_fault_windows": len(c.redis_faults),
                "fallback_engaged": sum(1 for e in c.emulator.all("v1", "events")
                                        if e.get("reason") == "ScaledObjectFallbackActivated"),
                "peak_rss_mb": max(op.peak_rss_mb for op in [*c.operators.values(), *c.retired]),
                "recovery_s": recovery_s, "violations": violations,
            }


def report(r: dict[str, object]) -> str:
    actions: Counter[str] = r["actions"]  # type: ignore[assignment]
    injected: Counter[str] = r["injected"]  # type: ignore[assignment]
    violations: list[str] = r["violations"]  # type: ignore[assignment]
    lines = [
        "# Chaos run (`bench/chaos.py`)", "",
        f"`python bench/chaos.py {r['seconds']:g} {r['seed']}` on {platform.machine()}, Python "
        f"{platform.python_version()}: {len(WORKLOADS)} ScaledObjects on redis lists (two with fallback), "
        f"{r['operators']} `surge operator` processes over the run (lease 3 s, renew deadline 2 s, retry 0.25 s), "
        f"HPA behavior {FAST_HPA['behavior']['scaleUp']['policies']} up / no stabilization.", "",
        "| actions drawn | count |", "|---|---:|",
        *(f"| {k} | {v} |" for k, v in sorted(actions.items())), "",
        "| faults injected by the proxies (chunks/connections hit) | count |", "|---|---:|",
        *(f"| {k} | {v} |" for k, v in sorted(injected.items())), "",
        "| invariant | checked over | violations |", "|---|---|---:|",
        f"| scale writes only by the Lease holder of the moment | {r['scale_writes']} writes by "
        f"{r['terms']} leaders | {sum(v.startswith('split brain') for v in violations)} |",
        f"| no scale without fallback during a redis fault | {r['redis_fault_windows']} fault windows | "
        f"{sum('during a redis fault' in v for v in violations)} |",
        f"| fallback exactly past failureThreshold | {r['status_versions']} status versions, "
        f"{r['fallback_engaged']} engagements | "
        f"{sum(v.startswith('fallback:') for v in violations)} |",
        f"| recovery after the faults end | every target, {r['recovery_s']:.1f} s | "
        f"{sum(v.startswith('no recovery') for v in violations)} |",
        f"| peak RSS per operator ≤ 400 MB | peak {r['peak_rss_mb']:.0f} MB | "
        f"{sum('RSS' in v for v in violations)} |", "",
        f"Violations: **{len(violations)}** (goal 0)." + ("" if not violations else "\n\n" + "\n".join(
            f"- {v}" for v in violations[:20])), "",
    ]
    return "\n".join(lines)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 240.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    result = asyncio.run(run(seconds, seed))
    text = report(result)
    print(text)
    (ROOT / "docs" / "benchmarks-chaos.md").write_text(text)


if __name__ == "__main__":
    main()
