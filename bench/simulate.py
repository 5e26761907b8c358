"""Simulator benchmarks: speed, the headline cost/SLO table on every shared trace, and ablations.

1. Speed: wall time of the first 14 days of the NASA July trace (1-min rows) and of 28 days of an
   hourly trace (the NYC taxi trace summed to hours), three policies each (goals: ≤ 60 s); and a
   whole year through `surge simulate` as a user runs it (goal: ≤ 5 min): the 215-day NYC taxi
   trace's 30-min rows repeated end to end to 365 days (`year_csv`), the three default policies.
   `--speed-only` runs this part alone and prints it (docs untouched).
2. Headline: every trace in ../shared/traces (first 14 days where longer), the bundled workload
   (Kafka consumer, KEDA defaults, spot-or-on-demand NodePool, trace scaled so its p99 needs 20
   pods): cost and SLO of surge vs keda-karpenter vs static-peak.
3. Ablations on the bundled trace: surge with each of its mechanisms switched off alone.

Prints the tables and writes docs/benchmarks-simulate.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.simulate.inputs import DEFAULT_TRACE, build_setup, bundled  # noqa: E402
from autoscaler.simulate.policy import Assumptions, policy_named  # noqa: E402
from autoscaler.simulate.run import PolicyResult, scale_for, simulate  # noqa: E402
from autoscaler.simulate.trace import Trace, load_trace  # noqa: E402

FOURTEEN_DAYS = 14 * 86400
YEAR = 365 * 86400


def first_days(trace: Trace, seconds: float = FOURTEEN_DAYS) -> Trace:
    return trace.head(seconds)[0]


def run(trace: Trace, policies: list[str]) -> tuple[list[PolicyResult], float]:
    a = Assumptions()
    a = replace(a, scale=scale_for(trace, a))
    setup, _ = build_setup(assumptions=a)
    start = time.perf_counter()
    results = [simulate(trace, setup, policy_named(p), a) for p in policies]
    return results, time.perf_counter() - start


def year_csv(taxi: Trace, path: Path) -> None:
    """A year of 30-min rows: the 215-day NYC taxi trace's rows repeated end to end (numpy.resize)
    up to 365 days, timestamps continuing on its grid; written as CSV for `surge simulate`."""
    counts = np.resize(taxi.counts, int(YEAR / taxi.interval))
    rows = "".join(f"{taxi.start + i * taxi.interval:.0f},{v:g}\n" for i, v in enumerate(counts.tolist()))
    path.write_text("timestamp_seconds,value\n" + rows)


def cli(args: list[str]) -> tuple[float, float, dict[str, Any]]:
    """`surge simulate ARGS --format json` in a fresh process, as a user runs it: wall seconds, CPU
    seconds of it and its workers (more than the wall when policies run side by side; the wall grows
    past it when other processes hold the cores), and its JSON output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "autoscaler.cli", "simulate", *args, "--format", "json"], cwd=ROOT,
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, json.loads(out.stdout)


