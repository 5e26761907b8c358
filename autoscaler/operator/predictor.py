"""The live predictor: records every trigger reading, refits forecasters on a schedule in a worker
thread (never on the event loop), and answers per-poll forecasts from the latest fit.

A poll never waits for a fit: until the first fit for a trigger is done, its forecast is
"fitting" and the object scales reactively.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autoscaler.engine.predictive import TriggerForecast
from autoscaler.forecast.forecaster import (
    Declined,
    Forecaster,
    fit_forecaster,
    predict,
    predict_next,
    prepare,
    quantile_value,
)
from autoscaler.history import History

log = logging.getLogger(__name__)

STEP_S = 300.0
FIT_SPAN_S = 13 * 86400  # the 5-minute tier keeps 14 days; a day of margin for refits


@dataclass
class _Slot:
    forecaster: Forecaster | None = None
    fitted_at: float = -1e18
    declined: str = ""
    start: float = 0.0  # time of the first point the fit saw
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def fit_series(values: np.ndarray, step_s: float, horizon_s: float) -> Forecaster:
    """What the worker thread runs: clean the series and fit (raises Declined with a reason) on the
    completed steps: the last one was still filling when it was read."""
    return fit_forecaster(prepare(values, step_s=step_s)[:-1], step_s, [horizon_s])


class Predictor:
    def __init__(self, history: History, refit_s: float = 3600.0, step_s: float = STEP_S,
                 executor: concurrent.futures.Executor | None = None,
                 fit: Callable[[np.ndarray, float, float], Forecaster] = fit_series):
        self.history = history
        self.refit_s = refit_s
        self.step_s = step_s
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit")
        self._fit = fit
        self._slots: dict[str, _Slot] = {}

    async def observe(self, series_key: str, value: float, now: float) -> None:
        await self.history.append(series_key, now, value)

    async def _values(self, series_key: str, since: float, now: float) -> tuple[float, np.ndarray]:
        since -= since % self.step_s
        _, values = await self.history.series(series_key, since, now, self.step_s)
        seen = np.nonzero(np.isfinite(values))[0]
        if not len(seen):
            return since, values[:0]
        return since + seen[0] * self.step_s, values[seen[0]:]

    async def forecast(self, series_key: str, now: float, horizon_s: float, quantile: float,
                       min_history_s: float) -> TriggerForecast:
        slot = self._slots.setdefault(series_key, _Slot())
        start, values = await self._values(series_key, now - FIT_SPAN_S, now)
        if not len(values):
            return TriggerForecast(None, False, "no history yet")
        span = len(values) * self.step_s
        if span < min_history_s:
            return TriggerForecast(None, False, f"history covers {span / 3600:.1f} h, minHistory is "
                                                f"{min_history_s / 3600:.1f} h")
        if now - slot.fitted_at >= self.refit_s and (slot.task is None or slot.task.done()):
            slot.task = asyncio.create_task(self._refit(slot, start, values, horizon_s, now))
        if slot.forecaster is None:
            return TriggerForecast(None, False, slot.declined or "fitting")
        # forecast from the history the fit started with, so seasonal phases line up
        _, since_fit = await self._values(series_key, slot.start, now)
        try:
            clean = prepare(since_fit, step_s=self.step_s)
        except Declined as exc:
            return TriggerForecast(None, False, str(exc))
        f = slot.forecaster
        try:
            if f.state is not None and f.seen <= len(clean) - 1:
                # per poll: take the steps completed since, then forecast from the current partial one
                f.catch_up(clean[:-1])
                fc = predict_next(f, horizon_s, (0.1, 0.5, quantile, 0.9), partial=float(clean[-1]))
            else:
                fc = predict(f, clean, horizon_s, (0.1, 0.5, quantile, 0.9))
        except Declined as exc:  # e.g. a horizon changed to one that is not a whole number of steps
            return TriggerForecast(None, False, str(exc))
        return TriggerForecast(quantile_value(fc, quantile), fc.reliable, fc.reason)

    async def _refit(self, slot: _Slot, start: float, values: np.ndarray, horizon_s: float, now: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            slot.forecaster = await loop.run_in_executor(self.executor, self._fit, values, self.step_s, horizon_s)
            slot.start, slot.declined = start, ""
        except Declined as exc:
            slot.forecaster, slot.declined = None, str(exc)
        except Exception as exc:  # a fit must never take a loop down
            log.exception("forecast fit failed")
            slot.forecaster, slot.declined = None, f"fit failed: {type(exc).__name__}: {exc}"
        slot.fitted_at = now

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
