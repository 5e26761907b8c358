"""`surge simulate`: replay a trace through policies side by side and report cost and SLO."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from autoscaler.simulate.policy import Assumptions

_EXPECTED = {"format": "text or json", "days": "a positive number of days", "peak_pods": "at least 1",
             "scale": "a positive multiplier", "pod_rate": "a positive rate", "slo": "a positive number of seconds",
             "tick": "a positive number of seconds", "spot_discount": "a fraction from 0 up to (not including) 1",
             "spot_interruptions": "a finite rate ≥ 0", "jobs": "at least 1 worker"}


def _check_options(**given: tuple[object, bool]) -> None:
    """Options outside their range would divide by zero, or give negative prices and loads."""
    from autoscaler.simulate.inputs import InputError

    bad = [f"--{name.replace('_', '-')}: expected {_EXPECTED[name]}, got {value!r}"
           for name, (value, good) in given.items() if not good]
    if bad:
        raise InputError("; ".join(bad))


def _peak_pods(a: Assumptions, given: int | None, scale: float | None, max_replicas: int) -> tuple[Assumptions, str]:
    """The default trace scale must fit the ScaledObject: a p99 of 20 pods against a
    maxReplicaCount of 10 leaves every autoscaled policy short most of the day, which measures
    the default, not the policies. Only the default is capped; an explicit --peak-pods is kept."""
    if given is not None:
        return replace(a, peak_pods=given), ""
    if scale is None and max_replicas < a.peak_pods:
        return replace(a, peak_pods=max_replicas), (
            f"--peak-pods defaults to the ScaledObject's maxReplicaCount ({max_replicas}) instead of "
            f"{a.peak_pods}: the trace is scaled so its p99 needs {max_replicas} pods")
    return a, ""


def simulate(
    trace: Path | None = typer.Option(None, "--trace", help="CSV timestamp_seconds,value (default: bundled)"),  # noqa: B008
    trace_kind: str | None = typer.Option(None, "--trace-kind", help="count, rate or utilisation "
                                          "(default: what the file says, else count)"),
    scaledobject: Path | None = typer.Option(None, "--scaledobject", help="ScaledObject YAML"),  # noqa: B008
    nodepool: list[Path] = typer.Option([], "--nodepool", help="NodePool YAML (karpenter.sh/v1)"),  # noqa: B008
    deployment: Path | None = typer.Option(None, "--deployment", help="the target Deployment (pod requests)"),  # noqa: B008
    policy: list[str] = typer.Option([], "--policy", help="static-peak, keda-karpenter, surge, surge-no-<feature>"),  # noqa: B008
    report: Path | None = typer.Option(None, "--report", help="directory for report.html/.json/.csv"),  # noqa: B008
    format: str = typer.Option("text", "--format", help="text or json"),
    days: float | None = typer.Option(None, "--days", help="simulate only the first N days of the trace"),
    peak_pods: int | None = typer.Option(None, "--peak-pods", help="scale the trace so its p99 needs this many "
                                         "pods (default 20, at most the ScaledObject's maxReplicaCount)"),
    scale: float | None = typer.Option(None, "--scale", help="explicit trace multiplier (overrides --peak-pods)"),
    pod_rate: float = typer.Option(10.0, "--pod-rate", help="items/requests per second one pod completes"),
    slo: float = typer.Option(60.0, "--slo", help="SLO: seconds an item may wait"),
    tick: float = typer.Option(5.0, "--tick", help="simulation tick, seconds"),
    spot_discount: float = typer.Option(0.65, "--spot-discount", help="spot price = on-demand × (1 − this)"),
    spot_interruptions: float = typer.Option(0.005, "--spot-interruptions", help="per spot node-hour"),
    seed: int = typer.Option(1, "--seed"),
    jobs: int | None = typer.Option(None, "--jobs", help="worker processes for long runs, one policy each "
                                    "(default: one per policy, at most one per core)"),
) -> None:
    """Simulate the ScaledObject + NodePool on a trace under each policy; print cost and SLO."""
    from rich.console import Console
    from rich.progress import Progress, TimeElapsedColumn

    from autoscaler.simulate.inputs import DEFAULT_TRACE, InputError, build_setup, bundled
    from autoscaler.simulate.parallel import run_policies
    from autoscaler.simulate.policy import DEFAULT_POLICIES, Assumptions, PolicyError, policy_named
    from autoscaler.simulate.report import table, to_json, write_report
    from autoscaler.simulate.run import scale_for, tick_for
    from autoscaler.simulate.trace import TraceError, load_trace

    err = Console(stderr=True)
    try:
        _check_options(format=(format, format in ("text", "json")), days=(days, days is None or days > 0),
                       peak_pods=(peak_pods, peak_pods is None or peak_pods >= 1),
                       scale=(scale, scale is None or scale > 0),
                       pod_rate=(pod_rate, pod_rate > 0), slo=(slo, slo > 0), tick=(tick, tick > 0),
                       jobs=(jobs, jobs is None or jobs >= 1),
                       spot_discount=(spot_discount, 0 <= spot_discount < 1),
                       spot_interruptions=(spot_interruptions, 0 <= spot_interruptions < math.inf))
        policies = [policy_named(p) for p in (policy or DEFAULT_POLICIES)]
        tr = load_trace(trace or bundled(DEFAULT_TRACE), trace_kind)
        cut_note = None
        if days is not None:
            tr, cut_note = tr.head(days * 86400)
        a = Assumptions(tick_s=tick, pod_rate=pod_rate, slo_seconds=slo, spot_discount=spot_discount,
                        spot_interruptions_per_node_hour=spot_interruptions, seed=seed)
        setup, notes = build_setup(scaledobject, nodepool, deployment, a)
        a, peak_note = _peak_pods(a, peak_pods, scale, setup.spec.max_replicas)
        a = replace(a, scale=scale if scale is not None else scale_for(tr, a))
        notes += [peak_note] if peak_note else []
    except (TraceError, InputError, PolicyError) as exc:
        from rich.markup import escape

        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)  # one line, whatever its length
        raise typer.Exit(2) from None
    notes = tr.all_notes() + ([cut_note] if cut_note else []) + notes
    if cut_note and format != "json":
        err.print(f"[yellow]warning:[/yellow] {cut_note}")
    dt = tick_for(tr, a)
    ticks = round(tr.span / dt)
    columns = (*Progress.get_default_columns(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=format == "json") as progress:
        task = progress.add_task(f"simulating {', '.join(p.name for p in policies)}", total=ticks * len(policies))
        results = run_policies(tr, setup, policies, a, lambda n: progress.advance(task, n), jobs)
    from autoscaler.simulate.report import warnings
    from provisioner.disruption import SPOT_NOTICE_S

    notes += warnings(results, setup.spec.max_replicas, a)
    meta = {"trace": tr.name, "trace_kind": tr.kind, "trace_start": tr.start,
            "span_s": tr.span, "span_days": round(tr.span / 86400, 3), "tick_s": dt,
            "trace_scale": round(a.scale, 6), "workload": "http" if setup.http else "queue",
            "pods_per_replica_request": str(setup.pods.requests)}
    if report is not None:
        write_report(report, results, a, meta, notes)
    if format == "json":
        out = to_json(results, a, meta)
        typer.echo(json.dumps({k: out[k] for k in (*meta, "policies")} | {"notes": notes}, indent=2))
        return
    import sys


    console = Console() if sys.stdout.isatty() else Console(width=170)
    console.print(table(results, f"{tr.name}: {tr.span / 86400:.2f} days, trace ×{a.scale:.4g}, "
                                 f"SLO {a.slo_seconds:g} s wait"))
    for n in notes:
        console.print(f"note: {n}")
    console.print(f"assumptions: pods start in {a.pod_start_s:g} s (GPU {a.pod_start_gpu_s:g} s), nodes boot in "
                  f"{a.node_boot_cpu_s:g} s (GPU {a.node_boot_gpu_s:g} s), spot = on-demand × "
                  f"{1 - a.spot_discount:.2f}, {a.spot_interruptions_per_node_hour:g} interruptions per spot "
                  f"node-hour with {SPOT_NOTICE_S:g} s notice, one pod completes {a.pod_rate:g}/s")
    if report is not None:
        console.print(f"report: {report / 'report.html'}")
