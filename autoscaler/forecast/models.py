"""Forecasting models behind one small interface: fit once, then forecast from any later origin.

Fitting (statsmodels' optimisers) is the expensive part and happens on a schedule; forecasting
from a new origin re-runs the fitted model's recursions with its parameters fixed, which is what
makes rolling-origin backtests and per-poll forecasts cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Fitted(Protocol):
    @property
    def name(self) -> str: ...

    def forecast_from(self, history: np.ndarray, steps: int) -> np.ndarray:
        """Point forecasts for the `steps` values after `history` (which starts where training did)."""
        ...


class Model(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, y: np.ndarray, period: int) -> Fitted: ...


# --- seasonal naive: the baseline every other model must beat --------------------------------------

@dataclass(frozen=True)
class SeasonalNaive:
    name: str = "seasonal-naive"

    def fit(self, y: np.ndarray, period: int) -> Fitted:
        return _SeasonalNaiveFit(self.name, max(1, period))


@dataclass(frozen=True)
class _SeasonalNaiveFit:
    name: str
    period: int

    def forecast_from(self, history: np.ndarray, steps: int) -> np.ndarray:
        m = self.period
        last = history[-m:]
        return np.array([last[i % m] for i in range(steps)], dtype=float)


# --- Holt-Winters (additive, damped trend) ------------------------------------------------------

def _holt_winters(y: np.ndarray, alpha: float, beta: float, gamma: float, phi: float, level: float,
                  trend: float, season: np.ndarray, steps: int) -> np.ndarray:
    m = len(season)
    s = list(season)
    lev, b = level, trend
    for t, value in enumerate(y):
        si = s[t % m] if m else 0.0
        new_lev = alpha * (value - si) + (1 - alpha) * (lev + phi * b)
        b = beta * (new_lev - lev) + (1 - beta) * phi * b
        if m:
            s[t % m] = gamma * (value - new_lev) + (1 - gamma) * si
        lev = new_lev
    n = len(y)
    out = np.empty(steps)
    damp = 0.0
    for h in range(1, steps + 1):
        damp += phi ** h
        out[h - 1] = lev + damp * b + (s[(n + h - 1) % m] if m else 0.0)
    return out


@dataclass(frozen=True)
class HoltWinters:
    name: str = "holt-winters"

    def fit(self, y: np.ndarray, period: int) -> Fitted:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        seasonal = "add" if period >= 2 and len(y) >= 2 * period else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=seasonal,
                                         seasonal_periods=period if seasonal else None,
                                         initialization_method="heuristic" if seasonal else "estimated")
            res = model.fit(use_brute=False)
        p = res.params
        season = np.asarray(p["initial_seasons"], dtype=float) if seasonal else np.zeros(0)
        return _HoltWintersFit(self.name, float(p["smoothing_level"]), float(p["smoothing_trend"]),
                               float(p["smoothing_seasonal"] or 0.0) if seasonal else 0.0,
                               float(p["damping_trend"]), float(p["initial_level"]), float(p["initial_trend"]),
                               season)


@dataclass(frozen=True)
class _HoltWintersFit:
    name: str
    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    trend: float
    season: np.ndarray

    def forecast_from(self, history: np.ndarray, steps: int) -> np.ndarray:
        return _holt_winters(history, self.alpha, self.beta, self.gamma, self.phi, self.level, self.trend,
                             self.season, steps)


# --- STL + ETS: seasonal-trend decomposition, damped Holt on the adjusted series -----------------

@dataclass(frozen=True)
class StlEts:
    name: str = "stl-ets"

    def fit(self, y: np.ndarray, period: int) -> Fitted:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
        from statsmodels.tsa.seasonal import STL

        if period >= 2 and len(y) >= 2 * period:
            seasonal = np.asarray(STL(y, period=period).fit().seasonal, dtype=float)
        else:
            period, seasonal = 1, np.zeros(len(y))
        adjusted = y - seasonal
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ExponentialSmoothing(adjusted, trend="add", damped_trend=True,
                                       initialization_method="estimated").fit()
        p = res.params
        return _StlEtsFit(self.name, seasonal[-period:] if period > 1 else np.zeros(1), len(y),
                          float(p["smoothing_level"]), float(p["smoothing_trend"]), float(p["damping_trend"]),
                          float(p["initial_level"]), float(p["initial_trend"]), seasonal)


@dataclass(frozen=True)
class _StlEtsFit:
    name: str
    last_cycle: np.ndarray  # the seasonal component's last period, repeated beyond training
    trained: int
    alpha: float
    beta: float
    phi: float
    level: float
    trend: float
    seasonal: np.ndarray

    def _season(self, start: int, count: int) -> np.ndarray:
        m = len(self.last_cycle)
        out = np.empty(count)
        for i in range(count):
            t = start + i
            out[i] = self.seasonal[t] if t < self.trained else self.last_cycle[(t - self.trained) % m]
        return out

    def forecast_from(self, history: np.ndarray, steps: int) -> np.ndarray:
        n = len(history)
        adjusted = history - self._season(0, n)
        trend = _holt_winters(adjusted, self.alpha, self.beta, 0.0, self.phi, self.level, self.trend,
                              np.zeros(0), steps)
        return trend + self._season(n, steps)


MODELS: tuple[Model, ...] = (SeasonalNaive(), HoltWinters(), StlEts())
