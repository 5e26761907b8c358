"""Choose a model on one backtest split, score it on the next, forecast with calibrated intervals —
or decline, with a reason and the history that would be needed.

Pure: arrays in, dataclasses out; no clock (fit times are measured, not used), no I/O. The operator
calls `fit_forecaster` on a schedule off the event loop and `predict_next` on every poll.

The history is cut in three, in time order: **training** | **select** | **score** (+ the horizon).
- Seasons are detected on the training part only (`detect_seasons`: the autocorrelation at the
  hourly, daily and weekly lags the step allows must be a real peak). The largest season whose two
  cycles fit in training is used; if it does not fit, the next one is tried, then none. Select and
  score are up to a day each (a week each for a weekly season), an origin at every step.
- Every model is fitted once on training, then run forward with its parameters fixed; rolling
  origins in the *select* split choose the model (lowest mean MASE over the horizons), and only the
  *score* split's origins — never used to choose — give the scores reported and the reliability.
  With a weekly season and two weekly cycles of training (plus a day), a weekly Holt-Winters and
  MSTL + ETS (daily + weekly) join the candidates.
- MASE is Hyndman's: mean absolute error at the horizon over the in-sample mean absolute error of
  the one-step seasonal naive forecast on training (shortest season; naive without one).
- A model is **reliable** at a horizon when, on the score split, its MASE is at least `MARGIN`
  (5 %) below both seasonal naive's and naive's there. Seasonal naive itself is never "reliable":
  predictive mode stays off and the reason says by how much it missed.
- Intervals are conformal per horizon on a rolling window: an error is scaled by its forecast to
  the power `power` (Taylor's law: a count's spread grows like its mean to a power between 0 and
  1 — ½ for Poisson arrivals, 1 for a purely multiplicative noise), `power` estimated by
  regressing log |error| on log forecast over the *select* origins. An interval at an origin uses
  the quantiles (finite-sample corrected) of the last `CAL_WINDOW` scaled errors whose targets
  were already observed then — the select split's at first, then the score split's own as they
  mature — so the width follows a noisier or a quieter day instead of keeping the select day's.
  `coverage_80` is that interval's hit rate on the score origins. The forecaster keeps the window
  and `observe` extends it with each matured live error.
- A horizon must be a whole number of steps (`HorizonError` otherwise: resample the series or
  ask for a multiple). Gaps (NaN) up to `MAX_GAP_S` are interpolated by `prepare`; a longer one,
  or more than `MAX_GAP_FRACTION` missing, declines with the gap named.
- A series holding three days of a daily cycle is never declined: two days train, the third is
  split between selection and scoring. A decline for short history says how much is needed.
- The chosen model's state after the history is kept: `observe`/`catch_up` move it on one step at
  a time and `predict_next` forecasts from it (the operator and the simulator, per step).
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autoscaler.forecast.models import (
    MODELS,
    Fitted,
    HoltWinters,
    Model,
    MstlEts,
    Naive,
    SeasonalNaive,
    State,
    import_statsmodels,
    run_state,
)

MIN_POINTS = 48
MAX_GAP_FRACTION = 0.1
MAX_GAP_S = 3600.0  # longest gap interpolated when the step is known (else MAX_GAP_STEPS)
MAX_GAP_STEPS = 12
MARGIN = 0.05  # reliable: MASE at least 5 % below seasonal naive's and naive's on the score split
INTERVAL_FLOOR = 0.1  # relative errors are taken against at least 10 % of the training mean
MIN_SPLIT = 8  # origins' span per split, in steps, at the least
CAL_WINDOW = 288  # scaled errors per horizon the intervals are taken from (a day of 5-minute steps)
HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0


class Declined(ValueError):
    """The history cannot support a forecast; the message says why (shown in status)."""


class HorizonError(Declined):
    """A horizon that is not a whole number of the series' steps."""


