"""Forecaster accuracy, calibration, reliability and fit time on every shared trace.

Each trace is read with its gaps (NaN) and resampled to the operator's 5-minute step (traces
coarser than that keep their own interval; the two 1-hour Azure traces use 1-minute steps), up to
its first 28 days. Per horizon of 5 min, 15 min and 1 h where the step allows (a whole number of
steps): the selected model, its MASE next to seasonal naive's and naive's (all on the score split,
which never chose the model), sMAPE, 80 % interval coverage (split conformal: calibrated on the
select split, checked on the score split), the selected model's warm fit time on the training
part, and "reliable" or why not. Then the warm fit time for 7 days of 5-minute data (NASA July,
the goal is ≤ 0.2 s), the cold import apart, and the incremental state update per step against a
refit. Prints and writes docs/benchmarks-forecast.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.forecast.forecaster import Declined, fit_forecaster, predict_next, prepare  # noqa: E402
from autoscaler.forecast.models import HoltWinters, StlEts, import_statsmodels  # noqa: E402
from autoscaler.forecast_cli import resample  # noqa: E402
from autoscaler.simulate.trace import load_trace  # noqa: E402

HORIZONS = (300.0, 900.0, 3600.0)
MAX_DAYS = 28


def step_for(interval: float, span: float) -> float:
    return 60.0 if span < 86400 else max(300.0, interval)


def usable(step: float) -> list[float]:
    return [h for h in HORIZONS if h >= step and abs(h / step - round(h / step)) < 1e-9]


def accuracy(traces: Path) -> list[str]:
    rows = ["| trace | days | step | seasons (steps) | horizon | selected | MASE selected | MASE seasonal naive | "
            "MASE naive | sMAPE | 80 % coverage | warm fit s | reliable |",
            "|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    print("\n".join(rows), flush=True)
    for path in sorted(traces.glob("*.csv")):
        tr = load_trace(path)
        step = step_for(tr.interval, tr.span)
        tr = tr.head(MAX_DAYS * 86400)[0]
        days = f"{tr.span / 86400:.1f}"
        hs = usable(step)
        f = None
        while hs and f is None:
            try:
                f = fit_forecaster(prepare(resample(tr.counts, tr.interval, step), step_s=step), step, hs)
            except Declined as exc:
                row = (f"| {tr.name} | {days} | {step:g} s | – | {hs[-1] / 60:g} min | declined: {exc} "
                       "| | | | | | | |")
                rows.append(row)
                print(row, flush=True)
                hs = hs[:-1]  # a shorter horizon may fit a short trace
        if f is None:
            continue
        by = {(s.model, s.horizon_s): s for s in f.scores}
        for h in hs:
            k = round(h / step)
            s, sn, nv = by[f.model, h], by["seasonal-naive", h], by["naive", h]
            verdict = "yes" if f.reliable[k] else f"no: {f.reasons.get(k, '')}"
            row = (f"| {tr.name} | {days} | {step:g} s | {'/'.join(map(str, f.periods))} | {h / 60:g} min | "
                   f"{f.model} | {s.mase:.2f} | {sn.mase:.2f} | {nv.mase:.2f} | {s.smape:.2f} | "
                   f"{s.coverage_80:.2f} | {s.fit_seconds:.2f} | {verdict} |")
            rows.append(row)
            print(row, flush=True)
    return rows


def fit_times(traces: Path) -> list[str]:
    cold = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                           "import statsmodels.tsa.holtwinters, statsmodels.tsa.seasonal; "
                           "print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
    import_statsmodels()
    nasa = load_trace(traces / "nasa_ksc_http_1995-07_1min.csv")
    week = prepare(resample(nasa.counts[: 7 * 1440], nasa.interval, 300.0), step_s=300.0)
    rows = [f"Cold import of statsmodels' forecasting modules (a fresh process): "
            f"{float(cold.stdout):.2f} s — paid once per process, outside every fit time below.", "",
            "| what | points | season | warm wall s (median of 3) |", "|---|---:|---:|---:|"]
    for model in (HoltWinters(), StlEts()):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.fit(week, (288,))
            times.append(time.perf_counter() - start)
        rows.append(f"| {model.name} fit | {len(week)} | 288 | {np.median(times):.3f} |")
    start = time.perf_counter()
    f = fit_forecaster(week, 300.0, [300.0, 900.0, 3600.0])
    whole = time.perf_counter() - start
    rows.append(f"| fit_forecaster (all models, both splits, refit of {f.model}) | {len(week)} | 288 | {whole:.3f} |")
    nxt = prepare(resample(nasa.counts[7 * 1440: 8 * 1440], nasa.interval, 300.0), step_s=300.0)
    start = time.perf_counter()
    for v in nxt:
        f.observe(float(v))
        predict_next(f, 900.0)
    per_step = (time.perf_counter() - start) / len(nxt)
    rows.append(f"| incremental: observe one step + forecast 15 min ({f.model}) | 1 | 288 | {per_step:.6f} |")
    rows += ["", f"A refit costs {f.fit_seconds / per_step:,.0f}× one incremental step: the operator and the "
             "simulator move the fitted state on per step and refit on a schedule."]
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    args = parser.parse_args()
    acc = accuracy(args.traces)
    fits = fit_times(args.traces)
    text = (f"# Forecaster\n\nMeasured by `bench/forecast.py` ({platform.machine()}, Python "
            f"{platform.python_version()}, a 2-core machine shared with other work: times are upper bounds).\n\n"
            + (__doc__ or "").split("\n\n", 1)[1].strip() + "\n\n"
            f"## Accuracy, calibration and reliability (first {MAX_DAYS} days of each trace)\n\n"
            "MASE is on the score split (origins never used to choose the model); a model is reliable at a "
            "horizon when its MASE is at least 5 % below both seasonal naive's and naive's there. "
            "Horizons that are not a whole number of steps are left out (an error in `surge forecast`).\n\n"
            + "\n".join(acc) + "\n\n## Fit time\n\n" + "\n".join(fits) + "\n")
    (ROOT / "docs" / "benchmarks-forecast.md").write_text(text)


if __name__ == "__main__":
    main()
