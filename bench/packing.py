"""Packing quality and speed: surge's packer against the LP lower bound and a Karpenter-style
first-fit baseline, side by side on the same problems. Prints a table, writes docs/benchmarks-packing.md.

Workloads (pods are planned from scratch, no existing nodes):
  (a) Karpenter's benchmark mix: CPU {100,250,500,1000,1500}m × memory {100..4096}Mi, one Deployment
      per size; a fifth of them spread over zones (maxSkew 1), a fifth one-pod-per-node; 1k/10k/100k pods;
      NodePool: categories c/m/r, generation > 2, amd64, on-demand.
  (b) GPU + CPU: inference pods (1 GPU), training pods (8 GPUs), CPU workers; a GPU NodePool
      (tainted) and a CPU NodePool.
  (c) spot + on-demand over every Linux type of the snapshot (≥ 800). No spot price history ships
      offline, so spot prices follow a stated model: on-demand × (0.30 … 0.70) per family, ±10 % per
      zone, from a fixed hash — the same for both packers.
  (d) real mixes: 10k pods over 150 distinct specs and 100k pods over 400 (CPU 50m–4, memory
      64Mi–8Gi drawn from a fixed seed; every 13th spec one-per-node, every 7th spread over zones),
      three NodePools (spot c/m/r, on-demand c/m/r, anything) with the spot model above.
  (e) a 45k-Pod YAML file (raw Pods, 120 shapes, as `kubectl get pods -o yaml` lists them) planned
      end to end by `surge plan` in a child process: wall time and peak RSS.
Goals (issue 17): (d) 10k ≤ 1 s, 100k ≤ 5 s; (e) ≤ 10 s and ≤ 1 GB; surge ≤ 1.03 × the LP bound.
"""

from __future__ import annotations

import hashlib
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

from provisioner.catalog import load_catalog  # noqa: E402
from provisioner.nodepool import NodePool  # noqa: E402
from provisioner.plan import make_plan  # noqa: E402
from provisioner.pods import PodGroup  # noqa: E402
from provisioner.requirements import Toleration  # noqa: E402
from provisioner.resources import Resources  # noqa: E402

CPU = [100, 250, 500, 1000, 1500]
MEM = [100, 256, 512, 1024, 4096, 2048]


def pool(name: str, reqs: list[dict], taints: list | None = None) -> NodePool:
    return NodePool.model_validate({"metadata": {"name": name}, "spec": {"template": {"spec": {
        "requirements": reqs, "taints": taints or []}}}})


GENERAL = pool("general", [
    {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]},
    {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]},
    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}])


def karpenter_mix(total: int) -> list[PodGroup]:
    sizes = [(c, m) for c in CPU for m in MEM]
    groups = []
    for i, (c, m) in enumerate(sizes):
        n = total // len(sizes) + (1 if i < total % len(sizes) else 0)
        groups.append(PodGroup(f"d{i}", n, Resources(c, m, 0, 1), one_per_node=i % 5 == 4,
                               zone_max_skew=1 if i % 5 == 3 else None))
    return groups


def gpu_mix() -> tuple[list[PodGroup], list[NodePool]]:
    tol = (Toleration("nvidia.com/gpu", "Exists"),)
    groups = [
        PodGroup("inference", 24, Resources(4000, 16 * 1024, 1, 1), tolerations=tol),
        PodGroup("training", 3, Resources(64_000, 400 * 1024, 8, 1), tolerations=tol, one_per_node=True),
        PodGroup("workers", 120, Resources(1000, 2048, 0, 1)),
        PodGroup("api", 30, Resources(500, 1024, 0, 1), zone_max_skew=1),
    ]
    gpu = pool("gpu", [{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]},
                       {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
               taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])
    return groups, [gpu, GENERAL]


