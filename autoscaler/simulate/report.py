"""The simulation report: a terminal table, JSON, CSV and a self-contained HTML page.

The HTML draws its charts as inline SVG so the page opens anywhere, offline, with no plotting
library to install.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoscaler.simulate.policy import Assumptions
from autoscaler.simulate.run import PolicyResult

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def ratios(results: Sequence[PolicyResult]) -> dict[str, dict[str, float | None]]:
    """Cost and SLO-minutes of each policy against keda-karpenter and static-peak, where present."""
    by_name = {r.policy: r for r in results}
    out: dict[str, dict[str, float | None]] = {}
    for r in results:
        row: dict[str, float | None] = {}
        for ref in ("keda-karpenter", "static-peak"):
            base = by_name.get(ref)
            row[f"cost_vs_{ref}"] = round(r.cost_usd / base.cost_usd, 4) if base and base.cost_usd else None
        out[r.policy] = row
    return out


def warnings(results: Sequence[PolicyResult], max_replicas: int) -> list[str]:
    """What a reader must not miss: capacity that could never be had."""
    out = []
    for r in results:
        if r.max_pending_pods:
            out.append(f"{r.policy}: up to {r.max_pending_pods} pods stayed Pending "
                       f"({r.pending_pod_seconds / 3600:,.1f} pod-hours): the NodePool could not hold them "
                       "(limits, requirements or requests that fit no instance type)")
        if max(r.series.replicas, default=0) >= max_replicas and r.slo_violation_minutes:
            out.append(f"{r.policy}: reached maxReplicaCount ({max_replicas}) while work waited past the SLO; "
                       "the ScaledObject cannot serve the peak")
    return out


def to_json(results: Sequence[PolicyResult], a: Assumptions, meta: dict[str, Any]) -> dict[str, Any]:
    rel = ratios(results)
    return {
        **meta,
        "assumptions": a.to_json(),
        "policies": [r.summary() | rel[r.policy] for r in results],
        "details": {r.policy: r.to_json() for r in results},
    }


def to_csv(results: Sequence[PolicyResult]) -> str:
    rel = ratios(results)
    rows = [r.summary() | rel[r.policy] for r in results]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def table(results: Sequence[PolicyResult], title: str) -> Any:
    from rich.table import Table

    rel = ratios(results)
    t = Table(title=title)
    for col in ("policy", "cost $", "× keda-karpenter", "× static-peak", "node-h", "idle $", "spot saved $",
                "wait p50/p95/p99 s", "SLO-min", "dropped", "actions"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        kk, sp = rel[r.policy]["cost_vs_keda-karpenter"], rel[r.policy]["cost_vs_static-peak"]
        t.add_row(r.policy, f"{r.cost_usd:,.2f}", "" if kk is None else f"{kk:.2f}", "" if sp is None else f"{sp:.2f}",
                  f"{r.node_hours:,.1f}", f"{r.idle_cost_usd:,.2f}", f"{r.spot_savings_usd:,.2f}",
                  f"{r.wait_p50_s:g}/{r.wait_p95_s:g}/{r.wait_p99_s:g}", str(r.slo_violation_minutes),
                  f"{r.dropped:,.0f}", str(r.scaling_actions))
    return t


def _polyline(xs: Sequence[float], ys: Sequence[float], x_max: float, y_max: float, w: int, h: int,
              color: str, width: float = 1.2) -> str:
    if not xs:
        return ""
    pts = " ".join(f"{x / x_max * w:.1f},{h - y / y_max * h:.1f}" for x, y in zip(xs, ys, strict=True))
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{pts}"/>'


def _chart(title: str, span: float, lines: list[tuple[str, str, Sequence[float], Sequence[float]]],
           unit: str) -> str:
    w, h, pad = 900, 220, 40
    y_max = max((max(ys, default=0) for _, _, _, ys in lines), default=0) or 1.0
    body = "".join(_polyline(xs, ys, span or 1, y_max * 1.05, w, h, color) for _, color, xs, ys in lines)
    legend = " ".join(f'<span style="color:{c}">■ {html.escape(label)}</span>' for label, c, _, _ in lines)
    days = span / 86400
    length, unit_label = (days, "d") if days >= 1 else (span / 3600, "h")
    ticks = "".join(f'<text x="{pad + i / 4 * w:.0f}" y="{h + 16}" font-size="10">{i / 4 * length:.1f}{unit_label}'
                    "</text>" for i in range(5))
    return (f"<h3>{html.escape(title)}</h3><div>{legend}</div>"
            f'<svg width="{w + pad + 10}" height="{h + 24}" style="border:1px solid #ddd">'
            f'<text x="2" y="12" font-size="10">{y_max:.4g} {html.escape(unit)}</text>'
            f'<g transform="translate({pad},0)">{body}</g>{ticks}</svg>')


def to_html(results: Sequence[PolicyResult], a: Assumptions, meta: dict[str, Any], notes: Sequence[str]) -> str:
    rel = ratios(results)
    span = results[0].span_s if results else 0.0
    head = ("<tr>" + "".join(f"<th>{c}</th>" for c in (
        "policy", "cost $", "× keda-karpenter", "× static-peak", "node-hours", "idle $", "spot saved $",
        "wait p50 s", "p95 s", "p99 s", "SLO minutes", "dropped", "scaling actions")) + "</tr>")
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r.policy, f"{r.cost_usd:,.2f}", rel[r.policy]["cost_vs_keda-karpenter"] or "",
            rel[r.policy]["cost_vs_static-peak"] or "", f"{r.node_hours:,.1f}", f"{r.idle_cost_usd:,.2f}",
            f"{r.spot_savings_usd:,.2f}", r.wait_p50_s, r.wait_p95_s, r.wait_p99_s, r.slo_violation_minutes,
            f"{r.dropped:,.0f}", r.scaling_actions)) + "</tr>" for r in results)
    charts = []
    for r in results:
        s = r.series
        need = [v / a.pod_rate for v in s.load]
        charts.append(_chart(f"{r.policy}: load vs replicas vs nodes", span, [
            ("load (pods needed)", "#999999", s.t, need), ("replicas", COLORS[0], s.t, s.replicas),
            ("ready pods", COLORS[2], s.t, s.ready), ("nodes", COLORS[1], s.t, s.nodes)], "pods / nodes"))
    charts.append(_chart("cost over time", span, [
        (r.policy, COLORS[i % len(COLORS)], r.series.t, r.series.cost_per_hour) for i, r in enumerate(results)],
        "$/h"))
    breakdown = "".join(
        f"<h3>{html.escape(r.policy)}: $ by NodePool / instance type / capacity type</h3><pre>"
        + html.escape(json.dumps({"nodepool": r.to_json()["cost_by_nodepool"],
                                  "instance_type": r.to_json()["cost_by_instance_type"],
                                  "capacity_type": r.to_json()["cost_by_capacity_type"]}, indent=1)) + "</pre>"
        for r in results)
    assumptions = html.escape(json.dumps(a.to_json(), indent=1))
    meta_html = html.escape(json.dumps(meta, indent=1))
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>surge simulate</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px;text-align:right}}</style></head><body>
<h1>surge simulate</h1><pre>{meta_html}</pre>
<table>{head}{rows}</table>
{"".join(charts)}
{breakdown}
<h2>Assumptions (stated, not measured)</h2><pre>{assumptions}</pre>
<h2>Notes</h2><ul>{notes_html}</ul>
</body></html>"""


def write_report(out: Path, results: Sequence[PolicyResult], a: Assumptions, meta: dict[str, Any],
                 notes: Sequence[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": json.dumps(to_json(results, a, meta) | {"notes": list(notes)}, indent=2),
        "report.csv": to_csv(results),
        "report.html": to_html(results, a, meta, notes),
    }
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths
