"""`surge cost`: what each namespace / workload / NodePool / label cost over a window, from Prometheus."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import typer

MAX_PRINTED_PROBLEMS = 20


def cost(
    prometheus: str = typer.Option(..., "--prometheus", help="Prometheus base URL (kube-state-metrics + cAdvisor)"),
    window: str = typer.Option("7d", "--window", help="how far back: 7d, 12h, 30m"),
    by: str = typer.Option("namespace", "--by", help="namespace, workload, nodepool, node, scaledobject, label:KEY"),
    format: str = typer.Option("table", "--format", help="table, csv or json"),
    report: Path | None = typer.Option(None, "--report", help="directory for cost.html/.json/.csv"),  # noqa: B008
    end: float | None = typer.Option(None, "--end", help="window end, epoch seconds (default: now)"),
    step: str = typer.Option("5m", "--step", help="presence resolution (≥ the scrape interval)"),
    region: str = typer.Option("us-east-1", "--region", help="AWS region of the nodes (prices)"),
    live_prices: bool = typer.Option(False, "--live-prices/--offline-prices",
                                     help="ask the AWS Pricing API and DescribeSpotPriceHistory (default: the "
                                          "bundled catalog, spot priced on demand)"),
    recorded_prices: bool = typer.Option(True, "--recorded-prices/--no-recorded-prices",
                                         help="use node prices recorded in Prometheus (node_*_hourly_cost, from "
                                              "OpenCost or surge's operator) where present"),
    aws_endpoint_url: str | None = typer.Option(None, "--aws-endpoint-url", help="EC2/Pricing endpoint (tests)"),
    what_if: str | None = typer.Option(None, "--what-if", help="keda-karpenter: replay each ScaledObject's "
                                                                "recorded trigger readings through the simulator"),
    pod_rate: float = typer.Option(10.0, "--pod-rate", help="what-if: items per second one pod completes"),
    slo: float = typer.Option(60.0, "--slo", help="what-if: seconds an item may wait"),
    scaledobject: list[Path] = typer.Option([], "--scaledobject", help="what-if: ScaledObject/Deployment/NodePool "  # noqa: B008
                                                                       "manifests to simulate (default: bundled)"),
) -> None:
    """Allocate node cost to pods OpenCost's way (max(request, usage) × node unit prices), idle and
    spot savings included; every dollar is either allocated or idle."""
    from rich.console import Console
    from rich.progress import Progress

    from autoscaler.cost.allocation import CostInputError
    from autoscaler.cost.collect import parse_duration
    from autoscaler.cost.prices import PriceBook, load_price_book, offline_price_book, pricing_client
    from autoscaler.cost.prom import Prometheus, PrometheusError
    from autoscaler.cost.report import rich_table, run_cost, to_csv, to_json, write_report

    err = Console(stderr=True)
    try:
        if format not in ("table", "csv", "json"):
            raise CostInputError(f"--format: expected table, csv or json; got {format!r}")
        if what_if not in (None, "keda-karpenter"):
            raise CostInputError(f"--what-if: expected keda-karpenter; got {what_if!r}")
        if urllib.parse.urlsplit(prometheus).scheme not in ("http", "https"):
            raise CostInputError(f"--prometheus: expected an http:// or https:// URL; got {prometheus!r}")
        span = parse_duration(window, "--window")
        step_s = parse_duration(step, "--step")
        if step_s > span:
            raise CostInputError(f"--step: {step} is longer than --window {window}; expected a step of at most "
                                 "the window (and at least the scrape interval)")
        stop = (end if end is not None else time.time()) // step_s * step_s
        start = stop - span // step_s * step_s
        prom = Prometheus(prometheus)

        def book_for(types: list[str], zones: list[str]) -> PriceBook:
            if not live_prices:
                book = offline_price_book(region)
                book.notes.append("offline prices: on-demand from the bundled catalog; spot nodes priced on demand "
                                  "(--live-prices reads the Pricing API and spot price history)")
                return book
            from provisioner.cloud.aws import ec2_client

            return load_price_book(region, types, start, stop, time.time,
                                   pricing=pricing_client(aws_endpoint_url), ec2=ec2_client(region, aws_endpoint_url))

        with Progress(console=err, transient=True, disable=format != "table") as progress:
            task = progress.add_task("reading Prometheus", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            run = run_cost(prom, start, stop, step_s, by, book_for, tick, use_recorded=recorded_prices)
            whatif = None
            if what_if is not None:
                from autoscaler.cost.whatif import what_if_keda_karpenter

                progress.update(task, description="simulating keda-karpenter", completed=0, total=None)
                whatif = what_if_keda_karpenter(prom, run, scaledobject, tick, pod_rate=pod_rate, slo_s=slo)
    except (CostInputError, PrometheusError) as exc:  # bad options, unreachable Prometheus: one line, exit 2
        typer.echo(f"surge cost: error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(2) from None
    notes = whatif.notes if whatif else []
    if report is not None:
        write_report(report, run, notes, whatif)
    if format == "json":
        out = to_json(run) | {"notes": [*run.prices.notes, *notes]}
        if whatif is not None:
            out["what_if"] = whatif.to_json()
        typer.echo(json.dumps(out, indent=2))
        return
    if format == "csv":
        typer.echo(to_csv(run), nl=False)
        return
    import sys

    console = Console() if sys.stdout.isatty() else Console(width=170)
    console.print(rich_table(run))
    if whatif is not None:
        console.print(whatif.table())
    problems = run.allocation.problems
    for p in problems[:MAX_PRINTED_PROBLEMS]:
        console.print(f"problem: {p}")
    if len(problems) > MAX_PRINTED_PROBLEMS:
        console.print(f"problem: … {len(problems) - MAX_PRINTED_PROBLEMS} more (all in --format json and --report)")
    for n in [*run.prices.notes, *notes]:
        console.print(f"note: {n}")
    if report is not None:
        console.print(f"report: {report / 'cost.html'}")
