"""Forecasting models behind one small interface: fit once, then carry a state forward step by step.

Fitting (statsmodels' optimisers and decompositions) is the expensive part and happens on a
schedule. A fitted model hands out a *state* that takes one new observation at a time (`update`,
O(1) for exponential smoothing: the Holt-Winters / ETS recursions with the fitted parameters) and
forecasts from wherever it is (`forecast`). That is what makes a rolling-origin backtest one pass
over the series, and lets the operator and the simulator pay per step instead of per fit.

Models:
- `naive` (last value) and `seasonal-naive` (the value one season ago): the baselines;
- `holt-winters`: additive season, damped additive trend (statsmodels ExponentialSmoothing);
- `robust-holt-winters`: the same recursions fed a cleaned value (Gelper, Fried & Croux 2010): a
  step more than `k` robust scales from its one-step forecast counts as `k` scales away, so a burst
  or a dropout of a few steps moves level, trend and season by a bounded amount. Its parameters
  are fitted on training after a Hampel filter (an hour's rolling median ± 3 MADs). Bursty request
  series (spikes of several times the base rate for a step or two) are forecast closer to their
  median, which is what an absolute-error score (MASE) and a replica count want;
- `stl-ets`: STL season (statsmodels) + damped Holt on the seasonally adjusted series;
- `arima-fourier`: SARIMAX's regression on a daily Fourier basis (6 harmonics) with ARIMA(1,1,1)
  errors, estimated in two steps so that it fits in tens of milliseconds: the Fourier
  coefficients by least squares on the differenced series (the errors' unit root differenced
  away), then the ARMA(1,1) of the differenced remainder by statsmodels' Hannan–Rissanen
  regressions (statsmodels' full SARIMAX likelihood took 20–60 s here on four weeks of 5-minute
  steps, for about the same backtest scores). The integrated errors carry a level that follows day-to-day
  shifts, the Fourier basis a smooth daily shape that a one-day Holt-Winters season learns
  only point by point;
- `mstl-ets`: daily + weekly seasons (statsmodels MSTL) + damped Holt, used when the training
  part holds at least two weekly cycles. MSTL's weekly pass is costly at 5-minute steps (a
  2016-step season: ~10 s for four weeks), so when the step is below an hour the weekly component
  is taken from MSTL on hourly means (periods 24 and 168) and repeated within each hour; the daily
  component is then STL at the series' own step on what the weekly part leaves.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class State(Protocol):
    def update(self, value: float) -> None:
        """Take the next observation."""
        ...

    def forecast(self, steps: int) -> np.ndarray:
        """Point forecasts for the next `steps` values."""
        ...


class Fitted(Protocol):
    @property
    def name(self) -> str: ...

    def start(self) -> State:
        """The state before the first training value."""
        ...


class Model(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        """Fit on `y`; `periods` are the seasons found, largest first ((1,) for none)."""
        ...


def run_state(fit: Fitted, history: np.ndarray) -> State:
    s = fit.start()
    for v in history.tolist():
        s.update(v)
    return s


def forecast_from(fit: Fitted, history: np.ndarray, steps: int) -> np.ndarray:
    """Point forecasts for the `steps` values after `history` (which starts where training did)."""
    return run_state(fit, history).forecast(steps)


def import_statsmodels() -> None:
    """Import what the fits use, so a timed fit does not include the first import (~1–2 s)."""
    import statsmodels.tsa.arima.estimators.hannan_rissanen
    import statsmodels.tsa.holtwinters
    import statsmodels.tsa.seasonal  # noqa: F401


# --- baselines -----------------------------------------------------------------------------------

@dataclass
class _LastValues:
    """The last `m` values in a ring: seasonal naive (m = season) or naive (m = 1)."""

    m: int
    ring: list[float] = field(default_factory=list)
    t: int = 0

    def update(self, value: float) -> None:
        if len(self.ring) < self.m:
            self.ring.append(value)
        else:
            self.ring[self.t % self.m] = value
        self.t += 1

    def forecast(self, steps: int) -> np.ndarray:
        if not self.ring:
            return np.zeros(steps)
        if len(self.ring) < self.m:  # less than a season seen: repeat the last value
            return np.full(steps, self.ring[-1])
        return np.array([self.ring[(self.t + i) % self.m] for i in range(steps)], dtype=float)


@dataclass(frozen=True)
class _RingFit:
    name: str
    m: int

    def start(self) -> State:
        return _LastValues(self.m)


@dataclass(frozen=True)
class Naive:
    name: str = "naive"

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        return _RingFit(self.name, 1)


@dataclass(frozen=True)
class SeasonalNaive:
    name: str = "seasonal-naive"

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        return _RingFit(self.name, max(1, periods[-1] if len(periods) > 1 else periods[0]))


# --- exponential smoothing state -----------------------------------------------------------------

@dataclass
class _HoltWintersState:
    """Additive Holt-Winters with a damped additive trend; `season` empty for none."""

    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    trend: float
    season: list[float]
    t: int = 0

    def update(self, value: float) -> None:
        m = len(self.season)
        si = self.season[self.t % m] if m else 0.0
        lev = self.alpha * (value - si) + (1 - self.alpha) * (self.level + self.phi * self.trend)
        self.trend = self.beta * (lev - self.level) + (1 - self.beta) * self.phi * self.trend
        if m:
            self.season[self.t % m] = self.gamma * (value - lev) + (1 - self.gamma) * si
        self.level = lev
        self.t += 1

    def next_value(self) -> float:
        """The one-step forecast, without numpy (the per-step path)."""
        m = len(self.season)
        return self.level + self.phi * self.trend + (self.season[self.t % m] if m else 0.0)

    def forecast(self, steps: int) -> np.ndarray:
        m = len(self.season)
        damp = np.cumsum(self.phi ** np.arange(1, steps + 1))
        out = self.level + damp * self.trend
        if m:
            out = out + np.array([self.season[(self.t + h) % m] for h in range(steps)])
        return out


def _fit_es(y: np.ndarray, period: int) -> tuple[float, float, float, float, float, float, np.ndarray]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = "add" if period >= 2 and len(y) >= 2 * period else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=seasonal,
                                     seasonal_periods=period if seasonal else None,
                                     initialization_method="heuristic" if seasonal else "estimated")
        res = model.fit(use_brute=False, method="least_squares")  # same optimum as the default, ~5× faster
    p = res.params
    season = np.asarray(p["initial_seasons"], dtype=float) if seasonal else np.zeros(0)
    return (float(p["smoothing_level"]), float(p["smoothing_trend"]),
            float(p["smoothing_seasonal"] or 0.0) if seasonal else 0.0, float(p["damping_trend"]),
            float(p["initial_level"]), float(p["initial_trend"]), season)


@dataclass(frozen=True)
class HoltWinters:
    """On the shortest season found (`longest=False`), or on the longest one the data holds twice."""

    name: str = "holt-winters"
    longest: bool = False

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        order = list(periods) if self.longest else list(reversed(periods))
        period = next((m for m in order if len(y) >= 2 * m), 1)
        *params, season = _fit_es(y, period)
        return _HoltWintersFit(self.name, tuple(params), season)  # type: ignore[arg-type]


Params = tuple[float, float, float, float, float, float]  # alpha, beta, gamma, phi, initial level, trend


@dataclass(frozen=True)
class _HoltWintersFit:
    name: str
    params: Params
    season: np.ndarray

    def start(self) -> State:
        return _HoltWintersState(*self.params, self.season.tolist())


def hampel(y: np.ndarray, half: int = 6, threshold: float = 3.0) -> np.ndarray:
    """`y` with each point more than `threshold` MADs from the median of its `2 * half + 1` window
    replaced by that median (a 5-minute step: an hour's window)."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(np.pad(y, half, mode="edge"), 2 * half + 1)
    med = np.median(windows, axis=1)
    mad = 1.4826 * np.median(np.abs(windows - med[:, None]), axis=1)
    out = y.copy()
    bad = np.abs(y - med) > threshold * np.maximum(mad, 1e-9)
    out[bad] = med[bad]
    return out


@dataclass
class _RobustState:
    """Holt-Winters fed `forecast ± k·scale` instead of an outlying value; `scale` is an
    exponentially weighted mean of the clipped absolute one-step errors (× 1.25: a normal's
    standard deviation over its mean absolute deviation)."""

    inner: _HoltWintersState
    scale: float
    k: float
    lam: float = 0.05

    def update(self, value: float) -> None:
        f1 = self.inner.next_value()
        c = self.k * self.scale
        r = min(max(value - f1, -c), c)
        self.scale = (1 - self.lam) * self.scale + self.lam * 1.25 * abs(r)
        self.inner.update(f1 + r)

    def forecast(self, steps: int) -> np.ndarray:
        return self.inner.forecast(steps)


@dataclass(frozen=True)
class _RobustFit:
    name: str
    params: Params
    season: np.ndarray
    scale: float
    k: float

    def start(self) -> State:
        return _RobustState(_HoltWintersState(*self.params, self.season.tolist()), self.scale, self.k)


@dataclass(frozen=True)
class RobustHoltWinters:
    """Holt-Winters on the shortest season the data holds twice, robust to bursts (module docstring);
    k = 2 as Gelper et al. suggest."""

    name: str = "robust-holt-winters"
    k: float = 2.0

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        period = next((m for m in reversed(list(periods)) if len(y) >= 2 * m), 1)
        clean = hampel(np.asarray(y, dtype=float))
        *fitted, season = _fit_es(clean, period)
        params: Params = tuple(fitted)  # type: ignore[assignment]
        state = _HoltWintersState(*params, season.tolist())
        res = np.empty(len(clean))
        for i, v in enumerate(clean.tolist()):
            res[i] = v - state.next_value()
            state.update(v)
        scale = 1.4826 * float(np.median(np.abs(res[len(res) // 2:]))) or float(np.std(clean)) or 1.0
        return _RobustFit(self.name, params, season, scale, self.k)


# --- regression on a Fourier basis with ARIMA(1,1,1) errors -------------------------------------

HARMONICS = 6


def fourier_basis(t: np.ndarray, period: int, harmonics: int = HARMONICS) -> np.ndarray:
    """Columns sin, cos of 2π·j·t/period for j = 1..harmonics."""
    angle = 2 * np.pi * np.outer(t, np.arange(1, harmonics + 1)) / period
    return np.column_stack([np.sin(angle), np.cos(angle)])


@dataclass
class _ArimaFourierState:
    """y_t = cycle[t mod m] + u_t with Δu_t = φ·Δu_{t−1} + ε_t + θ·ε_{t−1}."""

    cycle: list[float]
    phi: float
    theta: float
    t: int = 0
    u: float | None = None
    du: float = 0.0
    eps: float = 0.0

    def update(self, value: float) -> None:
        u = value - self.cycle[self.t % len(self.cycle)]
        if self.u is not None:
            du = u - self.u
            self.eps = du - (self.phi * self.du + self.theta * self.eps)
            self.du = du
        self.u = u
        self.t += 1

    def forecast(self, steps: int) -> np.ndarray:
        m = len(self.cycle)
        u = self.u if self.u is not None else 0.0
        du = self.phi * self.du + self.theta * self.eps
        out = np.empty(steps)
        for h in range(steps):
            u += du
            out[h] = self.cycle[(self.t + h) % m] + u
            du *= self.phi
        return out


@dataclass(frozen=True)
class _ArimaFourierFit:
    name: str
    cycle: np.ndarray
    phi: float
    theta: float

    def start(self) -> State:
        return _ArimaFourierState(self.cycle.tolist(), self.phi, self.theta)


@dataclass(frozen=True)
class ArimaFourier:
    """On the shortest season found (the daily one); needs a season (module docstring)."""

    name: str = "arima-fourier"

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        from statsmodels.tsa.arima.estimators.hannan_rissanen import hannan_rissanen

        m = periods[-1] if len(periods) > 1 else periods[0]
        if m < 2:
            raise ValueError("arima-fourier needs a season")
        x = fourier_basis(np.arange(len(y)), m, min(HARMONICS, m // 2))
        beta = np.linalg.lstsq(np.diff(x, axis=0), np.diff(y), rcond=None)[0]
        du = np.diff(y - x @ beta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = hannan_rissanen(du - du.mean(), ar_order=1, ma_order=1, demean=False)
        phi, theta = (float(np.clip(v, -0.99, 0.99)) for v in (params.ar_params[0], params.ma_params[0]))
        return _ArimaFourierFit(self.name, x[:m] @ beta, phi, theta)


# --- decomposition + ETS --------------------------------------------------------------------------

@dataclass
class _AdjustedState:
    """Damped Holt on the seasonally adjusted series; the seasonal part is known within training
    and repeats each component's last cycle beyond it."""

    holt: _HoltWintersState
    seasonal: np.ndarray  # fitted seasonal component over training
    cycles: tuple[np.ndarray, ...]  # each component's last cycle
    t: int = 0

    def _season_at(self, t: int) -> float:
        n = len(self.seasonal)
        if t < n:
            return float(self.seasonal[t])
        return float(sum(c[(t - n) % len(c)] for c in self.cycles))

    def update(self, value: float) -> None:
        self.holt.update(value - self._season_at(self.t))
        self.t += 1

    def forecast(self, steps: int) -> np.ndarray:
        return self.holt.forecast(steps) + np.array([self._season_at(self.t + h) for h in range(steps)])


@dataclass(frozen=True)
class _AdjustedFit:
    name: str
    params: Params
    seasonal: np.ndarray
    cycles: tuple[np.ndarray, ...]

    def start(self) -> State:
        a, b, _, phi, level, trend = self.params
        return _AdjustedState(_HoltWintersState(a, b, 0.0, phi, level, trend, []), self.seasonal, self.cycles)


def _adjusted_fit(name: str, y: np.ndarray, components: list[tuple[int, np.ndarray]]) -> Fitted:
    seasonal = sum((c for _, c in components), np.zeros(len(y)))
    alpha, beta, _, phi, level, trend, _ = _fit_es(y - seasonal, 1)
    cycles = tuple(np.asarray(c[-m:], dtype=float) for m, c in components)  # phase: c[-m] is m steps back
    return _AdjustedFit(name, (alpha, beta, 0.0, phi, level, trend), np.asarray(seasonal, dtype=float), cycles)


def _jumps(period: int) -> dict[str, int]:
    """STL's trend and low-pass smoothers evaluated every period/10 points and interpolated between:
    ~20× faster on a 288-step season, the seasonal part within 1 % of the full smoothing's."""
    jump = max(1, period // 10)
    return {"trend_jump": jump, "low_pass_jump": jump}


@dataclass(frozen=True)
class StlEts:
    name: str = "stl-ets"

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        from statsmodels.tsa.seasonal import STL

        period = periods[-1] if len(periods) > 1 else periods[0]  # the shortest season: STL's cost grows with it
        if period >= 2 and len(y) >= 2 * period:
            comps = [(period, np.asarray(STL(y, period=period, **_jumps(period)).fit().seasonal, dtype=float))]
        else:
            comps = []
        return _adjusted_fit(self.name, y, comps)


@dataclass(frozen=True)
class MstlEts:
    """Daily + weekly seasons: needs `periods` = (weekly, daily) and two weekly cycles of data."""

    name: str = "mstl-ets"
    step_s: float = 300.0

    def fit(self, y: np.ndarray, periods: Sequence[int]) -> Fitted:
        from statsmodels.tsa.seasonal import MSTL, STL

        week, day = periods[0], periods[1]
        per_hour = round(3600 / self.step_s)
        if per_hour > 1 and abs(per_hour * self.step_s - 3600) < 1e-6 and day % per_hour == 0:
            n = len(y) // per_hour * per_hour
            hourly = y[:n].reshape(-1, per_hour).mean(axis=1)
            res = MSTL(hourly, periods=(day // per_hour, week // per_hour)).fit()
            if np.ndim(res.seasonal) < 2:  # MSTL drops a season longer than half the series
                raise ValueError(f"mstl-ets needs more than two weekly cycles, got {len(y)} steps")
            weekly = np.repeat(np.asarray(res.seasonal[:, 1], dtype=float), per_hour)
            weekly = np.concatenate([weekly, weekly[len(weekly) - week:][: len(y) - n]])
            daily = np.asarray(STL(y - weekly, period=day, **_jumps(day)).fit().seasonal, dtype=float)
        else:
            res = MSTL(y, periods=(day, week), stl_kwargs=_jumps(day)).fit()
            if np.ndim(res.seasonal) < 2:
                raise ValueError(f"mstl-ets needs more than two weekly cycles, got {len(y)} steps")
            daily = np.asarray(res.seasonal[:, 0], dtype=float)
            weekly = np.asarray(res.seasonal[:, 1], dtype=float)
        return _adjusted_fit(self.name, y, [(day, daily), (week, weekly)])


MODELS: tuple[Model, ...] = (SeasonalNaive(), HoltWinters(), RobustHoltWinters(), StlEts(), ArimaFourier())
