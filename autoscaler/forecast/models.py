"""Forecasting models behind one small interface: fit once, then carry a state forward step by step.

Fitting (statsmodels' optimisers and decompositions) is the expensive part and happens on a
schedule. A fitted model hands out a *state* that takes one new observation at a time (`update`,
O(1) for exponential smoothing: the Holt-Winters / ETS recursions with the fitted parameters) and
forecasts from wherever it is (`forecast`). That is what makes a rolling-origin backtest one pass
over the series, and lets the operator and the simulator pay per step instead of per fit.

Models:
- `naive` (last value) and `seasonal-naive` (the value one season ago): the baselines;
- `holt-winters`: additive season, damped additive trend (statsmodels ExponentialSmoothing);
- `stl-ets`: STL season (statsmodels) + damped Holt on the seasonally adjusted series;
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


MODELS: tuple[Model, ...] = (SeasonalNaive(), HoltWinters(), StlEts())
