"""The forecaster on synthetic series with known structure, its guards, and predictive mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.engine.decide import Condition, Decision, EngineState, ScalingSpec, TriggerSpec
from autoscaler.engine.predictive import Predictive, TriggerForecast, apply_predictive
from autoscaler.forecast.forecaster import Declined, detect_period, fit_forecaster, predict, prepare

HOUR = 3600.0


def diurnal(days: int = 8, seed: int = 3, noise: float = 0.08) -> np.ndarray:
    """Hourly load with a daily cycle, a slow trend and multiplicative noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    base = 100 + 60 * np.sin(2 * np.pi * (t % 24) / 24) + 0.2 * t
    return base * (1 + noise * rng.standard_normal(len(t)))


def test_daily_period_is_found_and_not_confused_with_persistence() -> None:
    assert detect_period(diurnal(), HOUR) == 24
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.standard_normal(400)) + 100  # smooth but not seasonal
    assert detect_period(walk, HOUR) == 1


def test_forecaster_beats_seasonal_naive_on_a_daily_cycle() -> None:
    y = prepare(diurnal(days=10))
    f = fit_forecaster(y, HOUR, [HOUR, 3 * HOUR], origins=48)
    by = {(s.model, s.horizon_s): s for s in f.scores}
    assert f.model != "seasonal-naive"
    assert by[f.model, HOUR].mase < by["seasonal-naive", HOUR].mase
    assert all(f.reliable.values())
    fc = predict(f, y, HOUR)
    assert fc.reliable and fc.point is not None
    assert fc.quantiles[0.1] <= fc.point <= fc.quantiles[0.9]


def test_interval_coverage_is_near_nominal_on_stationary_noise() -> None:
    y = prepare(diurnal(days=14, seed=11))
    f = fit_forecaster(y, HOUR, [HOUR], origins=96)
    (score,) = [s for s in f.scores if s.model == f.model]
    assert 0.6 <= score.coverage_80 <= 0.95


@pytest.mark.parametrize(("values", "reason"), [
    ([5.0] * 200, "constant history"),
    ([0.0] * 200, "all-zero history"),
    ([1.0, 2.0] * 10, "short history: 20 points"),
    (list(np.where(np.arange(200) % 4 == 0, np.nan, 1.0 + np.arange(200) % 7)), "gappy history: 25%"),
])
def test_declines_with_the_reason(values: list[float], reason: str) -> None:
    with pytest.raises(Declined, match=reason):
        prepare(values)


def test_clock_jumps_decline_and_small_gaps_are_filled() -> None:
    t = [0.0, 60.0, 120.0, 90.0] + [180.0 + 60 * i for i in range(100)]
    with pytest.raises(Declined, match="clock jump: timestamp 90 at index 3"):
        prepare(np.ones(len(t)), t, 60.0)
    t2 = [60.0 * i for i in range(100) if i != 50]
    y = prepare(1.0 + np.arange(99) % 5, t2, 60.0)
    assert len(y) == 100 and np.isfinite(y).all()


def test_noise_alone_is_not_trusted() -> None:
    rng = np.random.default_rng(5)
    y = prepare(50 + rng.standard_normal(300))
    f = fit_forecaster(y, HOUR, [HOUR], origins=48)
    fc = predict(f, y, HOUR)
    # white noise: nothing beats the baseline by a margin worth trusting, or it says why
    assert fc.reliable or "does not beat" in fc.reason or "no model beats" in fc.reason


# --- predictive mode ------------------------------------------------------------------------------

SPEC = ScalingSpec(triggers=(TriggerSpec("q", "AverageValue", 10),), min_replicas=0, max_replicas=20)


def decision(replicas: int | None) -> Decision:
    return Decision(replicas, EngineState(created_at=0), True, {"Ready": Condition(True, "ScaledObjectReady")}, "hpa")


def test_on_mode_scales_ahead_but_never_past_max_or_the_step_limit() -> None:
    fc = {"q": TriggerForecast(180.0, True)}
    d = apply_predictive(SPEC, Predictive("on"), decision(5), 4, fc)
    assert d.replicas == 18 and d.conditions["Predictive"].reason == "ScalingAhead"
    d = apply_predictive(SPEC, Predictive("on"), decision(5), 4, {"q": TriggerForecast(900.0, True)})
    assert d.replicas == 20
    d = apply_predictive(SPEC, Predictive("on", max_scale_up=3), decision(5), 4, fc)
    assert d.replicas == 8


def test_unreliable_forecast_falls_back_to_reactive_and_says_so() -> None:
    d = apply_predictive(SPEC, Predictive("on"), decision(5), 4, {"q": TriggerForecast(None, False, "constant")})
    assert d.replicas == 5
    c = d.conditions["Predictive"]
    assert (c.status, c.reason) == (False, "ForecastUnreliable") and "constant" in c.message


def test_shadow_reports_without_acting_and_off_does_nothing() -> None:
    fc = {"q": TriggerForecast(180.0, True)}
    d = apply_predictive(SPEC, Predictive("shadow"), decision(None), 4, fc)
    assert d.replicas is None and d.conditions["Predictive"].reason == "Shadow"
    assert "18" in d.conditions["Predictive"].message
    d = apply_predictive(SPEC, Predictive("off"), decision(None), 4, fc)
    assert "Predictive" not in d.conditions


@settings(max_examples=200, deadline=None)
@given(reactive=st.one_of(st.none(), st.integers(0, 20)), current=st.integers(0, 20),
       value=st.floats(0, 1000, allow_nan=False), reliable=st.booleans(),
       step=st.one_of(st.none(), st.integers(0, 10)))
def test_forecast_never_lowers_the_reactive_result(reactive: int | None, current: int, value: float,
                                                   reliable: bool, step: int | None) -> None:
    d = apply_predictive(SPEC, Predictive("on", max_scale_up=step), decision(reactive), current,
                         {"q": TriggerForecast(value, reliable)})
    before = reactive if reactive is not None else current
    after = d.replicas if d.replicas is not None else current
    assert after >= before
    assert after <= max(before, SPEC.max_replicas)


# --- the command ----------------------------------------------------------------------------------

def test_forecast_cli_json(tmp_path: Path) -> None:
    trace = tmp_path / "hourly.csv"
    y = diurnal(days=12)
    trace.write_text("timestamp_seconds,value\n" + "".join(f"{i * 3600},{v:.3f}\n" for i, v in enumerate(y)))
    plot = tmp_path / "plot.html"
    r = CliRunner().invoke(app, ["forecast", str(trace), "--horizon", "1h,3h", "--step", "1h", "--format", "json",
                                 "--plot", str(plot)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["period_steps"] == 24 and data["selected"] in {"holt-winters", "stl-ets"}
    assert {(s["model"], s["horizon_s"]) for s in data["scores"]} == {
        (m, h) for m in ("seasonal-naive", "holt-winters", "stl-ets") for h in (3600.0, 10800.0)}
    assert set(data["scores"][0]) == {"model", "horizon_s", "mase", "smape", "coverage_80", "fit_seconds"}
    assert "<polygon" in plot.read_text()
