"""surge's predictive mode in simulated time: the operator's forecaster, fed the same readings.

Readings are averaged into 5-minute steps; once two days are kept the forecaster is fitted on the
last four days, again every simulated day, choosing between seasonal naive and Holt-Winters over
48 backtest origins (the live operator refits hourly, also tries STL + ETS and uses 96 origins;
the lighter fit keeps a 14-day simulation fast). Each step gives one forecast at the horizon (pod
start + node boot, rounded up to a step) at the 90th percentile, from the fitted state moved on
step by step (no re-run of the history); `apply_predictive` uses it only
while its backtest beats seasonal naive, exactly as the live controller does.
"""

from __future__ import annotations

import math

import numpy as np

from autoscaler.engine.predictive import TriggerForecast
from autoscaler.forecast.forecaster import (
    Declined,
    Forecaster,
    fit_forecaster,
    predict_next,
    prepare,
    quantile_value,
)
from autoscaler.forecast.models import MODELS

STEP_S = 300.0
MIN_HISTORY_S = 2 * 86400.0
FIT_SPAN_S = 4 * 86400.0
REFIT_S = 86400.0
QUANTILE = 0.9


class SimulatedPredictor:
    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = max(STEP_S, math.ceil(horizon_s / STEP_S) * STEP_S)
        self.steps: list[float] = []
        self._sum, self._n, self._step = 0.0, 0, 0
        self.forecaster: Forecaster | None = None
        self.fit_start = 0
        self.fitted_at = -math.inf
        self.declined = "no history yet"
        self.current = TriggerForecast(None, False, self.declined)
        self.fits = 0

    def observe(self, now: float, value: float) -> None:
        step = int(now // STEP_S)
        if step != self._step and self._n:
            while len(self.steps) < self._step:  # steps without a reading repeat the last mean
                self.steps.append(self.steps[-1] if self.steps else 0.0)
            self.steps.append(self._sum / self._n)
            self._sum, self._n = 0.0, 0
            self._advance(now)
        self._step = step
        self._sum += value
        self._n += 1

    def _advance(self, now: float) -> None:
        if len(self.steps) * STEP_S < MIN_HISTORY_S:
            self.current = TriggerForecast(None, False, "history shorter than two days")
            return
        if now - self.fitted_at >= REFIT_S:
            self.fit_start = max(0, len(self.steps) - int(FIT_SPAN_S / STEP_S))
            try:
                self.forecaster = fit_forecaster(prepare(np.asarray(self.steps[self.fit_start:])), STEP_S,
                                                 [self.horizon_s], models=MODELS[:2], origins=48)
                self.declined = ""
                self.fitted_at = now
            except Declined as exc:  # e.g. too short for its season yet: try again in six hours
                self.forecaster, self.declined = None, str(exc)
                self.fitted_at = now - REFIT_S + 6 * 3600.0
            self.fits += 1
        if self.forecaster is None:
            self.current = TriggerForecast(None, False, self.declined)
            return
        # the fitted state takes the steps since (O(1) each) instead of re-running the whole history
        self.forecaster.catch_up(np.asarray(self.steps[self.fit_start:]))
        # only the quantile the operator acts on: quantile_value(fc, QUANTILE) is the same number whether
        # or not 0.1 and 0.5 are computed beside it, and each np.quantile costs as much as the forecast
        fc = predict_next(self.forecaster, self.horizon_s, (QUANTILE,))
        self.current = TriggerForecast(quantile_value(fc, QUANTILE), fc.reliable, fc.reason)
