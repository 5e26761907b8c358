"""Forecaster accuracy and fit time on every shared trace.

Each trace is resampled to the operator's cadence: 5-minute steps (1-minute steps for the two
1-hour Azure traces; coarser traces keep their own interval), first 14 days. For each: the
detected season, the selected model, MASE (vs the in-sample seasonal naive scale) of the selected
model and of seasonal naive at 1, 5, 15 and 60 min (horizons shorter than the step are '–'), 80 %
interval coverage, and the fit time of the selected model for 7 days of 5-minute data (NASA July).
Goals: MASE < 0.8 on the diurnal traces at 5–15 min; coverage 75–85 %; fit ≤ 1 s on one core.
Prints and writes docs/benchmarks-forecast.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.forecast.forecaster import Declined, fit_forecaster, prepare  # noqa: E402
from autoscaler.forecast.models import HoltWinters, StlEts  # noqa: E402
from autoscaler.forecast_cli import resample  # noqa: E402
from autoscaler.simulate.trace import load_trace  # noqa: E402

HORIZONS = (60.0, 300.0, 900.0, 3600.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    args = parser.parse_args()
    header = ("| trace | step | season (steps) | selected | MASE 1/5/15/60 min (selected) | "
              "MASE 1/5/15/60 min (seasonal naive) | 80 % coverage 1/5/15/60 | backtest wall s |")
    rows = [header, "|---|---:|---:|---|---|---|---|---:|"]
    print("\n".join(rows))
    for path in sorted(args.traces.glob("*.csv")):
        tr = load_trace(path)
        step = 60.0 if tr.span < 86400 else max(300.0, tr.interval)
        y = resample(tr.counts[: int(14 * 86400 / tr.interval)], tr.interval, step)
        usable = [h for h in HORIZONS if h >= step]
        start = time.perf_counter()
        try:
            f = fit_forecaster(prepare(y), step, usable)
        except Declined as exc:
            row = f"| {tr.name} | {step:g} s | – | declined: {exc} | | | | |"
            rows.append(row)
            print(row, flush=True)
            continue
        wall = time.perf_counter() - start

        def cell(model: str, what: str, f=f) -> str:
            by = {s.horizon_s: s for s in f.scores if s.model == model}
            return " / ".join(f"{getattr(by[h], what):.2f}" if h in by else "–" for h in HORIZONS)

        row = (f"| {tr.name} | {step:g} s | {f.period} | {f.model} | {cell(f.model, 'mase')} | "
               f"{cell('seasonal-naive', 'mase')} | {cell(f.model, 'coverage_80')} | {wall:.1f} |")
        rows.append(row)
        print(row, flush=True)

    nasa = load_trace(args.traces / "nasa_ksc_http_1995-07_1min.csv")
    week = prepare(resample(nasa.counts[: 7 * 1440], nasa.interval, 300.0))
    fits = ["| model | points | season | fit CPU s (one core) |", "|---|---:|---:|---:|"]
    for model in (HoltWinters(), StlEts()):
        start = time.process_time()
        model.fit(week, 288)
        fits.append(f"| {model.name} | {len(week)} | 288 | {time.process_time() - start:.2f} |")
    print("\n".join(fits))
    text = (f"# Forecaster\n\nMeasured by `bench/forecast.py` ({platform.machine()}, Python "
            f"{platform.python_version()}).\n\n## Accuracy (first 14 days of each trace)\n\n" + "\n".join(rows)
            + "\n\n## Fit time: 7 days of 5-minute data (NASA July), season 1 day\n\n" + "\n".join(fits) + "\n")
    (ROOT / "docs" / "benchmarks-forecast.md").write_text(text)


if __name__ == "__main__":
    main()
