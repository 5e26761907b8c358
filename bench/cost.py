"""`surge cost` over a month of a 1,000-node, 20,000-pod cluster history in a real Prometheus.

The history is synthesised as kube-state-metrics + cAdvisor would have recorded it (1,000 nodes
all month; 20,000 pods of 400 Deployments in 40 namespaces, each living 1–10 days), written as
OpenMetrics, backfilled with promtool, and served by Debian's Prometheus. `surge cost` runs as its
own process (its peak memory is its own) for 30 days and for 7 days, by namespace and by
workload; the time is split into Prometheus answering (evaluation + transfer), JSON decoding and
the allocation itself.

    .venv/bin/python bench/cost.py [--pods 20000] [--nodes 1000] [--days 30] [--scrape 3600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.promhistory import (  # noqa: E402
    OpenMetricsWriter,
    SynthNode,
    SynthPod,
    backfill,
    prometheus_server,
    write_cluster,
)

GIB = 1024 ** 3
TYPES = [("m5.xlarge", 4, 16, 0), ("m5.2xlarge", 8, 32, 0), ("c5.2xlarge", 8, 16, 0), ("r5.xlarge", 4, 32, 0),
         ("m6i.4xlarge", 16, 64, 0), ("g4dn.xlarge", 4, 16, 1)]


def synthesise(path: Path, nodes_n: int, pods_n: int, days: float, scrape_s: float, end: float, seed: int = 7) -> int:
    rng = random.Random(seed)
    start = end - days * 86400
    nodes = []
    for i in range(nodes_n):
        itype, cpu, mem, gpus = TYPES[-1] if i % 50 == 0 else rng.choice(TYPES[:-1])
        nodes.append(SynthNode(f"ip-10-{i // 250}-{i % 250}", itype, "spot" if rng.random() < 0.6 else "on-demand",
                               f"us-east-1{'abc'[i % 3]}", "gpu" if gpus else "general", cpu, mem * GIB, gpus,
                               start, end))
    pods = []
    for j in range(pods_n):
        life = rng.uniform(1, 10) * 86400
        begin = start + rng.uniform(0, max(0.0, days * 86400 - life))
        begin -= (begin - start) % scrape_s
        life -= life % scrape_s
        dep = j % 400
        cpu_req, mem_req = rng.choice((0.25, 0.5, 1.0, 2.0)), rng.choice((0.5, 1.0, 2.0, 4.0)) * GIB
        pods.append(SynthPod(f"ns-{dep % 40}", f"app-{dep}-{j}", rng.choice(nodes).name, "ReplicaSet",
                             f"app-{dep}-5d8f", cpu_req, mem_req, cpu_req * rng.uniform(0.2, 1.3),
                             mem_req * rng.uniform(0.2, 1.3), begin, min(end, begin + life), deployment=f"app-{dep}",
                             labels={"team": f"team-{dep % 12}"}))
    with path.open("w", buffering=1 << 20) as f:
        w = OpenMetricsWriter(f)
        write_cluster(w, nodes, pods, scrape_s)
        w.close()
    return w.samples


def measure(url: str, start: float, end: float, step_s: float, by: str) -> dict[str, float]:
    """Run in a child process: one `surge cost` run and where its time went."""
    from autoscaler.cost.prices import offline_price_book
    from autoscaler.cost.prom import Prometheus
    from autoscaler.cost.report import run_cost

    prom = Prometheus(url)
    t0 = time.perf_counter()
    run = run_cost(prom, start, end, step_s, by, lambda types, zones: offline_price_book())
    wall = time.perf_counter() - t0
    a = run.allocation
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "rss_mib": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime,
            "queries": prom.stats["queries"], "prometheus_wait_s": prom.stats["wait_s"],
            "decode_s": prom.stats["decode_s"], "mib_received": prom.stats["bytes"] / 2 ** 20,
            "chunks": run.meta["chunks"], "nodes": run.meta["nodes"], "pods": run.meta["pods"],
            "total": a.total, "reconcile_error": abs(a.allocated + a.idle - a.total), "groups": len(a.groups)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=20000)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--scrape", type=float, default=3600, help="seconds between synthesised samples")
    ap.add_argument("--data", type=Path, help="keep the backfilled TSDB here and reuse it on the next run "
                                              "(same --nodes/--pods/--days/--scrape)")
    ap.add_argument("--measure", nargs=5, metavar=("URL", "START", "END", "STEP", "BY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        url, start, end, step, by = args.measure
        print(json.dumps(measure(url, float(start), float(end), float(step), by)))
        return
    with tempfile.TemporaryDirectory(prefix="surge-bench-cost-") as tmp:
        run_bench(args, Path(tmp), args.data)


def run_bench(args: argparse.Namespace, tmp: Path, keep: Path | None) -> None:
    data = (keep or tmp) / "data"
    stamp = data / "surge-bench-end"
    reuse = stamp.exists()
    end = float(stamp.read_text()) if reuse else (time.time() // 3600) * 3600 - 3600
    print(f"# surge cost bench — {platform.python_version()}, {platform.machine()}, "
          f"{args.nodes} nodes, {args.pods} pods, {args.days:g} days sampled every {args.scrape:g} s")
    if not reuse:
        om = tmp / "history.om"
        t0 = time.perf_counter()
        samples = synthesise(om, args.nodes, args.pods, args.days, args.scrape, end)
        t_synth = time.perf_counter() - t0
        size = om.stat().st_size / 2 ** 20
        t0 = time.perf_counter()
        backfill(om, data, max_block=f"{int(args.days * 24 + 48)}h")
        t_backfill = time.perf_counter() - t0
        om.unlink()
        stamp.write_text(repr(end))
        print(f"synthesised {samples:,} samples ({size:,.0f} MiB OpenMetrics) in {t_synth:.1f} s; "
              f"promtool backfill {t_backfill:.1f} s")
    else:
        print(f"reusing the backfilled history in {data}")
    t0 = time.perf_counter()
    with prometheus_server(data) as (url, server):
        print(f"prometheus ready in {time.perf_counter() - t0:.1f} s")
        print("| window | by | wall s | surge CPU s | Prometheus CPU s | Prometheus wait s | JSON decode s "
              "| MiB received | queries | chunks | pods | surge peak RSS MiB | reconcile error $ | load avg |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for days, by in ((args.days, "namespace"), (args.days, "workload"), (min(7.0, args.days), "namespace")):
            start = end - days * 86400
            prom_cpu = cpu_seconds(server.proc.pid)
            done = subprocess.run([sys.executable, __file__, "--measure", url, str(start), str(end),
                                   str(args.scrape), by], capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
            m = json.loads(done.stdout)
            prom_cpu = cpu_seconds(server.proc.pid) - prom_cpu
            print(f"| {days:g} d | {by} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {prom_cpu:.1f} "
                  f"| {m['prometheus_wait_s']:.1f} | {m['decode_s']:.1f} | {m['mib_received']:.0f} "
                  f"| {m['queries']:.0f} | {m['chunks']:.0f} | {m['pods']:.0f} | {m['rss_mib']:.0f} "
                  f"| {m['reconcile_error']:.1e} | {os.getloadavg()[0]:.1f} |")
        print(f"prometheus peak RSS {vm_hwm_mib(server.proc.pid):.0f} MiB")
        print("(Prometheus wait and decode are summed over the worker threads, so they can exceed the wall "
              "time; CPU seconds are what the run costs on an idle machine, wall = CPU when cores are shared)")


if __name__ == "__main__":
    main()
