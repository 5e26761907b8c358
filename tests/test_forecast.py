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
from autoscaler.forecast.forecaster import (
    Declined,
    HorizonError,
    detect_period,
    detect_seasons,
    fit_forecaster,
    predict,
    predict_next,
    prepare,
)
from autoscaler.forecast.models import MODELS

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
    # white noise: a level forecast beats naive (which repeats the noise) by far — and only then is trusted
    scores = {s.model: s.mase for s in f.scores}
    assert fc.reliable == (scores[f.model] <= 0.95 * min(scores["naive"], scores["seasonal-naive"]))
    assert "stl-ets" not in scores  # without a season it would be Holt again


def test_a_random_walk_is_not_trusted() -> None:
    """Naive is the best forecast of a random walk: no model beats it by the margin, so the
    forecast stays unreliable and says by how much it missed (the old forecaster said reliable)."""
    rng = np.random.default_rng(7)
    y = prepare(500 + np.cumsum(rng.standard_normal(2000)))
    f = fit_forecaster(y, 300.0, [300.0, 900.0])
    assert not any(f.reliable.values())
    assert all("not 5% below" in r or "seasonal-naive is selected" in r for r in f.reasons.values())


FIVE_MIN = 300.0
DAY = 86400.0


def five_minute(days: float, seed: int = 1, weekly: float = 0.0, noise: float = 0.06) -> np.ndarray:
    """5-minute load with a daily cycle (and a weekend dip of `weekly`), multiplicative noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * 288)) * FIVE_MIN
    day = 120 + 80 * np.sin(2 * np.pi * (t % DAY) / DAY)
    weekend = np.where((t // DAY) % 7 >= 5, 1 - weekly, 1.0)
    return day * weekend * (1 + noise * rng.standard_normal(len(t)))


@pytest.mark.parametrize("days", [3, 7, 14])
def test_daily_cycle_with_three_days_or_more_is_never_declined(days: int) -> None:
    """14 days of 5-minute data used to be declined (the weekly season was picked on the whole
    series and could not fit training + backtest); 3 days must work too, up to a 1-hour horizon."""
    f = fit_forecaster(prepare(five_minute(days)), FIVE_MIN, [FIVE_MIN, 3 * FIVE_MIN, 12 * FIVE_MIN],
                       models=MODELS[:2])  # seasonal naive and Holt-Winters: STL would only add time
    assert f.periods == (288,) and f.split["train"] >= 2 * 288
    if days >= 7:  # two days of training are not enough to beat yesterday's values by 5 %; a week is
        assert f.reliable[3], f.reasons


def test_three_days_hourly_still_use_the_daily_season() -> None:
    assert fit_forecaster(prepare(diurnal(days=3)), HOUR, [HOUR]).periods == (24,)


def test_decline_says_what_history_is_needed() -> None:
    with pytest.raises(Declined, match=r"at least \d+ points needed; a daily season needs 864 points \(3 days\)"):
        fit_forecaster(prepare(five_minute(0.25)), FIVE_MIN, [12 * FIVE_MIN])


def test_season_is_detected_on_the_training_part_only() -> None:
    """Noise for twelve days, then a strong daily cycle in the last two: the cycle is in the held-back
    part only, so no season may be used (and nothing is trusted)."""
    rng = np.random.default_rng(3)
    y = np.concatenate([100 + 5 * rng.standard_normal(12 * 288), five_minute(2, seed=4)])
    assert detect_seasons(y, FIVE_MIN) == (288,)  # on the whole series the cycle shows
    f = fit_forecaster(prepare(y), FIVE_MIN, [FIVE_MIN], models=MODELS[:2])
    assert f.periods == (1,) and not any(f.reliable.values())


def test_weekly_season_brings_mstl_and_a_weekly_holt_winters() -> None:
    hourly = five_minute(36, weekly=0.5, noise=0.03).reshape(-1, 12).mean(axis=1)  # 2 weeks train, 1 week each split
    f = fit_forecaster(prepare(hourly), HOUR, [HOUR])
    assert f.periods == (168, 24)
    models = {s.model for s in f.scores}
    assert {"mstl-ets", "holt-winters-weekly", "holt-winters", "stl-ets", "naive"} <= models
    assert f.model in {"mstl-ets", "holt-winters-weekly"} and f.reliable[1]  # weekends are forecast


def test_horizon_must_be_a_whole_number_of_steps(tmp_path: Path) -> None:
    y = prepare(five_minute(4))
    with pytest.raises(HorizonError, match="horizon 60 s is not a whole number of 300-s steps"):
        fit_forecaster(y, FIVE_MIN, [60.0])
    with pytest.raises(HorizonError, match="horizon 450 s"):
        fit_forecaster(y, FIVE_MIN, [450.0])
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds,value\n" + "".join(f"{i * 300},{v:.2f}\n" for i, v in enumerate(y)))
    r = CliRunner().invoke(app, ["forecast", str(trace), "--horizon", "1m"])
    assert r.exit_code == 2 and "horizon 60 s is not a whole number of 300-s steps" in r.output


def test_default_horizons_are_the_ones_the_step_allows(tmp_path: Path) -> None:
    y = five_minute(4).reshape(-1, 2).sum(axis=1)  # 10-minute steps: 5 and 15 minutes are not whole steps
    trace = tmp_path / "ten.csv"
    trace.write_text("timestamp_seconds,value\n" + "".join(f"{i * 600},{v:.2f}\n" for i, v in enumerate(y)))
    r = CliRunner().invoke(app, ["forecast", str(trace), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert [x["horizon_s"] for x in json.loads(r.output)["reliability"]] == [3600.0]


def test_gaps_reach_the_forecaster_and_are_interpolated_or_named(tmp_path: Path) -> None:
    y = five_minute(4)
    short = y.copy()
    short[500:503] = np.nan
    assert np.isfinite(prepare(short, step_s=FIVE_MIN)).all()
    long = y.copy()
    long[600:630] = np.nan
    with pytest.raises(Declined, match=r"gap of 30 missing steps \(2.5 h\) at step 600 of 1152: at most 12"):
        fit_forecaster(long, FIVE_MIN, [FIVE_MIN])
    # from a trace file: missing rows stay NaN through the reader and the resampling
    trace = tmp_path / "gappy.csv"
    rows = [f"{i * 300},{v:.2f}\n" for i, v in enumerate(y) if not 600 <= i < 630]
    trace.write_text("timestamp_seconds,value\n" + "".join(rows))
    r = CliRunner().invoke(app, ["forecast", str(trace), "--horizon", "5m", "--format", "json"])
    assert r.exit_code == 0 and "gap of 30 missing steps" in json.loads(r.output)["declined"]


def test_rolling_intervals_cover_near_nominal_on_later_origins() -> None:
    covered = []
    for seed in range(3):
        f = fit_forecaster(prepare(five_minute(6, seed=seed)), FIVE_MIN, [3 * FIVE_MIN], models=MODELS[:2])
        covered.append(next(s.coverage_80 for s in f.scores if s.model == f.model))
    assert 0.7 <= float(np.mean(covered)) <= 0.9, covered


def test_incremental_state_matches_a_forecast_from_the_whole_history() -> None:
    y = prepare(five_minute(6))
    f = fit_forecaster(y[:-100], FIVE_MIN, [3 * FIVE_MIN], models=MODELS[:2])
    for v in y[-100:-1]:
        f.observe(v)
    stepwise = predict_next(f, 3 * FIVE_MIN, partial=float(y[-1]))
    whole = predict(f, y, 3 * FIVE_MIN)
    assert stepwise.point == pytest.approx(whole.point) and stepwise.quantiles == pytest.approx(whole.quantiles)
    assert f.seen == len(y) - 1


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
    models = ("naive", "seasonal-naive", "holt-winters", "robust-holt-winters", "stl-ets", "arima-fourier")
    assert data["period_steps"] == 24 and data["selected"] in models[2:] and 0 <= data["interval_power"] <= 1
    assert {(s["model"], s["horizon_s"]) for s in data["scores"]} == {(m, h) for m in models for h in (3600.0, 10800.0)}
    assert set(data["scores"][0]) == {"model", "horizon_s", "mase", "smape", "coverage_80", "fit_seconds"}
    page = plot.read_text()
    assert page.count("<polyline class='series'") >= 4 and "80 % interval" in page and "<script" not in page


def test_robust_holt_winters_forecasts_a_bursty_series_closer_than_holt_winters() -> None:
    """Two-step bursts of 4× the base rate about every two hours at no fixed phase (as the Twitter
    stream's): the robust recursions are not pulled up by them, so their absolute errors on
    held-back origins are lower."""
    y = five_minute(6, seed=4)
    starts = np.cumsum(np.random.default_rng(4).integers(12, 37, size=len(y) // 12))
    starts = starts[starts < len(y) - 2]
    y[starts] *= 4
    y[starts + 1] *= 3
    models = [m for m in MODELS if m.name in {"seasonal-naive", "holt-winters", "robust-holt-winters"}]
    f = fit_forecaster(prepare(y), FIVE_MIN, [3 * FIVE_MIN], models=models)
    by = {s.model: s.mase for s in f.scores}
    assert by["robust-holt-winters"] < 0.9 * by["holt-winters"], by
    assert f.model == "robust-holt-winters"


def test_interval_spread_power_follows_the_noise() -> None:
    """Poisson arrivals spread like the square root of the load, multiplicative noise like the load."""
    rng = np.random.default_rng(5)
    load = 20 * (1.2 + np.sin(2 * np.pi * np.arange(6 * 288) / 288))
    poisson = fit_forecaster(prepare(rng.poisson(load).astype(float)), FIVE_MIN, [FIVE_MIN], models=MODELS[:2])
    relative = fit_forecaster(prepare(load * (1 + 0.1 * rng.standard_normal(len(load)))), FIVE_MIN, [FIVE_MIN],
                              models=MODELS[:2])
    assert 0.3 <= poisson.power <= 0.7 < relative.power, (poisson.power, relative.power)


def test_live_errors_widen_the_interval_when_the_series_gets_noisier() -> None:
    """`observe` adds each matured error to the calibration window: a day of triple noise widens
    the 80 % interval, and the window keeps its length."""
    quiet, noisy = five_minute(5, seed=6, noise=0.03), five_minute(6, seed=7, noise=0.09)[-288:]
    f = fit_forecaster(prepare(quiet), FIVE_MIN, [3 * FIVE_MIN], models=MODELS[:2])

    def width() -> float:
        fc = predict_next(f, 3 * FIVE_MIN)
        return (fc.quantiles[0.9] - fc.quantiles[0.1]) / max(fc.point or 1.0, 1.0)

    before, n = width(), len(f.errors[3])
    for v in noisy:
        f.observe(float(v))
    assert width() > 2 * before
    assert len(f.errors[3]) == n


def test_arima_fourier_recovers_its_own_model() -> None:
    """A daily shape of two harmonics plus ARIMA(1,1,1) errors (φ = 0.5, θ = −0.3): the two-step fit
    finds φ, θ and the shape, and its one-step errors are the innovations."""
    from autoscaler.forecast.models import ArimaFourier, fourier_basis

    rng = np.random.default_rng(8)
    n, m = 6 * 288, 288
    shape = fourier_basis(np.arange(n), m, 2) @ np.array([30.0, 10.0, -20.0, 5.0])
    eps = rng.standard_normal(n)
    du = np.zeros(n)
    for t in range(1, n):
        du[t] = 0.5 * du[t - 1] + eps[t] - 0.3 * eps[t - 1]
    y = 500 + shape + np.cumsum(du)
    fit = ArimaFourier().fit(y, (m,))
    assert abs(fit.phi - 0.5) < 0.1 and abs(fit.theta + 0.3) < 0.1, (fit.phi, fit.theta)  # type: ignore[attr-defined]
    cycle = np.asarray(fit.cycle)  # type: ignore[attr-defined]
    assert np.corrcoef(cycle, shape[:m])[0, 1] > 0.95
    state = fit.start()
    errs = []
    for v in y.tolist():
        errs.append(v - float(state.forecast(1)[0]))
        state.update(v)
    assert 0.9 < np.std(errs[10:]) < 1.15
