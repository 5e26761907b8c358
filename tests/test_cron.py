"""The cron trigger's window, in time zones, across midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalers.base import Trigger
from scalers.cron import CronConfig, CronScaler, in_window
from scalers.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")


def config(start: str, end: str, tz: str = "Europe/Berlin", replicas: str = "10") -> CronConfig:
    trig = Trigger(type="cron", metadata={"start": start, "end": end, "timezone": tz, "desiredReplicas": replicas})
    return CronScaler(trig).config


@pytest.mark.parametrize(("local", "inside"), [
    ("2026-03-02 07:59", False), ("2026-03-02 08:00", True), ("2026-03-02 12:00", True),
    ("2026-03-02 17:59", True), ("2026-03-02 18:00", False), ("2026-03-02 23:00", False),
])
def test_day_window(local: str, inside: bool) -> None:
    cfg = config("0 8 * * *", "0 18 * * *")
    now = datetime.fromisoformat(local).replace(tzinfo=BERLIN)
    assert in_window(cfg, now) is inside


@pytest.mark.parametrize(("local", "inside"), [
    ("2026-03-02 21:00", False), ("2026-03-02 22:30", True), ("2026-03-03 03:00", True), ("2026-03-03 06:00", False),
])
def test_window_across_midnight(local: str, inside: bool) -> None:
    cfg = config("0 22 * * *", "0 6 * * *")
    assert in_window(cfg, datetime.fromisoformat(local).replace(tzinfo=BERLIN)) is inside


def test_timezone_is_respected() -> None:
    cfg = config("0 8 * * *", "0 18 * * *", tz="Asia/Kolkata")
    # 09:00 UTC is 14:30 in Kolkata (inside) and 10:00 in Berlin
    assert in_window(cfg, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert not in_window(cfg, datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # 18:30 in Kolkata


def test_dst_day_keeps_local_hours() -> None:
    cfg = config("0 8 * * *", "0 18 * * *")
    # 2026-03-29: Berlin moves from UTC+1 to UTC+2; 06:30 UTC is 08:30 local
    assert in_window(cfg, datetime(2026, 3, 29, 6, 30, tzinfo=UTC))
    assert not in_window(cfg, datetime(2026, 3, 28, 6, 30, tzinfo=UTC))  # 07:30 local the day before


async def test_metric_and_activity() -> None:
    scaler = CronScaler(Trigger(type="cron", index=2, metadata={
        "start": "0 8 * * 1-5", "end": "0 18 * * 1-5", "timezone": "Europe/Berlin", "desiredReplicas": "7"}))
    spec = scaler.metric_specs()[0]
    assert spec.name == "s2-cron-Europe-Berlin-08xx1-5-018xx1-5" and spec.target == 1.0
    inside = await scaler.metrics(datetime(2026, 3, 4, 10, 0, tzinfo=UTC))  # Wednesday 11:00
    outside = await scaler.metrics(datetime(2026, 3, 7, 10, 0, tzinfo=UTC))  # Saturday
    assert (inside.values[spec.name], inside.active) == (7.0, True)
    assert (outside.values[spec.name], outside.active) == (0.0, False)  # KEDA >= 2.18: 0 outside


@pytest.mark.parametrize(("meta", "field"), [
    ({"start": "0 8 * * *", "end": "0 8 * * *"}, "end"),
    ({"start": "0 8 * *", "end": "0 9 * * *"}, "start"),
    ({"start": "@daily", "end": "0 9 * * *"}, "start"),
    ({"start": "0 8 L * *"}, "start"),
    ({"start": "0 8 15W * *"}, "start"),
    ({"start": "0 8 * * 1#2"}, "start"),
    ({"end": "0 18 * * 7"}, "end"),
    ({"start": "0 0 8 * * *"}, "start"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"desiredReplicas": "0"}, "desiredReplicas"),
    ({"desiredReplicas": "many"}, "desiredReplicas"),
])
def test_bad_metadata_names_the_field(meta: dict[str, str], field: str) -> None:
    base = {"start": "0 8 * * *", "end": "0 18 * * *", "timezone": "Europe/Berlin", "desiredReplicas": "3"}
    with pytest.raises(ConfigError) as err:
        CronScaler(Trigger(type="cron", name="office", metadata=base | meta))
    assert field in {e.field for e in err.value.errors}
    assert 'cron "office"' in str(err.value)


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
       st.integers(0, 23), st.integers(1, 23))
def test_window_matches_hours(naive: datetime, start_hour: int, length: int) -> None:
    """For daily windows, being inside is exactly: local hour within [start, start+length) mod 24."""
    end_hour = (start_hour + length) % 24
    cfg = CronConfig(start=f"0 {start_hour} * * *", end=f"0 {end_hour} * * *", timezone="UTC", desired_replicas=2)
    now = naive.replace(tzinfo=UTC)
    offset = (now - now.replace(hour=start_hour, minute=0, second=0, microsecond=0)) % timedelta(days=1)
    assert in_window(cfg, now) is (offset < timedelta(hours=length))


def test_robfig_grammar_accepts_what_croniter_would_not_read_alike() -> None:
    """CRON_TZ= overrides the trigger's zone for that schedule; `?` and names are accepted."""
    cfg = config("CRON_TZ=UTC 0 8 ? * mon-fri", "0 18 * * MON-FRI")
    # 08:30 UTC on a Monday is 09:30 in Berlin: inside (start fired at 08:00 UTC, end at 18:00 Berlin)
    assert in_window(cfg, datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    # 07:30 UTC is 08:30 Berlin, but the start (08:00 UTC) has not fired yet
    assert not in_window(cfg, datetime(2026, 3, 2, 7, 30, tzinfo=UTC))


def test_day_of_month_step_is_not_a_wildcard() -> None:
    """robfig: `*/2` in day-of-month is restricted (no star bit), so it ORs with day-of-week."""
    cfg = config("0 8 */2 * Mon", "0 9 */2 * Mon", tz="UTC")
    # */2 from 1 = odd days. 2026-03-02, a Monday on an even day: matches through the weekday
    assert in_window(cfg, datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    # 2026-03-04, a Wednesday on an even day: matches neither
    assert not in_window(cfg, datetime(2026, 3, 4, 8, 30, tzinfo=UTC))
    # 2026-03-05, a Thursday on an odd day: matches through the day of month
    assert in_window(cfg, datetime(2026, 3, 5, 8, 30, tzinfo=UTC))