def prepare(values: Sequence[float] | np.ndarray, timestamps: Sequence[float] | None = None,
            step_s: float | None = None) -> np.ndarray:
    """A clean, evenly spaced series, or Declined. Leading gaps are dropped, short gaps interpolated,
    a long one declines with its place and length."""
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
    missing = ~np.isfinite(y)
    if missing.any() and not missing.all():
        y, missing = y[int(np.argmax(~missing)):], missing[int(np.argmax(~missing)):]
    if len(y) < MIN_POINTS:
        raise Declined(f"short history: {len(y)} points, need at least {MIN_POINTS}")
    if missing.mean() > MAX_GAP_FRACTION:
        raise Declined(f"gappy history: {missing.mean():.0%} of points missing (NaN or absent), "
                       f"at most {MAX_GAP_FRACTION:.0%} allowed")
    if missing.any():
        longest = max(_nan_runs(missing), key=lambda r: r[1] - r[0])
        limit = max(1, int(MAX_GAP_S // step_s)) if step_s else MAX_GAP_STEPS
        length = longest[1] - longest[0]
        if length > limit:
            where = "at the end" if longest[1] == len(y) else f"at step {longest[0]} of {len(y)}"
            span = f" ({length * step_s / 3600:.3g} h)" if step_s else ""
            raise Declined(f"gap of {length} missing steps{span} {where}: at most {limit} are interpolated")
        idx = np.arange(len(y))
        y = y.copy()
        y[missing] = np.interp(idx[missing], idx[~missing], y[~missing])
    if np.all(y == 0):
        raise Declined("all-zero history: nothing to forecast")
    if np.ptp(y) == 0:
        raise Declined(f"constant history ({y[0]:g}): nothing to forecast")
    return np.maximum(y, 0.0)


def _nan_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True))


# --- seasons --------------------------------------------------------------------------------------

def candidate_periods(step_s: float) -> list[int]:
    """Weekly, daily and hourly seasons in steps (largest first), where the step allows them."""
    out = []
    for seconds in (WEEK, DAY, HOUR):
        m = round(seconds / step_s)
        if m >= 4 and abs(m * step_s - seconds) <= 0.01 * seconds:
            out.append(m)
    return out


