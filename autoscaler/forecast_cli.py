"""`surge forecast TRACE.csv`: fit, backtest and compare the forecasting models on a trace."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import typer

from autoscaler.forecast.forecaster import Forecaster, predict


def resample(counts: np.ndarray, interval: float, step_s: float) -> np.ndarray:
    """Counts per `step_s`, which must be a whole multiple of the trace interval (else ValueError).
    Missing intervals (NaN) are gaps: a step with at most half of its intervals missing is their
    mean × the intervals per step; one with more missing stays NaN (a gap for the forecaster)."""
    ratio = step_s / interval
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(f"step {step_s:g} s is not a whole multiple of the trace's {interval:g}-s interval")
    k = round(ratio)
    n = len(counts) // k * k
    blocks = counts[:n].reshape(-1, k)
    present = np.isfinite(blocks).sum(axis=1)
    total = np.nansum(blocks, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present * 2 >= k, total / np.maximum(present, 1) * k, np.nan)


def parse_durations(text: str) -> list[float]:
    from autoscaler.manifests.keda import duration_seconds

    return [duration_seconds(part.strip()) for part in text.split(",") if part.strip()]


def forecast(
    trace: Path = typer.Argument(..., help="CSV timestamp_seconds,value"),  # noqa: B008
    trace_kind: str | None = typer.Option(None, "--trace-kind", help="count, rate or utilisation"),
    horizon: str = typer.Option("5m,15m,1h", "--horizon", help="comma-separated horizons"),
    step: str | None = typer.Option(None, "--step", help="resample to this step (default: 5m, or the trace's)"),
    days: float = typer.Option(14.0, "--days", help="use the first N days"),
    plot: Path | None = typer.Option(None, "--plot", help="write history + forecast + 80% interval as HTML"),  # noqa: B008
    format: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Backtest naive, seasonal naive, Holt-Winters, STL+ETS (and MSTL+ETS with a weekly season): choose on
    one split, score on the next; print MASE, sMAPE, 80% coverage, warm fit time and reliability."""
    from autoscaler.forecast.forecaster import Declined, HorizonError, fit_forecaster, horizon_steps, prepare
    from autoscaler.simulate.trace import TraceError, load_trace

    try:
        tr = load_trace(trace, trace_kind)
        step_s = parse_durations(step)[0] if step else max(tr.interval, 300.0 if tr.span > 86400 else 60.0)
        horizons = parse_durations(horizon)
        for h in horizons:
            horizon_steps(h, step_s)
        y = resample(tr.head(days * 86400)[0].counts, tr.interval, step_s)
    except (TraceError, HorizonError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    out: dict[str, object] = {"trace": tr.name, "step_s": step_s, "points": len(y)}
    try:
        y = prepare(y, step_s=step_s)
        f = fit_forecaster(y, step_s, horizons)
    except Declined as exc:
        out |= {"declined": str(exc), "scores": [], "selected": None}
        typer.echo(json.dumps(out, indent=2) if format == "json" else f"declined: {exc}")
        raise typer.Exit(0) from None
    out |= {"period_steps": f.period, "periods_steps": list(f.periods), "selected": f.model,
            "reliable": any(f.reliable.values()), "split_steps": f.split,
            "reliability": [{"horizon_s": k * step_s, "reliable": f.reliable[k], "why_not": f.reasons.get(k, "")}
                            for k in sorted(f.reliable)],
            "scores": [{"model": s.model, "horizon_s": s.horizon_s, "mase": round(s.mase, 4),
                        "smape": round(s.smape, 4), "coverage_80": round(s.coverage_80, 4),
                        "fit_seconds": round(s.fit_seconds, 4)} for s in f.scores]}
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(_plot_html(tr.name, y, step_s, f, max(horizons)))
    if format == "json":
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{tr.name}: step {step_s:g} s, seasons {list(f.periods)} steps, selected {f.model}"
                    + ("" if any(f.reliable.values()) else f" (unreliable: {f.reason})"))
    for col in ("model", "horizon", "MASE", "sMAPE", "80% coverage", "fit s"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for s in f.scores:
        t.add_row(s.model, f"{s.horizon_s:g} s", f"{s.mase:.3f}", f"{s.smape:.3f}", f"{s.coverage_80:.2f}",
                  f"{s.fit_seconds:.2f}")
    console = Console()
    console.print(t)
    for k in sorted(f.reliable):
        console.print(f"{k * step_s:g} s: " + ("reliable" if f.reliable[k] else f"not reliable: {f.reasons.get(k)}"))


def _plot_html(name: str, y: np.ndarray, step_s: float, f: Forecaster, horizon_s: float) -> str:
    steps = max(1, round(horizon_s / step_s))
    history = y[-max(2 * f.period, 4 * steps):]
    points, lo, hi = [], [], []
    for k in range(1, steps + 1):
        fc = predict(f, y, k * step_s, (0.1, 0.9))
        points.append(fc.point or 0.0)
        lo.append(fc.quantiles.get(0.1, 0.0))
        hi.append(fc.quantiles.get(0.9, 0.0))
    w, h = 900, 260
    total = len(history) + steps
    y_max = max(float(history.max()), max(hi, default=0.0)) * 1.05 or 1.0

    def xy(i: int, v: float) -> str:
        return f"{i / total * w:.1f},{h - v / y_max * h:.1f}"

    hist = " ".join(xy(i, v) for i, v in enumerate(history))
    n0 = len(history)
    band = " ".join([xy(n0 + i, v) for i, v in enumerate(hi)] + [xy(n0 + i, v) for i, v in reversed(
        list(enumerate(lo)))])
    line = " ".join(xy(n0 + i, v) for i, v in enumerate(points))
    return (f"<!doctype html><meta charset='utf-8'><title>surge forecast</title><h2>{html.escape(name)}</h2>"
            f"<p>{html.escape(f.model)}, season {f.period} steps of {step_s:g} s; grey: history, blue: forecast, "
            f"band: 80% interval (backtest errors)</p><svg width='{w}' height='{h}' style='border:1px solid #ddd'>"
            f"<polyline fill='none' stroke='#777' points='{hist}'/><polygon fill='#1f77b4' fill-opacity='0.2' "
            f"points='{band}'/><polyline fill='none' stroke='#1f77b4' stroke-width='2' points='{line}'/></svg>")