def speed(traces: Path) -> list[str]:
    out = ["## Speed (goals: 14 days of 1-min rows and 28 days of hourly rows, 3 policies, ≤ 60 s each; "
           "a year ≤ 5 min)\n",
           "| trace | policies | wall s | CPU s | simulated policy-days / wall s | goal |",
           "|---|---:|---:|---:|---:|---|"]
    nasa = first_days(load_trace(traces / "nasa_ksc_http_1995-07_1min.csv"))
    taxi = load_trace(traces / "nab_nyc_taxi_passengers_30min.csv")
    pairs = taxi.counts[: len(taxi.counts) // 2 * 2].reshape(-1, 2).sum(axis=1)
    hourly = Trace("nab_nyc_taxi_passengers summed to 1 h", taxi.start, 3600.0, pairs[: 28 * 24])
    for tr, label in ((nasa, "first 14 d, 1-min rows"), (hourly, "28 d, 1-h rows")):
        cpu0 = time.process_time()
        _, wall = run(tr, ["static-peak", "keda-karpenter", "surge"])
        cpu, days = time.process_time() - cpu0, tr.span / 86400
        out.append(f"| {tr.name} ({label}, 5 s tick, one process) | 3 | {wall:.1f} | {cpu:.1f} | "
                   f"{days * 3 / wall:.2f} | {'met' if wall <= 60 else 'not met'} |")
        print(out[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nyc_taxi_year_30min.csv"
        year_csv(taxi, path)
        wall, cpu, report = cli(["--trace", str(path), "--days", "365"])
    days = report["span_days"]
    out.append(f"| NYC taxi 30-min rows repeated to {days:g} d (`surge simulate --trace <year csv> --days 365`, "
               f"5 s tick, policies side by side) | {len(report['policies'])} | {wall:.1f} | {cpu:.1f} | "
               f"{days * len(report['policies']) / wall:.2f} | {'met' if wall <= 300 else 'not met'} |")
    print(out[-1], flush=True)
    return [*out, ""]


def ratio(x: float, y: float) -> str:
    return f"{x / y:.2f}" if y else "–"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--speed-only", action="store_true", help="print the speed table only")
    args = parser.parse_args()
    if args.speed_only:
        speed(args.traces)
        return
    out = [f"# Simulator\n\nMeasured by `bench/simulate.py` ({platform.machine()}, Python "
           f"{platform.python_version()}, one process). Workload: the bundled Kafka consumer "
           "(`autoscaler/data/sim-*.yaml`), default assumptions (`surge simulate --help`).\n"]

    out += speed(args.traces)

    policies = ["static-peak", "static-peak-on-demand", "keda-karpenter", "surge"]
    rows = ["| trace | days | surge $ | keda-karpenter $ | static-peak $ | static-peak-on-demand $ | surge ÷ k-k | "
            "surge ÷ static-peak | SLO-min steady surge / k-k | SLO-min cold start surge / k-k | "
            "p99 wait s surge / k-k | actions surge / k-k | goal | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---:|"]
    print("\n".join(rows))
    for path in sorted(args.traces.glob("*.csv")):
        trace = first_days(load_trace(path))
        results, wall = run(trace, policies)
        sp, spod, kk, su = results

        def steady(r: PolicyResult) -> int:
            return r.slo_violation_minutes - r.slo_cold_minutes

        met = su.cost_usd <= 0.70 * kk.cost_usd and su.slo_violation_minutes <= kk.slo_violation_minutes
        row = (f"| {trace.name} | {trace.span / 86400:.2f} | {su.cost_usd:,.2f} | {kk.cost_usd:,.2f} | "
               f"{sp.cost_usd:,.2f} | {spod.cost_usd:,.2f} | {ratio(su.cost_usd, kk.cost_usd)} | "
               f"{ratio(su.cost_usd, sp.cost_usd)} | {steady(su)} / {steady(kk)} | "
               f"{su.slo_cold_minutes} / {kk.slo_cold_minutes} | {su.wait_p99_s:g} / {kk.wait_p99_s:g} | "
               f"{su.scaling_actions} / {kk.scaling_actions} | {'met' if met else 'not met'} | {wall:.1f} |")
        rows.append(row)
        print(row, flush=True)
    out += ["## Headline: every shared trace (first 14 days where longer)\n",
            "Goal: surge ≤ 0.70 × keda-karpenter cost with no more SLO minutes. SLO minutes are minutes in "
            "which some work waited longer than the SLO (60 s); *cold start* ones are minutes whose work "
            "arrived while no pod was ready, *steady* the rest.\n",
            *rows, ""]

    trace = load_trace(bundled(DEFAULT_TRACE))
    names = ["keda-karpenter", "surge", "surge-no-events", "surge-no-packer", "surge-no-spot", "surge-no-together",
             "surge-no-forecast", "surge-no-predictive", "surge-no-deletion-cost", "surge-no-handover",
             "surge-no-spot-resize", "surge-no-repack", "surge-no-follow-work",
             "surge-no-saturated-hold"]
    results, _ = run(trace, names)
    base = results[0]
    abl = ["| policy | cost $ | × keda-karpenter | SLO-min | p99 wait s | node launches | pod moves |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        abl.append(f"| {r.policy} | {r.cost_usd:,.2f} | {ratio(r.cost_usd, base.cost_usd)} | "
                   f"{r.slo_violation_minutes} | {r.wait_p99_s:g} | {r.node_launches} | {r.pod_moves} |")
    print("\n".join(abl))
    out += [f"## What each surge mechanism is worth ({trace.name}, 14 days)\n", *abl, ""]
    doc = ROOT / "docs" / "benchmarks-simulate.md"
    doc.write_text("\n".join(out) + kept_analysis(doc))


ANALYSIS = "## Where surge falls short, and why"


def kept_analysis(doc: Path) -> str:
    """The hand-written analysis at the end of the page (from ANALYSIS on) survives a re-run: it
    reads the tables, it is not generated from them."""
    text = doc.read_text() if doc.exists() else ""
    at = text.find(ANALYSIS)
    return "\n" + text[at:] if at >= 0 else ""


if __name__ == "__main__":
    main()
