"""`surge cost` output: the run (prices + Prometheus → allocation), a terminal table, CSV, JSON and a
self-contained HTML page whose charts are inline SVG (same look as the simulator's report).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.cost.allocation import IDLE, Allocation, PriceOf, allocate, check_by
from autoscaler.cost.collect import Window, plan_chunks, read_chunks, read_metadata
from autoscaler.cost.prices import PriceBook, spec_of
from autoscaler.cost.prom import Prometheus

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#bcbd22", "#e377c2")
IDLE_COLOR = "#bbbbbb"
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
             progress: Callable[[int, int], None] | None = None) -> CostRun:
    """Read the window from Prometheus, price its nodes, allocate. `book_for(types, zones)` makes the
    price book once the node instance types are known; `progress(done, total)` per chunk."""
    check_by(by)
    w = Window(start, end, step_s)
    label_key = by[6:] if by.startswith("label:") else None
    nodes, pods = read_metadata(prom, w, label_key)
    types = sorted({n.instance_type for n in nodes.values() if n.instance_type})
    zones = sorted({n.zone for n in nodes.values() if n.zone})
    book = book_for(types, zones)
    chunks = plan_chunks(start, end, step_s)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], len(chunks))

    alloc = allocate(by, start, end, nodes, pods, read_chunks(prom, w, chunks, tick), spec_of, price_of_book(book))
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


def table(run: CostRun) -> Any:
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


def _ticks(span: float, w: int, h: int, pad: int) -> str:
    days = span / 86400
    length, unit = (days, "d") if days >= 1 else (span / 3600, "h")
    return "".join(f'<text x="{pad + i / 4 * w:.0f}" y="{h + 16}" font-size="10">{i / 4 * length:.1f}{unit}</text>'
                   for i in range(5))


def _stacked(title: str, t: Sequence[float], layers: list[tuple[str, str, Sequence[float]]], span: float,
             unit: str) -> str:
    """A stacked area chart: each layer a polygon between the running sums."""
    w, h, pad = 900, 220, 40
    n = len(t)
    if n == 0:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    xs = [(ti - t[0]) / (span or 1) * w for ti in t] + [w]
    tops = [0.0] * n
    polys, y_max = [], max(sum(max(0.0, ly[2][i]) for ly in layers) for i in range(n)) or 1.0
    for label, color, ys in layers:
        base = tops[:]
        tops = [b + max(0.0, y) for b, y in zip(base, ys, strict=True)]
        upper = " ".join(f"{xs[i]:.1f},{h - tops[i] / y_max * h:.1f} {xs[i + 1]:.1f},{h - tops[i] / y_max * h:.1f}"
                         for i in range(n))
        lower = " ".join(f"{xs[i + 1]:.1f},{h - base[i] / y_max * h:.1f} {xs[i]:.1f},{h - base[i] / y_max * h:.1f}"
                         for i in reversed(range(n)))
        polys.append(f'<polygon class="layer" data-name="{html.escape(label)}" fill="{color}" fill-opacity="0.8" '
                     f'stroke="none" points="{upper} {lower}"/>')
    return _frame(title, layers, (w, h, pad), f"{y_max:.4g} {unit}", polys, span)


def _frame(title: str, items: Sequence[tuple[str, str, Sequence[float]]], size: tuple[int, int, int], top: str,
           body: Sequence[str], span: float) -> str:
    """Title, colour legend and the bordered SVG the simulator's report draws too."""
    w, h, pad = size
    legend = " ".join(f'<span style="color:{c}">■ {html.escape(label)}</span>' for label, c, _ in items)
    return (f"<h3>{html.escape(title)}</h3><div>{legend}</div>"
            f'<svg class="chart" width="{w + pad + 10}" height="{h + 24}" style="border:1px solid #ddd">'
            f'<text x="2" y="12" font-size="10">{html.escape(top)}</text>'
            f'<g transform="translate({pad},0)">{"".join(body)}</g>{_ticks(span, w, h, pad)}</svg>')


