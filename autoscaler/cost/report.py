"""`surge cost` output: the run (prices + Prometheus → allocation), a terminal table, CSV, JSON and a
self-contained HTML page whose charts are inline SVG (same look as the simulator's report).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.cost.allocation import IDLE, Allocation, PriceOf, allocate, check_by
from autoscaler.cost.collect import Window, max_chunk_for, plan_chunks, read_chunks, read_metadata, scrape_interval
from autoscaler.cost.prices import PriceBook, spec_of
from autoscaler.cost.prom import Prometheus
from autoscaler.htmlpage import COLORS, Bars, Line, Section, bar_chart, bullets, line_chart, render_page, table

IDLE_COLOR = "#999999"
OTHER_COLOR = "#bcbd22"
TOP_GROUPS = 8  # groups drawn in the stacked chart; the rest are summed as "other"


def price_of_book(book: PriceBook) -> PriceOf:
    def price_of(instance_type: str, capacity: str | None, zone: str | None, at: float) -> tuple[
            float | None, float | None]:
        on_demand = book.on_demand_price(instance_type)
        if capacity != "spot":
            return on_demand, on_demand
        spot = book.spot_price(instance_type, zone, at) if zone else book.spot_price_any_zone(instance_type, at)
        return spot, on_demand
    return price_of


@dataclass(frozen=True)
class CostRun:
    allocation: Allocation
    prices: PriceBook
    meta: dict[str, Any]


def run_cost(prom: Prometheus, start: float, end: float, step_s: float, by: str,
             book_for: Callable[[list[str], list[str]], PriceBook],
             progress: Callable[[int, int], None] | None = None, use_recorded: bool = True) -> CostRun:
    """Read the window from Prometheus, price its nodes, allocate. `book_for(types, zones)` makes the
    price book once the node instance types are known; `progress(done, total)` per chunk. Node
    prices recorded in Prometheus (node_*_hourly_cost, from OpenCost or surge's operator) are used
    where present unless `use_recorded` is off; the price book prices the rest."""
    check_by(by)
    w = Window(start, end, step_s)
    label_key = by[6:] if by.startswith("label:") else None
    nodes, pods, has_recorded = read_metadata(prom, w, label_key)
    types = sorted({n.instance_type for n in nodes.values() if n.instance_type})
    zones = sorted({n.zone for n in nodes.values() if n.zone})
    book = book_for(types, zones)
    chunks = plan_chunks(start, end, step_s, max_chunk_s=max_chunk_for(scrape_interval(prom, w)))
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], len(chunks))

    recorded = use_recorded and has_recorded
    if recorded:
        book.notes.append("node prices recorded in Prometheus (node_*_hourly_cost) are used where present; "
                          "the price book prices the other nodes and the on-demand side of spot savings")
    alloc = allocate(by, start, end, nodes, pods, read_chunks(prom, w, chunks, tick, recorded=recorded), spec_of,
                     price_of_book(book))
    meta = {"prometheus": prom.url, "start": start, "end": end, "window_s": end - start, "step_s": step_s,
            "chunks": len(chunks), "by": by, "nodes": len(nodes), "pods": len(pods), "prices": book.to_json()}
    return CostRun(alloc, book, meta)


# --- renderers ------------------------------------------------------------------------------------
def to_json(run: CostRun) -> dict[str, Any]:
    return {**run.meta, **run.allocation.to_json()}


def to_csv(run: CostRun) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["name", "hours", "cpu", "ram", "gpu", "total", "share"])
    writer.writeheader()
    writer.writerows(run.allocation.rows())
    return buf.getvalue()


def rich_table(run: CostRun) -> Any:
    from rich.table import Table

    a = run.allocation
    s = a.summary()
    days = (a.end - a.start) / 86400
    t = Table(title=f"cost by {a.by}, {days:.2f} days: total ${s['total']:,.2f}, idle {s['idle_share']:.1%}, "
                    f"spot {s['spot_share']:.1%}, spot saved ${s['spot_savings']:,.2f}")
    for col in ("name", "pod-hours", "CPU $", "RAM $", "GPU $", "total $", "share"):
        t.add_column(col, justify="left" if col == "name" else "right")
    for r in a.rows():
        t.add_row(r["name"], f"{r['hours']:,.1f}", f"{r['cpu']:,.2f}", f"{r['ram']:,.2f}", f"{r['gpu']:,.2f}",
                  f"{r['total']:,.2f}", f"{r['share']:.1%}")
    return t


def _stacked_lines(a: Allocation) -> list[Line]:
    """The largest groups, the rest as "other", idle on top — as cumulative lines (each line adds its
    group to those below it, so the top line is the node cost of each chunk)."""
    ranked = [k for k, _ in sorted(((k, sum(v)) for k, v in a.series.items() if k != IDLE), key=lambda kv: -kv[1])]
    top, rest = ranked[:TOP_GROUPS], ranked[TOP_GROUPS:]
    n = len(a.series_t)
    layers: list[tuple[str, Sequence[float]]] = [(k, a.series[k]) for k in top]
    if rest:
        layers.append(("other", [sum(a.series[k][i] for k in rest) for i in range(n)]))
    layers.append((IDLE, a.series.get(IDLE, [0.0] * n)))
    xs = [t - a.start for t in a.series_t]
    running = [0.0] * n
    out = []
    for k, (label, ys) in enumerate(layers):
        running = [r + y for r, y in zip(running, ys, strict=True)]
        color = IDLE_COLOR if label == IDLE else OTHER_COLOR if label == "other" else COLORS[k % len(COLORS)]
        out.append(Line(label, xs, running, color=color, dashed=label == IDLE))
    return out


def to_html(run: CostRun, notes: Sequence[str] = (), whatif: Any = None) -> str:
    a = run.allocation
    s = a.summary()
    span = a.end - a.start
    xs = [t - a.start for t in a.series_t]
    idle = a.series.get(IDLE, [0.0] * len(xs))
    idle_share = [100 * idle[i] / v if v else 0.0 for i, v in enumerate(a.series_total)]
    spot_share = [100 * a.series_spot[i] / v if v else 0.0 for i, v in enumerate(a.series_total)]
    rows = a.rows()
    summary = table(["total $", "allocated $", "idle $", "idle share", "spot $", "spot share", "spot saved $",
                     "node-hours"],
                    [[f"{s['total']:,.2f}", f"{s['allocated']:,.2f}", f"{s['idle']:,.2f}", f"{s['idle_share']:.1%}",
                      f"{s['spot_cost']:,.2f}", f"{s['spot_share']:.1%}", f"{s['spot_savings']:,.2f}",
                      f"{s['node_hours']:,.1f}"]], numeric=set(range(8)), css="summary")
    groups = table([a.by, "pod-hours", "CPU $", "RAM $", "GPU $", "total $", "share"],
                   [[r["name"], f"{r['hours']:,.1f}", f"{r['cpu']:,.2f}", f"{r['ram']:,.2f}", f"{r['gpu']:,.2f}",
                     f"{r['total']:,.2f}", f"{r['share']:.1%}"] for r in rows], numeric={1, 2, 3, 4, 5, 6},
                   css="groups")
    bars = bar_chart(f"cost by {a.by}", [r["name"] for r in rows[:TOP_GROUPS + 1]],
                     [Bars("total", [r["total"] for r in rows[:TOP_GROUPS + 1]], "$")])
    stacked = line_chart(f"cost per chunk by {a.by}, stacked (top line: node cost; dashed: + idle)",
                         _stacked_lines(a), "$ per chunk", start=a.start, span=span)
    shares = line_chart("idle share and spot share of node cost", [
        Line("idle share", xs, idle_share, color="#777777"), Line("spot share", xs, spot_share, color=COLORS[2])],
        "% of node cost", start=a.start, span=span)
    nodes = sorted(a.nodes.values(), key=lambda n: -n.cost.total)
    node_table = table(["node", "instance type", "capacity", "NodePool", "hours", "cost $", "idle $", "spot saved $",
                        "price"],
                       [[n.name, n.instance_type, n.capacity_type, n.nodepool, f"{n.hours:,.1f}",
                         f"{n.cost.total:,.2f}", f"{n.idle:,.2f}", f"{n.spot_savings:,.2f}", n.price_source]
                        for n in nodes[:200]], numeric={4, 5, 6, 7}, css="nodes")
    sections = [Section("Summary", [summary]), Section(f"By {a.by}", [groups, bars, stacked, shares])]
    if whatif is not None:
        sections.append(Section("What if KEDA + Karpenter (simulated)", whatif.html_parts()))
    sections += [
        Section(f"Nodes (largest {min(200, len(nodes))} of {len(nodes)})", [node_table]),
        Section('Problems (cost attributed to "unknown" or priced by default, never dropped)',
                [bullets([str(p) for p in a.problems], css="problems")]),
        Section("Notes", [bullets([*run.prices.notes, *notes])]),
    ]
    facts = {"Prometheus": run.meta["prometheus"], "window": f"{span / 86400:.2f} days",
             "start (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.start)),
             "end (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.end)), "grouped by": a.by,
             "nodes / pods": f"{run.meta['nodes']} / {run.meta['pods']}", "chunks": run.meta["chunks"],
             "on-demand prices": run.prices.on_demand_source, "spot prices": run.prices.spot_source}
    return render_page("surge cost", sections, subtitle="OpenCost's allocation: max(request, usage) × the node's "
                       "unit prices; idle is node cost not allocated", facts=facts)


def write_report(out: Path, run: CostRun, notes: Sequence[str] = (), whatif: Any = None) -> list[Path]:
    """cost.json, cost.csv and cost.html in `out`; `whatif` (a WhatIf) adds its comparison."""
    out.mkdir(parents=True, exist_ok=True)
    doc = to_json(run) | {"notes": [*run.prices.notes, *notes]}
    if whatif is not None:
        doc["what_if"] = whatif.to_json()
    files = {"cost.json": json.dumps(doc, indent=2), "cost.csv": to_csv(run), "cost.html": to_html(run, notes, whatif)}
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths
