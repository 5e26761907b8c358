"""The simulation report: a terminal table, JSON, CSV and a self-contained HTML page.

The page (tables, a summary chart of cost and SLO per policy, time charts with labelled axes) is
built with `autoscaler.htmlpage`, which `surge cost` and `surge forecast` share: inline SVG and
CSS, nothing fetched, so it opens offline.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoscaler.htmlpage import COLORS, EPOCH_1980, Bars, Line, Section, bar_chart, bullets, line_chart, render_page
from autoscaler.htmlpage import table as html_table
from autoscaler.simulate.policy import Assumptions
from autoscaler.simulate.run import PolicyResult
from provisioner.provisioning import BATCH_MAX_S


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


def saturated(r: PolicyResult, max_replicas: int, a: Assumptions) -> bool:
    """Whether maxReplicaCount itself held work back: at some sample all maxReplicaCount pods were
    ready and the queue still held more than they clear within the SLO. Reaching the maximum only
    while pods were still starting (a cold start's burst) does not count."""
    s = r.series
    return any(rep >= max_replicas and ready >= max_replicas and backlog > ready * a.pod_rate * a.slo_seconds
               for rep, ready, backlog in zip(s.replicas, s.ready, s.backlog, strict=True))


def warnings(results: Sequence[PolicyResult], max_replicas: int, a: Assumptions | None = None) -> list[str]:
    """What a reader must not miss: capacity that could never be had, and pods that waited for nodes.

    Pods that are Pending while Karpenter batches them and a node boots are the normal path of
    scaling out, not a limit: only pods the planner could not place at all (no instance type fits,
    or the NodePool's limits are reached) are blamed on the NodePool."""
    a = a or Assumptions()
    out = []
    for r in results:
        if r.unplaceable_pods:
            out.append(f"{r.policy}: up to {r.unplaceable_pods} pods could not be placed on any new node: the "
                       "NodePool could not hold them (its limits, its requirements, or requests that fit no "
                       f"instance type); {r.pending_pod_seconds / 3600:,.1f} pod-hours Pending in all")
        elif r.max_pending_pods:
            wait = a.pending_detect_s + BATCH_MAX_S + a.node_boot_cpu_s
            out.append(f"{r.policy}: up to {r.max_pending_pods} pods were Pending at once "
                       f"({r.pending_pod_seconds / 3600:,.2f} pod-hours) waiting for new nodes: the provisioner's "
                       f"batch window and node boot (≈ {wait:g} s each time), not a NodePool limit")
        if r.slo_violation_minutes and saturated(r, max_replicas, a):
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


def _cost_rows(results: Sequence[PolicyResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in results:
        for what, parts in (("NodePool", r.cost_by_nodepool), ("instance type", r.cost_by_instance_type),
                            ("capacity type", r.cost_by_capacity_type)):
            for name, usd in sorted(parts.items(), key=lambda kv: -kv[1]):
                share = usd / r.cost_usd if r.cost_usd else 0.0
                rows.append([r.policy, what, name, f"{usd:,.2f}", f"{share:.0%}"])
    return rows


def to_html(results: Sequence[PolicyResult], a: Assumptions, meta: dict[str, Any], notes: Sequence[str]) -> str:
    """The report page (layout and charts: `autoscaler.htmlpage`)."""
    rel = ratios(results)
    span = results[0].span_s if results else 0.0
    start = float(meta.get("trace_start", 0.0) or 0.0)
    names = [r.policy for r in results]
    summary = html_table(
        ["policy", "cost $", "× keda-karpenter", "× static-peak", "node-hours", "idle $", "spot saved $",
         "wait p50 s", "wait p95 s", "wait p99 s", "SLO minutes", "dropped", "scaling actions"],
        [[r.policy, f"{r.cost_usd:,.2f}", _ratio(rel[r.policy]["cost_vs_keda-karpenter"]),
          _ratio(rel[r.policy]["cost_vs_static-peak"]), f"{r.node_hours:,.1f}", f"{r.idle_cost_usd:,.2f}",
          f"{r.spot_savings_usd:,.2f}", f"{r.wait_p50_s:g}", f"{r.wait_p95_s:g}", f"{r.wait_p99_s:g}",
          r.slo_violation_minutes, f"{r.dropped:,.0f}", r.scaling_actions] for r in results],
        numeric=set(range(1, 13)), css="summary")
    overview = bar_chart(
        "Cost and SLO per policy", names,
        [Bars("cost", [r.cost_usd for r in results], "$"),
         Bars("minutes over the SLO", [float(r.slo_violation_minutes) for r in results], "min", "{:,.0f}"),
         Bars("scaling actions", [float(r.scaling_actions) for r in results], "", "{:,.0f}")],
        caption=f"SLO: an item may wait {a.slo_seconds:g} s. Lower is better in every panel.")
    activity = html_table(
        ["policy", "replica changes", "node launches", "node terminations", "pod moves", "arrived", "processed",
         "backlog at end", "most Pending pods", "Pending pod-hours"],
        [[r.policy, r.replica_changes, r.node_launches, r.node_terminations, r.pod_moves, f"{r.arrived:,.0f}",
          f"{r.processed:,.0f}", f"{r.backlog_end:,.0f}", r.max_pending_pods, f"{r.pending_pod_seconds / 3600:,.2f}"]
         for r in results], numeric=set(range(1, 10)))
    charts = [line_chart("Cost over time", [Line(r.policy, r.series.t, r.series.cost_per_hour) for r in results],
                         "$ per hour", start=start, span=span)]
    for r in results:
        s = r.series
        need = [v / a.pod_rate for v in s.load]
        charts.append(line_chart(f"{r.policy}: load, replicas and nodes", [
            Line("load (pods needed)", s.t, need, "#999999", 1.2), Line("replicas", s.t, s.replicas, COLORS[0]),
            Line("ready pods", s.t, s.ready, COLORS[2], dashed=True), Line("nodes", s.t, s.nodes, COLORS[1])],
            "pods / nodes", start=start, span=span))
    assumptions = html_table(["assumption", "value"], [[k, v] for k, v in a.to_json().items()], numeric={1})
    page = render_page("surge simulate", [
        Section("Summary", [overview, summary]),
        Section("Over time", charts),
        Section("Where the money went", [html_table(["policy", "by", "name", "cost $", "share"], _cost_rows(results),
                                               numeric={3, 4})]),
        Section("Activity", [activity]),
        Section("Notes", [bullets(list(notes))]),
        Section("Assumptions (stated, not measured)", [assumptions]),
    ], subtitle=f"{meta.get('trace', '')}: {span / 86400:.2f} days, each policy on the same trace and cluster",
        facts={k.replace("_", " "): _utc(v) if k == "trace_start" else v for k, v in meta.items()})
    return page


def _utc(t: Any) -> Any:
    """An epoch start as a UTC time (relative traces start at 0 and stay as they are)."""
    if isinstance(t, int | float) and t >= EPOCH_1980:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    return t


def _ratio(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


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