def spot_model(catalog_od: list) -> dict[tuple[str, str], float]:
    prices = {}
    for t in catalog_od:
        fam = int(hashlib.sha256(t.family.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        for o in t.offerings:
            zone = int(hashlib.sha256(f"{t.name}/{o.zone}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            prices[(t.name, o.zone)] = round(o.price * (0.30 + 0.40 * fam) * (0.9 + 0.2 * zone), 6)
    return prices


def real_mix(total: int, specs: int, seed: int = 1) -> list[PodGroup]:
    rnd = random.Random(seed)
    shapes = [(rnd.choice([50, 100, 200, 250, 300, 500, 750, 1000, 1500, 2000, 3000, 4000]),
               rnd.choice([64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192])) for _ in range(specs)]
    counts = [0] * specs
    for _ in range(total):
        counts[rnd.randrange(specs)] += 1
    return [PodGroup(f"s{i}", k, Resources(c, m, 0, 1), one_per_node=i % 13 == 0,
                     zone_max_skew=1 if i % 7 == 0 else None)
            for i, ((c, m), k) in enumerate(zip(shapes, counts, strict=True)) if k]


def three_pools() -> list[NodePool]:
    cmr = {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]}
    return [pool("spot", [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}, cmr]),
            GENERAL,
            pool("any", [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}])]


def pod_file(path: Path, total: int = 45_000, shapes: int = 120) -> None:
    """Raw Pods as `kubectl get pods -o yaml` writes them (one List), `shapes` distinct specs."""
    rnd = random.Random(7)
    specs = [(rnd.choice(["100m", "250m", "500m", "1", "2"]), rnd.choice(["128Mi", "512Mi", "1Gi", "2Gi", "4Gi"]),
              f"app-{i}") for i in range(shapes)]
    lines = ["apiVersion: v1", "kind: List", "items:"]
    for i in range(total):
        cpu, mem, app = specs[i % shapes]
        lines += ["- apiVersion: v1", "  kind: Pod", f"  metadata: {{name: {app}-{i}, namespace: default, "
                  f"labels: {{app: {app}}}}}", "  spec:", "    containers:",
                  f"    - {{name: app, image: nginx, resources: {{requests: {{cpu: '{cpu}', memory: {mem}}}}}}}"]
    path.write_text("\n".join(lines) + "\n")


def end_to_end(total: int = 45_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "pods.yaml"
        pod_file(f, total)
        start = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        before, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        out = subprocess.run([sys.executable, "-m", "autoscaler.cli", "plan", str(f), "--format", "json"],
                             capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss = max(usage.ru_maxrss, before) / 1024
        cpu = usage.ru_utime + usage.ru_stime - cpu0
    assert out.returncode == 0, out.stderr[-2000:]
    return {"pods": total, "wall_s": wall, "cpu_s": cpu, "rss_mib": rss}


def run(label: str, groups: list[PodGroup], pools: list[NodePool], catalog: list, baseline: bool = True) -> dict:
    cpu = time.process_time()
    surge = make_plan(groups, pools, catalog)
    row = {"workload": label, "pods": sum(g.count for g in groups), "types": len(catalog),
           "surge_s": surge.solve_seconds, "surge_cpu": time.process_time() - cpu, "surge_cost": surge.cost_per_hour,
           "bound": surge.lower_bound_per_hour, "surge_nodes": len(surge.nodes), "pending": len(surge.unschedulable)}
    if baseline:
        cpu = time.process_time()
        base = make_plan(groups, pools, catalog, algorithm="karpenter")
        row |= {"base_s": base.solve_seconds, "base_cpu": time.process_time() - cpu, "base_cost": base.cost_per_hour,
                "base_nodes": len(base.nodes)}
    return row


def main() -> None:
    od = load_catalog()
    rows = []
    for n in (1_000, 10_000, 100_000):
        rows.append(run(f"(a) Karpenter mix {n:,}", karpenter_mix(n), [GENERAL], od))
        print(rows[-1], flush=True)
    groups, pools = gpu_mix()
    rows.append(run("(b) GPU + CPU", groups, pools, od))
    print(rows[-1], flush=True)
    spot = load_catalog(spot_prices=spot_model(od))
    every = pool("any", [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}])
    rows.append(run("(c) spot + on-demand, 10,000", karpenter_mix(10_000), [every], spot))
    print(rows[-1], flush=True)
    for total, specs in ((10_000, 150), (100_000, 400)):
        rows.append(run(f"(d) {total:,} pods × {specs} specs × 3 NodePools, spot", real_mix(total, specs),
                        three_pools(), spot))
        print(rows[-1], flush=True)
    e2e = end_to_end()
    print(e2e, flush=True)
    lines = ["| workload | pods | types | surge solve wall / CPU (s) | surge $/h | LP bound $/h | surge ÷ bound "
             "| baseline solve wall / CPU (s) | baseline $/h | surge ÷ baseline | nodes surge / baseline |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['pods']:,} | {r['types']} | {r['surge_s']:.2f} / {r['surge_cpu']:.2f} | "
                     f"{r['surge_cost']:.2f} | {r['bound']:.2f} | {r['surge_cost'] / r['bound']:.3f} | "
                     f"{r.get('base_s', 0):.2f} / {r.get('base_cpu', 0):.2f} | "
                     f"{r.get('base_cost', 0):.2f} | {r['surge_cost'] / r['base_cost']:.3f} | "
                     f"{r['surge_nodes']} / {r.get('base_nodes', 0)} |")
    table = "\n".join(lines)
    table += (f"\n\n(e) `surge plan` on a {e2e['pods']:,}-Pod YAML file (one `kind: List`, 120 shapes), end to end "
              f"in a child process: {e2e['wall_s']:.1f} s wall, {e2e['cpu_s']:.1f} s CPU, "
              f"peak RSS {e2e['rss_mib']:.0f} MiB.")
    print(table)
    (ROOT / "docs" / "benchmarks-packing.md").write_text(
        f"# Packing benchmark\n\nMeasured by `bench/packing.py` ({platform.machine()}, Python "
        f"{platform.python_version()}, one process). Solve time includes building the problem, the LP bound "
        "and (for surge) column generation. The baseline is the Karpenter-style first-fit packer in "
        "provisioner/baseline.py, given the same NodePools and catalog. The machine is shared (load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when measured): wall times include waiting for a "
        "core, CPU times (process time, all threads) are what the solve itself costs.\n\n"
        + table + "\n")


if __name__ == "__main__":
    main()