def detect_seasons(y: np.ndarray, step_s: float) -> tuple[int, ...]:
    """The candidate seasons that are real peaks of the autocorrelation of `y` (largest first).

    A season of m steps is real when the autocorrelation at m exceeds 0.2 and exceeds the one at
    m/2 by 0.1: a smooth series correlates at any short lag, only a cycle correlates more a full
    period away than half a period away. A weekly season must also be a peak among the day
    multiples: correlate more at 7 days than at 6 and at 8 (a daily cycle alone repeats at all three)."""
    centred = y - y.mean()
    denom = float(np.dot(centred, centred)) or 1.0

    def acf(lag: int) -> float:
        return float(np.dot(centred[lag:], centred[:-lag])) / denom if 0 < lag < len(y) else 0.0

    found = []
    day = round(DAY / step_s)
    for m in candidate_periods(step_s):
        if 2 * m > len(y) or acf(m) <= 0.2 or acf(m) - acf(m // 2) <= 0.1:
            continue
        if m == round(WEEK / step_s) and acf(m) <= max(acf(6 * day), acf(8 * day)) + 0.03:
            continue
        found.append(m)
    return tuple(found)


def detect_period(y: np.ndarray, step_s: float) -> int:
    """The largest detected season in steps, or 1."""
    found = detect_seasons(y, step_s)
    return found[0] if found else 1


# --- results --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Score:
    model: str
    horizon_s: float
    mase: float  # on the score split
    smape: float
    coverage_80: float  # rolling conformal interval (module docstring), checked on the score split
    fit_seconds: float  # warm: statsmodels imported before the clock starts


@dataclass
class Forecaster:
    """A fitted model plus what its backtest said, ready to predict from newer history."""

    fitted: Fitted
    baseline: Fitted
    period: int
    step_s: float
    scores: list[Score]  # every model × horizon, for reports
    errors: dict[int, np.ndarray] = field(default_factory=dict)  # horizon steps → last scaled errors
    reliable: dict[int, bool] = field(default_factory=dict)
    reason: str = ""
    reasons: dict[int, str] = field(default_factory=dict)  # horizon steps → why not reliable
    periods: tuple[int, ...] = (1,)
    split: dict[str, int] = field(default_factory=dict)  # train / select / score sizes in steps
    fit_seconds: float = 0.0  # the chosen model's warm refit on the whole history
    state: State | None = field(default=None, repr=False)  # after `seen` steps: `observe` moves it on
    seen: int = 0  # steps of the fit's history (from its start) the state has taken
    floor: float = 1e-9  # errors are scaled by max(forecast, floor) ** power: see `_width`
    power: float = 1.0
    pending: deque[np.ndarray] = field(default_factory=deque, repr=False)  # forecasts of the last steps

    @property
    def model(self) -> str:
        return self.fitted.name

    def observe(self, value: float) -> None:
        """Move the fitted state on by one new step (no refit): O(1) per step. The forecasts made
        1..k steps ago for this step become errors in each horizon's calibration window."""
        if self.state is None:
            raise ValueError("this forecaster keeps no state")
        v = float(value)
        for k, window in self.errors.items():
            if len(self.pending) >= k:
                fc = float(self.pending[-k][k - 1])
                scaled = (v - fc) / float(_width(np.array([fc]), self.floor, self.power)[0])
                self.errors[k] = np.append(window[1 - CAL_WINDOW:] if len(window) >= CAL_WINDOW else window, scaled)
        self.state.update(v)
        self.seen += 1
        if self.errors:
            self.pending.append(self.state.forecast(max(self.errors)))
            if len(self.pending) > max(self.errors):
                self.pending.popleft()

    def catch_up(self, history: np.ndarray) -> None:
        """Feed the steps of `history` (from the fit's start) the state has not taken yet."""
        if self.state is None:
            raise ValueError("this forecaster keeps no state")
        for v in np.asarray(history[self.seen:], dtype=float).tolist():
            self.observe(v)


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
    """errors[i, h-1] = actual − forecast for origin i at horizon h, in one pass over y."""
    errs = np.empty((len(origins), steps))
    state = fit.start()
    values = y.tolist()
    t = 0
    for i, o in enumerate(origins.tolist()):
        while t < o:
            state.update(values[t])
            t += 1
        errs[i] = y[o:o + steps] - state.forecast(steps)
    return errs


def _width(forecast: np.ndarray, floor: float, power: float) -> np.ndarray:
    """What an error is measured against: the forecast (at least `floor`) to `power`. Load errors
    grow with the load (a busy hour misses by more than a quiet one) but, for arrivals, slower than
    the load: scaled this way one set of quantiles fits the night and the peak alike."""
    return np.maximum(np.abs(forecast), floor) ** power


def _power(errors: np.ndarray, forecasts: np.ndarray, floor: float) -> float:
    """The spread's power of the forecast (`_width`), from the slope of log |error| on log
    forecast (Taylor's law), clipped to [0, 1]; 1 when the errors cannot tell."""
    ok = errors != 0
    x = np.log(np.maximum(np.abs(forecasts[ok]), floor))
    if ok.sum() < 8 or np.ptp(x) == 0:
        return 1.0
    return float(np.clip(np.polyfit(x, np.log(np.abs(errors[ok])), 1)[0], 0.0, 1.0))


def _rolling_coverage(scaled: np.ndarray, origins: np.ndarray, k: int, first: int) -> float:
    """Share of origins from index `first` inside the 80 % interval taken from the last
    `CAL_WINDOW` scaled errors already observed there (an origin o sees targets up to o − 1).
    All windows at once: each a row, padded with +inf before the series starts, sorted; the
    quantiles interpolate linearly between order statistics as `np.quantile` does."""
    from numpy.lib.stride_tricks import sliding_window_view

    seen = np.searchsorted(origins, origins[first:] - k, side="right")
    keep = seen >= 2
    if not keep.any():
        return math.nan
    seen = seen[keep]
    padded = np.concatenate([np.full(CAL_WINDOW, np.inf), scaled])
    rows = np.sort(sliding_window_view(padded, CAL_WINDOW)[seen], axis=1)  # row s: scaled[s − W:s]
    n = np.minimum(seen, CAL_WINDOW)
    bounds = []
    for q in (0.1, 0.9):
        pos = np.clip(0.5 + (q - 0.5) * (n + 1) / n, 0.0, 1.0) * (n - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        r = np.arange(len(n))
        bounds.append(rows[r, lo] + (pos - lo) * (rows[r, hi] - rows[r, lo]))
    target = scaled[first:][keep]
    return float(np.mean((bounds[0] <= target) & (target <= bounds[1])))


def _level(q: float, n: int) -> float:
    """Split-conformal's finite-sample correction: from n calibration errors, the quantile q sits
    (n + 1)/n as far from the median, so that the interval covers at least its nominal share."""
    return float(np.clip(0.5 + (q - 0.5) * (n + 1) / max(n, 1), 0.0, 1.0))


def horizon_steps(horizon_s: float, step_s: float) -> int:
    k = horizon_s / step_s
    if k < 1 - 1e-9 or abs(k - round(k)) > 1e-6:
        raise HorizonError(f"horizon {horizon_s:g} s is not a whole number of {step_s:g}-s steps: ask for a "
                           f"multiple of {step_s:g} s, or resample the series to a step that divides {horizon_s:g} s")
    return round(k)


@dataclass(frozen=True)
class _Plan:
    periods: tuple[int, ...]
    train_end: int
    split: int


def _plan(y: np.ndarray, step_s: float, horizon: int, origins: int) -> _Plan:
    """The largest season the history supports (detected on training), and the split sizes."""
    n = len(y)
    day = round(DAY / step_s)
    s_min = max(MIN_SPLIT, 2 * horizon)
    for m in [*candidate_periods(step_s), 1]:
        need = 2 * m if m > 1 else MIN_POINTS // 2
        s_max = (n - horizon - need) // 2
        if s_max < s_min:
            continue
        # a cycle each when the history allows (every phase of it; more origins for coarse steps): a
        # day, or a week when the season is weekly (else select and score see different weekdays)
        base = m if m > day else min(max(day, origins // 2), n // 8)
        split = min(s_max, max(s_min, 4 * horizon, base))
        train_end = n - horizon - 2 * split
        if m == 1:
            return _Plan((1,), train_end, split)
        found = detect_seasons(y[:train_end], step_s)
        if m in found:
            return _Plan((m, *(p for p in found if p < m)), train_end, split)
    need = MIN_POINTS // 2 + 2 * s_min + horizon
    daily = f"; a daily season needs {3 * day} points (3 days)" if day >= 4 else ""
    raise Declined(f"short history: {n} points of {step_s:g} s cannot hold training, two backtest splits of "
                   f"{s_min} steps and the {horizon}-step horizon: at least {need} points needed{daily}")


def fit_forecaster(y: np.ndarray, step_s: float, horizons_s: Sequence[float],
                   models: Sequence[Model] = MODELS, origins: int = 576) -> Forecaster:
    """Fit the models on training, choose on the select split, score on the score split (module
    docstring), refit the chosen one on everything. `y` may hold NaN gaps (see `prepare`)."""
    steps_for = {h: horizon_steps(h, step_s) for h in horizons_s}
    y = np.asarray(y, dtype=float)
    if not np.isfinite(y).all():
        y = prepare(y, step_s=step_s)
    max_steps = max(steps_for.values())
    plan = _plan(y, step_s, max_steps, origins)
    periods, train_end, split = plan.periods, plan.train_end, plan.split
    train = y[:train_end]
    per_split = max(2, min(split, origins // 2))
    select_idx = np.unique(np.linspace(train_end, train_end + split - 1, per_split).astype(int))
    score_idx = np.unique(np.linspace(train_end + split, len(y) - max_steps, per_split).astype(int))
    origin_idx = np.concatenate([select_idx, score_idx])
    n_sel = len(select_idx)
    seasonal = periods[0] > 1
    scale = _mase_scale(train, periods[-1])
    floor = INTERVAL_FLOOR * float(np.mean(train)) + 1e-9
    # without a season STL + ETS is Holt, and a Fourier basis has nothing to fit
    candidates: list[Model] = [m for m in models if seasonal or m.name not in {"stl-ets", "arima-fourier"}]
    week = round(WEEK / step_s)
    if len(periods) >= 2 and periods[0] == week and train_end >= 2 * week + round(DAY / step_s):
        candidates += [HoltWinters("holt-winters-weekly", longest=True), MstlEts(step_s=step_s)]
    baselines: list[Model] = [SeasonalNaive(), Naive()]
    import_statsmodels()  # imports outside the timed fits
    results: dict[str, tuple[Model, np.ndarray, float]] = {}
    for model in [*candidates, *(b for b in baselines if b.name not in {c.name for c in candidates})]:
        start = time.perf_counter()
        fitted = model.fit(train, periods)
        fit_s = time.perf_counter() - start
        results[model.name] = (model, _backtest(fitted, y, origin_idx, max_steps), fit_s)
    scores: list[Score] = []
    select_mase: dict[str, float] = {}
    powers: dict[str, float] = {}
    scaled: dict[tuple[str, int], np.ndarray] = {}
    for name, (_, errs, fit_s) in results.items():
        select_mase[name] = float(np.mean([np.mean(np.abs(errs[:n_sel, k - 1])) for k in steps_for.values()]))
        fcs = {k: y[origin_idx + k - 1] - errs[:, k - 1] for k in steps_for.values()}
        powers[name] = _power(np.concatenate([errs[:n_sel, k - 1] for k in steps_for.values()]),
                              np.concatenate([fc[:n_sel] for fc in fcs.values()]), floor)
        for h_s, k in steps_for.items():
            e = errs[n_sel:, k - 1]
            actual = y[score_idx + k - 1]
            denom = np.abs(actual) + np.abs(actual - e)
            smape = float(np.mean(np.where(denom > 0, 2 * np.abs(e) / np.where(denom > 0, denom, 1), 0)))
            scaled[name, k] = errs[:, k - 1] / _width(fcs[k], floor, powers[name])
            coverage = _rolling_coverage(scaled[name, k], origin_idx, k, n_sel)
            scores.append(Score(name, h_s, float(np.mean(np.abs(e))) / scale, smape, coverage, fit_s))
    cand_names = {m.name for m in candidates}
    best = min((n for n in results if n in cand_names), key=lambda n: select_mase[n])
    by = {(s.model, s.horizon_s): s for s in scores}
    reliable: dict[int, bool] = {}
    reasons: dict[int, str] = {}
    for h_s, k in steps_for.items():
        mine = by[best, h_s].mase
        bars = {b: by[b, h_s].mase for b in ("seasonal-naive", "naive")}
        worst_bar = min(bars, key=lambda b: bars[b])
        ok = best not in bars and mine <= (1 - MARGIN) * bars[worst_bar]
        reliable[k] = ok
        if not ok:
            reasons[k] = (f"{best} is selected, the seasonal-naive baseline itself" if best == "seasonal-naive" else
                          f"{best} MASE {mine:.2f} at {h_s:g} s is not {MARGIN:.0%} below {worst_bar}'s "
                          f"{bars[worst_bar]:.2f} on held-back origins")
    errors = {k: scaled[best, k][-CAL_WINDOW:] for k in steps_for.values()}
    reason = "" if any(reliable.values()) else "; ".join(dict.fromkeys(reasons.values()))
    chosen_model = results[best][0]
    start = time.perf_counter()
    chosen_fit = chosen_model.fit(y, periods)
    refit_s = time.perf_counter() - start
    base_fit = SeasonalNaive().fit(y, periods)
    return Forecaster(chosen_fit, base_fit, periods[0], step_s, scores, errors, reliable, reason, reasons,
                      periods, {"train": train_end, "select": split, "score": split}, refit_s,
                      run_state(chosen_fit, y), len(y), floor, powers[best])


def _interval(f: Forecaster, k: int, point: float, quantiles: Sequence[float], horizon_s: float) -> Forecast:
    known = sorted(f.errors)
    if not known:
        return Forecast(None, horizon_s, None, {}, False, "no backtest")
    use = k if k in f.errors else min(known, key=lambda s: (abs(s - k), s))
    errs = f.errors[use]
    width = float(_width(np.array([point]), f.floor, f.power)[0])
    qs = {q: max(0.0, point + width * float(np.quantile(errs, _level(q, len(errs))))) for q in quantiles}
    reliable = f.reliable.get(k, False)
    reason = "" if reliable else (f.reasons.get(k) or f.reason
                                  or f"horizon {horizon_s:g} s was not backtested (fitted for "
                                     f"{', '.join(f'{s * f.step_s:g} s' for s in known)})")
    return Forecast(f.model, horizon_s, max(0.0, point), qs, reliable, reason)


def predict(f: Forecaster, y: np.ndarray, horizon_s: float, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> Forecast:
    """The forecast `horizon_s` after the end of `y` (history from where the fit started)."""
    k = horizon_steps(horizon_s, f.step_s)
    point = float(run_state(f.fitted, np.asarray(y, dtype=float)).forecast(k)[-1])
    return _interval(f, k, point, quantiles, horizon_s)


def predict_next(f: Forecaster, horizon_s: float, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                 partial: float | None = None) -> Forecast:
    """The forecast from the forecaster's own state (the fit history plus every `observe`d step),
    O(horizon) instead of O(history). `partial`: the current, unfinished step's value, used for
    this forecast without being taken into the state."""
    if f.state is None:
        raise ValueError("this forecaster keeps no state")
    k = horizon_steps(horizon_s, f.step_s)
    state = f.state
    if partial is not None:
        state = copy.deepcopy(state)
        state.update(float(partial))
    return _interval(f, k, float(state.forecast(k)[-1]), quantiles, horizon_s)


def quantile_value(fc: Forecast, q: float) -> float | None:
    """The forecast at quantile q (interpolating between the computed ones)."""
    if not fc.quantiles:
        return fc.point
    qs = sorted(fc.quantiles)
    vals = [fc.quantiles[x] for x in qs]
    return float(np.interp(q, qs, vals)) if not math.isnan(q) else None
