"""Choose a model by rolling-origin backtest and forecast with intervals — or decline, with a reason.

Pure: arrays in, dataclasses out; no clock, no I/O. The operator calls `fit_forecaster` on a
schedule off the event loop and `predict` on every poll.

MASE here is Hyndman's: mean absolute error at the horizon divided by the in-sample mean absolute
error of the seasonal naive one-step forecast. A model is *reliable* when its backtest MASE at the
horizon is below seasonal naive's own MASE there: otherwise forecasting is not worth trusting.
Intervals are empirical: quantiles of the backtest errors at each horizon (conformal-style), so
their coverage is checked on origins that did not calibrate them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autoscaler.forecast.models import MODELS, Fitted, Model

MIN_POINTS = 48
MAX_GAP_FRACTION = 0.1


class Declined(ValueError):
    """The history cannot support a forecast; the message says why (shown in status)."""


def prepare(values: Sequence[float] | np.ndarray, timestamps: Sequence[float] | None = None,
            step_s: float | None = None) -> np.ndarray:
    """A clean, evenly spaced series, or Declined. Short gaps are interpolated; long ones decline."""
    y = np.asarray(values, dtype=float)
    if timestamps is not None:
        t = np.asarray(timestamps, dtype=float)
        if len(t) != len(y):
            raise Declined(f"{len(t)} timestamps for {len(y)} values")
        back = np.nonzero(np.diff(t) <= 0)[0]
        if len(back):
            raise Declined(f"clock jump: timestamp {t[back[0] + 1]:g} at index {back[0] + 1} does not advance")
        if step_s is None:
            raise Declined("timestamps given without a step")
        slots = np.round((t - t[0]) / step_s).astype(int)
        grid = np.full(int(slots[-1]) + 1, np.nan)
        grid[slots] = y
        y = grid
    if len(y) < MIN_POINTS:
        raise Declined(f"short history: {len(y)} points, need at least {MIN_POINTS}")
    missing = ~np.isfinite(y)
    if missing.mean() > MAX_GAP_FRACTION:
        raise Declined(f"gappy history: {missing.mean():.0%} of points missing (NaN or absent), "
                       f"at most {MAX_GAP_FRACTION:.0%} allowed")
    if missing.any():
        idx = np.arange(len(y))
        y = y.copy()
        y[missing] = np.interp(idx[missing], idx[~missing], y[~missing])
    if np.all(y == 0):
        raise Declined("all-zero history: nothing to forecast")
    if np.ptp(y) == 0:
        raise Declined(f"constant history ({y[0]:g}): nothing to forecast")
    return np.maximum(y, 0.0)


def detect_period(y: np.ndarray, step_s: float) -> int:
    """The strongest of 1 h, 1 d, 7 d (in steps) that repeats at least twice and is a real peak of
    the autocorrelation: higher at the period than at half of it. (A smooth series correlates at
    any short lag; only a cycle correlates more a full period away than half a period away.)"""
    centred = y - y.mean()
    denom = float(np.dot(centred, centred))

    def acf(lag: int) -> float:
        return float(np.dot(centred[lag:], centred[:-lag])) / denom if 0 < lag < len(y) else 0.0

    best, best_strength = 1, 0.1
    for seconds in (3600, 86400, 7 * 86400):
        m = round(seconds / step_s)
        if m < 4 or 2 * m > len(y):
            continue
        strength = acf(m) - acf(m // 2)
        if acf(m) > 0.2 and strength > best_strength:
            best, best_strength = m, strength
    return best


@dataclass(frozen=True)
class Score:
    model: str
    horizon_s: float
    mase: float
    smape: float
    coverage_80: float
    fit_seconds: float


@dataclass
class Forecaster:
    """A fitted model plus what its backtest said, ready to predict from newer history."""

    fitted: Fitted
    baseline: Fitted
    period: int
    step_s: float
    scores: list[Score]  # every model × horizon, for reports
    errors: dict[int, np.ndarray] = field(default_factory=dict)  # horizon steps → backtest errors
    reliable: dict[int, bool] = field(default_factory=dict)
    reason: str = ""

    @property
    def model(self) -> str:
        return self.fitted.name


@dataclass(frozen=True)
class Forecast:
    model: str | None
    horizon_s: float
    point: float | None
    quantiles: dict[float, float]
    reliable: bool
    reason: str


def _mase_scale(y: np.ndarray, period: int) -> float:
    m = period if period > 1 else 1
    diffs = np.abs(y[m:] - y[:-m])
    scale = float(diffs.mean()) if len(diffs) else 0.0
    return scale if scale > 0 else float(np.abs(np.diff(y)).mean() or 1.0)


def _backtest(fit: Fitted, y: np.ndarray, origins: np.ndarray, steps: int) -> np.ndarray:
    """errors[i, h-1] = actual − forecast for origin i at horizon h."""
    errs = np.empty((len(origins), steps))
    for i, o in enumerate(origins):
        errs[i] = y[o:o + steps] - fit.forecast_from(y[:o], steps)
    return errs


def fit_forecaster(y: np.ndarray, step_s: float, horizons_s: Sequence[float],
                   models: Sequence[Model] = MODELS, origins: int = 96) -> Forecaster:
    """Fit every model on the training part, backtest from `origins` rolling origins in the last part,
    and keep the one with the lowest mean MASE over the horizons."""
    steps_for = {h: max(1, round(h / step_s)) for h in horizons_s}
    max_steps = max(steps_for.values())
    period = detect_period(y, step_s)
    test = max(period, 4 * max_steps, origins)
    train_end = len(y) - test - max_steps
    if train_end < max(MIN_POINTS // 2, 2 * period if period > 1 else 0):
        raise Declined(f"short history: {len(y)} points cannot hold training, a {test}-point backtest and the "
                       f"{max_steps}-step horizon")
    train = y[:train_end]
    origin_idx = np.linspace(train_end, len(y) - max_steps, origins).astype(int)
    scale = _mase_scale(train, period)
    scores: list[Score] = []
    results: dict[str, tuple[Fitted, np.ndarray, float]] = {}
    for model in models:
        start = time.process_time()
        fitted = model.fit(train, period)
        fit_s = time.process_time() - start
        errs = _backtest(fitted, y, origin_idx, max_steps)
        results[model.name] = (fitted, errs, fit_s)
    half = len(origin_idx) // 2
    for name, (_, errs, fit_s) in results.items():
        for h_s, k in steps_for.items():
            e = errs[:, k - 1]
            actual = y[origin_idx + k - 1]
            denom = np.abs(actual) + np.abs(actual - e)
            smape = float(np.mean(np.where(denom > 0, 2 * np.abs(e) / np.where(denom > 0, denom, 1), 0)))
            lo, hi = np.quantile(e[:half], [0.1, 0.9])
            coverage = float(np.mean((e[half:] >= lo) & (e[half:] <= hi)))
            scores.append(Score(name, h_s, float(np.mean(np.abs(e)) / scale), smape, coverage, fit_s))
    mean_mase = {name: float(np.mean([s.mase for s in scores if s.model == name])) for name in results}
    best = min(mean_mase, key=lambda n: mean_mase[n])
    baseline_name = models[0].name
    # refit the chosen model on all the data for use; keep its backtest errors for intervals
    chosen_fit = next(m for m in models if m.name == best).fit(y, period)
    base_fit = models[0].fit(y, period)
    reliable = {}
    for h_s, k in steps_for.items():
        mine = next(s.mase for s in scores if s.model == best and s.horizon_s == h_s)
        base = next(s.mase for s in scores if s.model == baseline_name and s.horizon_s == h_s)
        reliable[k] = best != baseline_name and mine < base
    errors = {k: results[best][1][:, k - 1] for k in steps_for.values()}
    reason = "" if any(reliable.values()) else (
        f"no model beats {baseline_name} in the backtest (MASE {mean_mase[best]:.2f} vs "
        f"{mean_mase[baseline_name]:.2f})")
    return Forecaster(chosen_fit, base_fit, period, step_s, scores, errors, reliable, reason)


def predict(f: Forecaster, y: np.ndarray, horizon_s: float, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> Forecast:
    """The forecast `horizon_s` after the end of `y` (history from where the fit started)."""
    k = max(1, round(horizon_s / f.step_s))
    known = sorted(f.errors)
    if not known:
        return Forecast(None, horizon_s, None, {}, False, "no backtest")
    use = min(known, key=lambda s: (abs(s - k), s))  # the nearest backtested horizon
    point = float(f.fitted.forecast_from(y, k)[-1])
    errs = f.errors[use]
    qs = {q: max(0.0, point + float(np.quantile(errs, q))) for q in quantiles}
    reliable = f.reliable.get(use, False)
    reason = "" if reliable else (f.reason or f"{f.model} does not beat seasonal naive at {use * f.step_s:g} s")
    return Forecast(f.model, horizon_s, max(0.0, point), qs, reliable, reason)


def quantile_value(fc: Forecast, q: float) -> float | None:
    """The forecast at quantile q (interpolating between the computed ones)."""
    if not fc.quantiles:
        return fc.point
    qs = sorted(fc.quantiles)
    vals = [fc.quantiles[x] for x in qs]
    return float(np.interp(q, qs, vals)) if not math.isnan(q) else None
