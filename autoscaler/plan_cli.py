"""`surge plan`: read Pod/Deployment manifests and NodePools, print the node plan.

Bad input never gives a traceback: one line on stderr naming the file, the object and the field,
exit status 2 (`PlanInputError`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
import yaml

ALGORITHMS = ("surge", "karpenter")
FORMATS = ("text", "json")


class PlanInputError(ValueError):
    """One bad input: `<file>: <object>: <field>: <what was expected>`."""


def _load_all(text: str) -> list[Any]:
    """Every YAML document of `text`. yaml-rs (Rust) when installed — a 45k-Pod file in ~2 s instead of
    ~35 s with PyYAML's C parser, whose object construction is Python — else PyYAML's safe loader."""
    try:
        import yaml_rs
    except ImportError:  # pragma: no cover - yaml-rs is a declared dependency
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return list(yaml.load_all(text, Loader=loader))  # a safe loader (C or pure Python)
    try:
        docs = yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        raise yaml.YAMLError(str(exc).splitlines()[0] if str(exc) else "invalid YAML") from None
    if docs is None:
        return []
    # yaml-rs returns a list for several documents, the document itself for one
    return list(docs) if isinstance(docs, list) and "---" in text else [docs]


def _docs(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every mapping in the files, read by the hardened reader (a ManifestError is exit status 2)."""
    from autoscaler.manifests.reader import mappings

    return [(path, d) for path in paths for _, d in mappings(path)]


