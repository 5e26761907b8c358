"""Predictive mode on top of the reactive decision: forecasts may add capacity early, never remove it.

`spec.advanced.predictive` (surge's extension): `off` does nothing; `shadow` computes what the
forecast would ask for and reports it in the Predictive condition without acting; `on` raises the
reactive result to the replicas the forecast quantile needs at the horizon — only upward, bounded
by maxReplicaCount and `maxScaleUpFromForecast`, and only while the forecast's own backtest beats
seasonal naive. Scale-down stays reactive, with its stabilization, so a wrong forecast can cost
money but never capacity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from autoscaler.engine.decide import Condition, Decision, ScalingSpec

Mode = Literal["off", "shadow", "on"]


@dataclass(frozen=True)
class Predictive:
    mode: Mode = "off"
    quantile: float = 0.9
    max_scale_up: int | None = None  # at most this many replicas above the reactive result


@dataclass(frozen=True)
class TriggerForecast:
    """The forecast metric value at the horizon (at the configured quantile), or why there is none."""

    value: float | None
    reliable: bool
    reason: str = ""


def forecast_replicas(spec: ScalingSpec, forecasts: Mapping[str, TriggerForecast]) -> tuple[int | None, str]:
    """Replicas the reliable forecasts ask for (AverageValue: ceil(value / target)), and why not if none."""
    wanted: list[int] = []
    reasons: list[str] = []
    for trig in spec.triggers:
        fc = forecasts.get(trig.name)
        if fc is None:
            continue
        if not fc.reliable or fc.value is None:
            reasons.append(f"{trig.name}: {fc.reason or 'no forecast'}")
            continue
        if trig.metric_type == "AverageValue" and trig.target > 0:
            wanted.append(math.ceil(fc.value / trig.target - 1e-9))
        else:
            reasons.append(f"{trig.name}: Value metrics are not forecast")
    if wanted:
        return max(wanted), ""
    return None, "; ".join(reasons) or "no trigger has a forecast"


def apply_predictive(spec: ScalingSpec, predictive: Predictive, decision: Decision, current: int,
                     forecasts: Mapping[str, TriggerForecast]) -> Decision:
    if predictive.mode == "off" or spec.paused or spec.paused_replicas is not None:
        return decision
    conditions = dict(decision.conditions)
    wanted, why_not = forecast_replicas(spec, forecasts)
    reactive = decision.replicas if decision.replicas is not None else current
    if wanted is None:
        conditions["Predictive"] = Condition(False, "ForecastUnreliable", why_not)
        return dataclasses.replace(decision, conditions=conditions)
    target = min(wanted, spec.max_replicas)
    if predictive.max_scale_up is not None:
        target = min(target, reactive + predictive.max_scale_up)
    if spec.paused_scale_out:
        target = reactive
    if predictive.mode == "shadow":
        conditions["Predictive"] = Condition(True, "Shadow", f"forecast asks for {target} replicas (reactive "
                                                            f"{reactive}); not acting in shadow mode")
        return dataclasses.replace(decision, conditions=conditions)
    if target > reactive:
        conditions["Predictive"] = Condition(True, "ScalingAhead", f"forecast asks for {target} replicas, reactive "
                                                                  f"{reactive}")
        return dataclasses.replace(decision, replicas=target if target != current else None, conditions=conditions,
                                   reason=f"{decision.reason}; predictive: {reactive} → {target}")
    conditions["Predictive"] = Condition(True, "ForecastBelowReactive", f"forecast asks for {target} replicas, "
                                                                       f"reactive {reactive}")
    return dataclasses.replace(decision, conditions=conditions)
