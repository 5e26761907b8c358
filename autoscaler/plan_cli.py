"""`surge plan`: read Pod/Deployment manifests and NodePools, print the node plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _docs(paths: list[Path]) -> list[dict[str, Any]]:
    from autoscaler.manifests.reader import mappings

    return [d for path in paths for _, d in mappings(path)]  # a ManifestError is exit status 2


def plan(
    pods: list[Path] = typer.Argument(..., help="Pod / Deployment manifests"),  # noqa: B008
    nodepool: list[Path] = typer.Option([], "--nodepool", help="NodePool manifests (karpenter.sh/v1)"),  # noqa: B008
    existing: Path | None = typer.Option(None, "--existing", help="Node manifests with free room"),  # noqa: B008
    spot_prices: Path | None = typer.Option(None, "--spot-prices", help="JSON {type: {zone: $/h}}"),  # noqa: B008
    algorithm: str = typer.Option("surge", "--algorithm", help="surge or karpenter (the baseline)"),
    format: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Plan new nodes (instance type, capacity type, zone) for pending pods at minimal $/h."""
    from provisioner.catalog import load_catalog
    from provisioner.nodepool import NodePool, default_nodepool
    from provisioner.plan import make_plan
    from provisioner.pods import daemonset_overhead, groups_from_manifests
    from provisioner.problem import ExistingNode
    from provisioner.requirements import Taint
    from provisioner.resources import Resources

    docs = _docs(pods)
    groups = groups_from_manifests(docs)
    overhead = daemonset_overhead(docs)
    pools = [NodePool.model_validate(d) for d in _docs(nodepool) if d.get("kind") == "NodePool"] or [default_nodepool()]
    spot: dict[tuple[str, str], float] = {}
    if spot_prices is not None:
        for itype, zones in json.loads(spot_prices.read_text()).items():
            spot.update({(itype, z): float(price) for z, price in zones.items()})
    nodes = []
    for d in _docs([existing]) if existing else []:
        if d.get("kind") != "Node":
            continue
        allocatable = (d.get("status") or {}).get("allocatable") or {}
        free = Resources.from_requests(allocatable, pods=int(allocatable.get("pods", 110)))
        spec_taints = (d.get("spec") or {}).get("taints") or []
        taints = tuple(Taint(t["key"], t.get("value", ""), t["effect"]) for t in spec_taints)
        nodes.append(ExistingNode(d["metadata"]["name"], d["metadata"].get("labels") or {}, free, taints))
    result = make_plan(groups, pools, load_catalog(spot_prices=spot), nodes, overhead,
                       algorithm="karpenter" if algorithm == "karpenter" else "surge")
    warnings = [f"NodePool {p.name}: {f} is not used by planning" for p in pools for f in p.unsupported_fields()]
    if format == "json":
        out = result.to_json()
        out["warnings"] = warnings
        typer.echo(json.dumps(out, indent=2))
        return
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"node plan ({result.algorithm})")
    for col in ("instance type", "capacity", "zone", "nodes", "$/h each", "pods", "cpu use", "mem use"):
        table.add_column(col)
    Key = tuple[str, str, str, float]
    kinds: Counter[Key] = Counter()
    pods_on: Counter[Key] = Counter()
    cpu_use: dict[Key, list[float]] = {}
    mem_use: dict[Key, list[float]] = {}
    for n in result.nodes:
        name = n.instance_type + (f" (existing {n.existing})" if n.existing else "")
        key = (name, n.capacity_type, n.zone, n.price_per_hour)
        kinds[key] += 1
        pods_on[key] += len(n.pods)
        cpu_use.setdefault(key, []).append(n.cpu_utilization)
        mem_use.setdefault(key, []).append(n.memory_utilization)
    for key, count in sorted(kinds.items(), key=lambda kv: -kv[0][3] * kv[1]):
        cpu = sum(cpu_use[key]) / count
        mem = sum(mem_use[key]) / count
        table.add_row(key[0], key[1], key[2], str(count), f"{key[3]:.4f}", str(pods_on[key]), f"{cpu:.0%}",
                      f"{mem:.0%}")
    console = Console(width=max(Console().width, 110))
    console.print(table)
    bound = result.lower_bound_per_hour
    ratio = result.cost_per_hour / bound if bound else float("nan")
    console.print(f"total ${result.cost_per_hour:.4f}/h for {len(result.new_nodes)} new nodes; LP lower bound "
                  f"${bound:.4f}/h (cost/bound {ratio:.3f}); solved in {result.solve_seconds:.2f}s")
    for u in result.unschedulable:
        console.print(f"[red]unschedulable[/red] {u['pod']}: {u['reason']}")
    for w in warnings:
        console.print(f"[yellow]warning[/yellow] {w}")
