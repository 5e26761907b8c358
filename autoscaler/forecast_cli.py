"""`surge forecast TRACE.csv`: fit, backtest and compare the forecasting models on a trace."""

from __future__ import annotations

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
    horizon: str | None = typer.Option(None, "--horizon", help="comma-separated horizons, whole steps "
                                       "(default: those of 5m,15m,1h that are)"),
    step: str | None = typer.Option(None, "--step", help="resample to this step (default: 5m, or the trace's)"),
    days: float = typer.Option(14.0, "--days", help="use the first N days"),
    plot: Path | None = typer.Option(None, "--plot", help="write history + forecast + 80% interval as HTML"),  # noqa: B008
    format: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Backtest naive, seasonal naive, Holt-Winters, robust Holt-Winters, STL+ETS, ARIMA + Fourier (and
    MSTL+ETS with a weekly season): choose on one split, score on the next; print MASE, sMAPE, 80% coverage,
    warm fit time and reliability."""
    from autoscaler.forecast.forecaster import Declined, HorizonError, fit_forecaster, horizon_steps, prepare
    from autoscaler.simulate.trace import TraceError, load_trace

    try:
        if format not in ("text", "json"):
            raise ValueError(f"--format: expected text or json, got {format!r}")
        if not days > 0:
            raise ValueError(f"--days: expected a positive number of days, got {days!r}")
        tr = load_trace(trace, trace_kind)
        step_s = parse_durations(step)[0] if step else max(tr.interval, 300.0 if tr.span > 86400 else 60.0)
        if horizon is None:  # the defaults the step allows
            horizons = [h for h in (300.0, 900.0, 3600.0) if h >= step_s and abs(h / step_s - round(h / step_s)) < 1e-9]
            horizons = horizons or [step_s]
        else:
            horizons = parse_durations(horizon)
        for h in horizons:
            horizon_steps(h, step_s)
        tr, cut_note = tr.head(days * 86400)
        y = resample(tr.counts, tr.interval, step_s)
    except (TraceError, HorizonError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    notes = tr.all_notes() + ([cut_note] if cut_note else [])
    if format != "json":
        for n in notes:
            typer.echo(f"note: {n}", err=True)
    out: dict[str, object] = {"trace": tr.name, "trace_kind": tr.kind, "step_s": step_s, "points": len(y),
                              "notes": notes}
    try:
        y = prepare(y, step_s=step_s)
        f = fit_forecaster(y, step_s, horizons)
    except Declined as exc:
        out |= {"declined": str(exc), "scores": [], "selected": None}
        typer.echo(json.dumps(out, indent=2) if format == "json" else f"declined: {exc}")
        raise typer.Exit(0) from None
    out |= {"period_steps": f.period, "periods_steps": list(f.periods), "selected": f.model,
            "reliable": any(f.reliable.values()), "split_steps": f.split, "interval_power": round(f.power, 4),
            "reliability": [{"horizon_s": k * step_s, "reliable": f.reliable[k], "why_not": f.reasons.get(k, "")}
                            for k in sorted(f.reliable)],
            "scores": [{"model": s.model, "horizon_s": s.horizon_s, "mase": round(s.mase, 4),
                        "smape": round(s.smape, 4), "coverage_80": round(s.coverage_80, 4),
                        "fit_seconds": round(s.fit_seconds, 4)} for s in f.scores]}
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(_plot_html(tr.name, y, step_s, f, max(horizons), tr.start))
    if format == "json":
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{tr.name}: step {step_s:g} s, seasons {list(f.periods)} steps, selected {f.model}, "
                    f"interval spread ∝ forecast^{f.power:.2f}"
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


def _plot_html(name: str, y: np.ndarray, step_s: float, f: Forecaster, horizon_s: float, start: float) -> str:
    """History, forecast and its 80 % interval on one time axis (the shared report look)."""
    from autoscaler.htmlpage import Line, Section, line_chart, paragraph, render_page

    steps = max(1, round(horizon_s / step_s))
    history = y[-max(2 * f.period, 4 * steps):]
    n0 = len(history)
    points, lo, hi = [], [], []
    for k in range(1, steps + 1):
        fc = predict(f, y, k * step_s, (0.1, 0.9))
        points.append(fc.point or 0.0)
        lo.append(fc.quantiles.get(0.1, 0.0))
        hi.append(fc.quantiles.get(0.9, 0.0))
    xs_hist = [i * step_s for i in range(n0)]
    xs_fc = [(n0 - 1 + k) * step_s for k in range(1, steps + 1)]
    chart = line_chart(f"{name}: the last {n0} steps and the next {steps}", [
        Line("history", xs_hist, list(map(float, history)), "#777777", 1.2),
        Line("forecast", xs_fc, points, "#1f77b4", 2.2),
        Line("80 % interval (10th percentile)", xs_fc, lo, "#1f77b4", 1.0, dashed=True),
        Line("80 % interval (90th percentile)", xs_fc, hi, "#1f77b4", 1.0, dashed=True)],
        f"per {step_s:g} s step", start=start + (len(y) - n0) * step_s, span=(n0 + steps) * step_s)
    facts = {"model": f.model, "seasons (steps)": ", ".join(map(str, f.periods)), "step": f"{step_s:g} s",
             "reliable": ", ".join(f"{k * step_s:g} s: {'yes' if ok else 'no — ' + f.reasons.get(k, '')}"
                                   for k, ok in sorted(f.reliable.items()))}
    return render_page("surge forecast", [Section("Forecast", [chart, paragraph(
        "The interval comes from the backtest errors at each horizon (split conformal, relative to the "
        "forecast); its coverage on held-back origins is in the JSON output.")])], subtitle=name,
        facts=facts)