def _pod_docs(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Pod files. What `kubectl get pods -A -o yaml` dumps is far past the hardened reader's
    per-manifest size (a 45k-Pod List is ~10 MB, one document, ~1M nodes) and its Python object
    construction takes ~35 s, so pod files are parsed by yaml-rs with the reader's checks around
    it: its decoding (binary, UTF-16, Latin-1 named), its document count and depth limits, alias
    expansion bounded, and two limits of their own — SURGE_PLAN_MAX_BYTES (default 256 MiB) and
    no line over 1 MiB (no Kubernetes object holds such a value)."""
    from autoscaler.manifests.reader import Limits, check_object, decode

    limits = Limits.from_env()
    cap = int(os.environ.get("SURGE_PLAN_MAX_BYTES", str(256 * 2**20)))
    walk = dataclasses.replace(limits, max_nodes=max(limits.max_nodes, cap // 4))
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read(cap + 1)
        except OSError as exc:
            raise PlanInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if len(data) > cap:
            raise PlanInputError(f"{path}: over the limit of {cap} bytes (SURGE_PLAN_MAX_BYTES)")
        text = decode(data, str(path), dataclasses.replace(limits, max_bytes=cap))
        longest = max((len(line) for line in text.splitlines()), default=0)
        if longest > 2**20:
            raise PlanInputError(f"{path}: a line of {longest} characters is over the limit of 1 MiB")
        try:
            docs = _load_all(text)
        except yaml.YAMLError as exc:
            raise PlanInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if len(docs) > limits.max_documents:
            raise PlanInputError(f"{path}: has more than {limits.max_documents} documents "
                                 "(SURGE_MANIFEST_MAX_DOCUMENTS)")
        for d in docs:
            if d is None:
                continue
            if not isinstance(d, dict):
                raise PlanInputError(f"{path}: a document is {type(d).__name__}, expected a Kubernetes object")
            check_object(d, str(path), walk)
            out.append((path, d))
    return out


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return f"{doc.get('kind', '?')} {(meta or {}).get('name', '?')}"


def _pools(paths: list[Path]) -> list[Any]:
    from pydantic import ValidationError

    from provisioner.nodepool import NodePool
    from provisioner.pods import expand_lists

    pools = []
    for path, raw in _docs(paths):
        for d in expand_lists([raw]):
            if d.get("kind") != "NodePool":
                continue
            try:
                pools.append(NodePool.model_validate(d))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
                msg = str(err["msg"]).removeprefix("Value error, ")
                raise PlanInputError(f"{path}: {_name(d)}: {where}: {msg}") from None
    return pools


def _spot(path: Path) -> dict[tuple[str, str], float]:
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise PlanInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanInputError(f"{path}: not JSON ({exc}); expected {{instance type: {{zone: $/h}}}}") from None
    if not isinstance(raw, dict):
        raise PlanInputError(f"{path}: expected {{instance type: {{zone: $/h}}}}")
    out = {}
    for itype, zones in raw.items():
        if not isinstance(zones, dict):
            raise PlanInputError(f"{path}: {itype}: expected {{zone: $/h}}")
        for zone, price in zones.items():
            if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
                raise PlanInputError(f"{path}: {itype}.{zone}: {price!r} is not a price (a number ≥ 0 in $/h)")
            out[(str(itype), str(zone))] = float(price)
    return out


def _existing(path: Path) -> list[Any]:
    from provisioner.pods import expand_lists
    from provisioner.problem import ExistingNode
    from provisioner.requirements import Taint
    from provisioner.resources import QuantityError, Resources

    nodes = []
    for _, raw in _docs([path]):
        for d in expand_lists([raw]):
            if d.get("kind") != "Node":
                continue
            meta = d.get("metadata") or {}
            if not meta.get("name"):
                raise PlanInputError(f"{path}: Node: metadata.name: required")
            obj = f"{path}: Node {meta['name']}"
            allocatable = (d.get("status") or {}).get("allocatable") or {}
            try:
                pods = int(str(allocatable.get("pods", 110)))
                free = Resources.from_requests(allocatable, pods=pods)
            except (QuantityError, ValueError) as exc:
                raise PlanInputError(f"{obj}: status.allocatable: {exc}") from None
            taints = []
            for i, t in enumerate((d.get("spec") or {}).get("taints") or []):
                if not isinstance(t, dict) or not t.get("key") or not t.get("effect"):
                    raise PlanInputError(f"{obj}: spec.taints[{i}]: expected {{key, value, effect}}")
                taints.append(Taint(str(t["key"]), str(t.get("value", "")), str(t["effect"])))
            nodes.append(ExistingNode(str(meta["name"]), meta.get("labels") or {}, free, tuple(taints)))
    return nodes


def plan(
    pods: list[Path] = typer.Argument(..., help="Pod / Deployment manifests"),  # noqa: B008
    nodepool: list[Path] = typer.Option([], "--nodepool", help="NodePool manifests (karpenter.sh/v1)"),  # noqa: B008
    existing: Path | None = typer.Option(None, "--existing", help="Node manifests with free room"),  # noqa: B008
    spot_prices: Path | None = typer.Option(None, "--spot-prices", help="JSON {type: {zone: $/h}}"),  # noqa: B008
    algorithm: str = typer.Option("surge", "--algorithm", help="surge or karpenter (the baseline)"),
    format: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Plan new nodes (instance type, capacity type, zone) for pending pods at minimal $/h."""
    try:
        _plan(pods, nodepool, existing, spot_prices, algorithm, format)
    except PlanInputError as exc:
        typer.echo(f"surge plan: error: {exc}", err=True)
        raise typer.Exit(2) from None


def _plan(pods: list[Path], nodepool: list[Path], existing: Path | None, spot_prices: Path | None, algorithm: str,
          format: str) -> None:
    from provisioner.catalog import load_catalog
    from provisioner.nodepool import default_nodepool
    from provisioner.plan import make_plan
    from provisioner.pods import ManifestError, read_manifests

    if algorithm not in ALGORITHMS:
        raise PlanInputError(f"--algorithm: {algorithm!r}, expected one of {', '.join(ALGORITHMS)}")
    if format not in FORMATS:
        raise PlanInputError(f"--format: {format!r}, expected one of {', '.join(FORMATS)}")
    by_file: dict[Path, list[dict[str, Any]]] = {}
    for path, doc in _pod_docs(pods):
        by_file.setdefault(path, []).append(doc)
    groups, skipped = [], []
    from provisioner.resources import Resources

    overhead = Resources()
    for path, docs in by_file.items():
        try:
            read = read_manifests(docs)
        except ManifestError as exc:
            raise PlanInputError(f"{path}: {exc}") from None
        groups += read.groups
        overhead = overhead + read.overhead
        skipped += [f"{path}: {s}" for s in read.skipped]
    pools = _pools(nodepool) or [default_nodepool()]
    spot = _spot(spot_prices) if spot_prices is not None else {}
    nodes = _existing(existing) if existing else []
    result = make_plan(groups, pools, load_catalog(spot_prices=spot), nodes, overhead,
                       algorithm="karpenter" if algorithm == "karpenter" else "surge")
    warnings = [f"NodePool {p.name}: {f} is not used by planning" for p in pools for f in p.unsupported_fields()]
    warnings += skipped
    if spot_prices is None:
        warnings.append("no --spot-prices: spot offerings are not planned (a pod that needs spot is unschedulable)")
    if format == "json":
        out = result.to_json()
        out["warnings"] = warnings
        typer.echo(json.dumps(out, indent=2))
        return
    _print_text(result, warnings)


def _print_text(result: Any, warnings: list[str]) -> None:
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
    ratio = f"{result.cost_per_hour / bound:.3f}" if bound else "n/a"
    console.print(f"total ${result.cost_per_hour:.4f}/h for {len(result.new_nodes)} new nodes; LP lower bound "
                  f"${bound:.4f}/h (cost/bound {ratio}); solved in {result.solve_seconds:.2f}s")
    shown = 0
    for u in result.unschedulable:
        if shown < 50:
            console.print(f"[red]unschedulable[/red] {u['pod']}: {u['reason']}")
        shown += 1
    if shown > 50:
        console.print(f"[red]unschedulable[/red] … and {shown - 50} more pods")
    for w in warnings:
        console.print(f"[yellow]warning[/yellow] {w}")