def _shares(title: str, t: Sequence[float], lines: list[tuple[str, str, Sequence[float]]], span: float) -> str:
    w, h, pad = 900, 160, 40
    body = []
    for label, color, ys in lines:
        pts = " ".join(f"{(ti - t[0]) / (span or 1) * w:.1f},{h - y * h:.1f}" for ti, y in zip(t, ys, strict=True))
        body.append(f'<polyline class="share" data-name="{html.escape(label)}" fill="none" stroke="{color}" '
                    f'stroke-width="1.5" points="{pts}"/>')
    return _frame(title, lines, (w, h, pad), "100 %", body, span)


def _table_html(cls: str, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return (f'<table class="{cls}"><tr>' + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
            + "</table>")


def to_html(run: CostRun, notes: Sequence[str] = (), whatif: Any = None) -> str:
    a = run.allocation
    s = a.summary()
    span = a.end - a.start
    ranked = [k for k, _ in sorted(((k, sum(v)) for k, v in a.series.items() if k != IDLE), key=lambda kv: -kv[1])]
    top, rest = ranked[:TOP_GROUPS], ranked[TOP_GROUPS:]
    layers: list[tuple[str, str, Sequence[float]]] = [(k, COLORS[i % len(COLORS)], a.series[k])
                                                      for i, k in enumerate(top)]
    if rest:
        layers.append(("other", "#7f7f7f", [sum(a.series[k][i] for k in rest) for i in range(len(a.series_t))]))
    layers.append((IDLE, IDLE_COLOR, a.series.get(IDLE, [0.0] * len(a.series_t))))
    total = a.series_total
    idle_share = [(a.series.get(IDLE, [0.0] * len(total))[i] / v) if v else 0.0 for i, v in enumerate(total)]
    spot_share = [(a.series_spot[i] / v) if v else 0.0 for i, v in enumerate(total)]
    summary = _table_html("summary", ["total $", "allocated $", "idle $", "idle share", "spot $", "spot share",
                                      "spot saved $", "node-hours"],
                          [[f"{s['total']:,.2f}", f"{s['allocated']:,.2f}", f"{s['idle']:,.2f}",
                            f"{s['idle_share']:.1%}",
                            f"{s['spot_cost']:,.2f}", f"{s['spot_share']:.1%}", f"{s['spot_savings']:,.2f}",
                            f"{s['node_hours']:,.1f}"]])
    groups = _table_html("groups", [a.by, "pod-hours", "CPU $", "RAM $", "GPU $", "total $", "share"],
                         [[r["name"], f"{r['hours']:,.1f}", f"{r['cpu']:,.2f}", f"{r['ram']:,.2f}", f"{r['gpu']:,.2f}",
                           f"{r['total']:,.2f}", f"{r['share']:.1%}"] for r in a.rows()])
    nodes = sorted(a.nodes.values(), key=lambda n: -n.cost.total)
    node_rows = _table_html("nodes", ["node", "instance type", "capacity", "NodePool", "hours", "cost $", "idle $",
                                      "spot saved $", "price"],
                            [[n.name, n.instance_type, n.capacity_type, n.nodepool, f"{n.hours:,.1f}",
                              f"{n.cost.total:,.2f}", f"{n.idle:,.2f}", f"{n.spot_savings:,.2f}", n.price_source]
                             for n in nodes[:200]])
    problems = "".join(f"<li>{html.escape(str(p))}</li>" for p in a.problems) or "<li>none</li>"
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in [*run.prices.notes, *notes]) or "<li>none</li>"
    meta_html = html.escape(json.dumps(run.meta, indent=1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>surge cost</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>surge cost</h1><pre>{meta_html}</pre>
<h2>Summary</h2>{summary}
<h2>By {html.escape(a.by)}</h2>{groups}
{_stacked(f"cost over time by {a.by} (stacked, idle on top)", a.series_t, layers, span, "$ per chunk")}
{_shares("idle share and spot share of node cost", a.series_t,
         [("idle share", IDLE_COLOR.replace("bb", "77"), idle_share), ("spot share", COLORS[2], spot_share)], span)}
{whatif.html() if whatif is not None else ""}
<h2>Nodes (largest {min(200, len(nodes))} of {len(nodes)})</h2>{node_rows}
<h2>Problems (cost attributed to "unknown" or priced by default, never dropped)</h2><ul class="problems">{problems}</ul>
<h2>Notes</h2><ul>{notes_html}</ul>
</body></html>"""


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
