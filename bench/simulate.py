"""Simulator benchmarks: speed, the headline cost/SLO table on every shared trace, and ablations.

1. Speed: simulated days per wall second for the first 14 days of the NASA July trace (1-min rows)
   with the three policies (goal: 14 days × 3 policies in ≤ 60 s).
2. Headline: every trace in ../shared/traces (first 14 days where longer), the bundled workload
   (Kafka consumer, KEDA defaults, spot-or-on-demand NodePool, trace scaled so its p99 needs 20
   pods): cost and SLO of surge vs keda-karpenter vs static-peak.
3. Ablations on the bundled trace: surge with each of its mechanisms switched off alone.

Prints the tables and writes docs/benchmarks-simulate.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.simulate.inputs import DEFAULT_TRACE, build_setup, bundled  # noqa: E402
from autoscaler.simulate.policy import Assumptions, policy_named  # noqa: E402
from autoscaler.simulate.run import PolicyResult, scale_for, simulate  # noqa: E402
from autoscaler.simulate.trace import Trace, load_trace  # noqa: E402

FOURTEEN_DAYS = 14 * 86400


def first_days(trace: Trace, seconds: float = FOURTEEN_DAYS) -> Trace:
    return trace.head(seconds)[0]


def run(trace: Trace, policies: list[str]) -> tuple[list[PolicyResult], float]:
    a = Assumptions()
    a = replace(a, scale=scale_for(trace, a))
    setup, _ = build_setup(assumptions=a)
    start = time.perf_counter()
    results = [simulate(trace, setup, policy_named(p), a) for p in policies]
    return results, time.perf_counter() - start


def ratio(x: float, y: float) -> str:
    return f"{x / y:.2f}" if y else "–"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    args = parser.parse_args()
    out = [f"# Simulator\n\nMeasured by `bench/simulate.py` ({platform.machine()}, Python "
           f"{platform.python_version()}, one process). Workload: the bundled Kafka consumer "
           "(`autoscaler/data/sim-*.yaml`), default assumptions (`surge simulate --help`).\n"]

    speed = first_days(load_trace(args.traces / "nasa_ksc_http_1995-07_1min.csv"))
    results, wall = run(speed, ["static-peak", "keda-karpenter", "surge"])
    days = speed.span / 86400
    line = (f"| {speed.name} (first {days:.0f} d, 1-min rows, 5 s tick) | 3 | {wall:.1f} | "
            f"{days * 3 / wall:.2f} | {'met' if wall <= 60 else 'not met'} |")
    out += ["## Speed (goal: 14 days × 3 policies in ≤ 60 s)\n",
            "| trace | policies | wall s | simulated policy-days / wall s | goal |",
            "|---|---:|---:|---:|---|", line, ""]
    print("\n".join(out[-5:]))

    rows = ["| trace | days | surge $ | keda-karpenter $ | static-peak $ | surge ÷ k-k | surge ÷ static | "
            "SLO-min surge / k-k / static | p99 wait s surge / k-k | actions surge / k-k | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|"]
    print("\n".join(rows))
    for path in sorted(args.traces.glob("*.csv")):
        trace = first_days(load_trace(path))
        results, wall = run(trace, ["static-peak", "keda-karpenter", "surge"])
        sp, kk, su = results
        row = (f"| {trace.name} | {trace.span / 86400:.2f} | {su.cost_usd:,.2f} | {kk.cost_usd:,.2f} | "
               f"{sp.cost_usd:,.2f} | {ratio(su.cost_usd, kk.cost_usd)} | {ratio(su.cost_usd, sp.cost_usd)} | "
               f"{su.slo_violation_minutes} / {kk.slo_violation_minutes} / {sp.slo_violation_minutes} | "
               f"{su.wait_p99_s:g} / {kk.wait_p99_s:g} | {su.scaling_actions} / {kk.scaling_actions} | {wall:.1f} |")
        rows.append(row)
        print(row, flush=True)
    out += ["## Headline: every shared trace (first 14 days where longer)\n",
            "Goals: surge ≤ 0.70 × keda-karpenter cost at equal or better SLO-minutes; ≤ 0.35 × static-peak.\n",
            *rows, ""]

    trace = load_trace(bundled(DEFAULT_TRACE))
    names = ["keda-karpenter", "surge", "surge-no-events", "surge-no-packer", "surge-no-spot", "surge-no-together",
             "surge-no-forecast"]
    results, _ = run(trace, names)
    base = results[0]
    abl = ["| policy | cost $ | × keda-karpenter | SLO-min | p99 wait s | node launches | pod moves |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        abl.append(f"| {r.policy} | {r.cost_usd:,.2f} | {ratio(r.cost_usd, base.cost_usd)} | "
                   f"{r.slo_violation_minutes} | {r.wait_p99_s:g} | {r.node_launches} | {r.pod_moves} |")
    print("\n".join(abl))
    out += [f"## What each surge mechanism is worth ({trace.name}, 14 days)\n", *abl, ""]
    (ROOT / "docs" / "benchmarks-simulate.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
