"""KEDA's cron scaler table and robfig/cron v3's parser/spec tables (the grammar KEDA uses)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scalers.base import Trigger
from scalers.cron import CronScaler, in_window
from scalers.cronspec import STAR_BIT, Bounds, CronSpecError, get_field, get_range, next_after, parse
from scalers.errors import ConfigError
from tests.fixtures.conformance import vector_cases


def trigger(case: dict[str, Any], index: int = 0) -> Trigger:
    return Trigger(type="cron", metadata=case["metadata"], index=index)


@pytest.mark.conformance("cron.json")
@pytest.mark.parametrize("case", vector_cases("cron.json"))
async def test_cron_table(case: dict[str, Any]) -> None:
    table = case["table"]
    if table == "testCronMetadata":
        if case["expect_error"]:
            with pytest.raises(ConfigError):
                CronScaler(trigger(case))
        else:
            CronScaler(trigger(case))
    elif table == "cronMetricIdentifiers":
        scaler = CronScaler(trigger(case, case["expected"]["triggerIndex"]))
        assert scaler.metric_specs()[0].name == case["name"]
    else:
        scaler = CronScaler(trigger(case))
        now = datetime.fromisoformat(case["inputs"]["now"])
        reading = await scaler.metrics(now)
        assert reading.active is case["expected"]["isActive"]
        assert list(reading.values.values()) == [float(case["expected"]["value"])]
        assert in_window(scaler.config, now) is case["expected"]["isActive"]


def go_time(text: str) -> datetime:
    """robfig's getTime: 'Mon Jul 9 15:00 2012' (UTC) or RFC 3339 with a +hhmm offset, maybe 'TZ=<zone> '."""
    zone = None
    if text.startswith("TZ="):
        name, _, text = text[3:].partition(" ")
        zone = ZoneInfo(name)
    match = re.match(r"^\w{3} (\w{3}) (\d+) (\d+):(\d+)(?::(\d+))? (\d{4})$", text)
    if match:
        month, day, hour, minute, second, year = match.groups()
        parsed = datetime.strptime(f"{year} {month} {day} {hour}:{minute}:{second or 0}", "%Y %b %d %H:%M:%S")
        return parsed.replace(tzinfo=UTC)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    return parsed.astimezone(zone) if zone else parsed


@pytest.mark.conformance("robfig-cron.json")
@pytest.mark.parametrize("case", vector_cases("robfig-cron.json"))
def test_robfig_table(case: dict[str, Any]) -> None:
    table, inputs, expected = case["table"], case["inputs"], case["expected"]
    if table in ("TestRange", "TestField"):
        fn = get_range if table == "TestRange" else get_field
        bounds = Bounds(inputs["min"], inputs["max"])
        if case["expect_error"]:
            with pytest.raises(CronSpecError, match=re.escape(expected["error_contains"])):
                fn(inputs["expr"], bounds)
        else:
            assert fn(inputs["expr"], bounds) == int(expected["bits"])
        return
    seconds = inputs["parser"] == "second"
    if case["expect_error"]:
        with pytest.raises(CronSpecError, match=re.escape(expected["error_contains"])):
            parse(inputs["expr"], seconds=seconds)
        return
    schedule = parse(inputs["expr"], seconds=seconds)
    if table == "TestParseSchedule":
        assert str(schedule.zone) == expected["zone"]
        assert schedule.minute == 1 << 5 and schedule.second == 1 and schedule.hour & STAR_BIT
    elif table == "TestActivation":
        at = go_time(inputs["time"])
        assert (next_after(schedule, at - timedelta(seconds=1)) == at) is expected["activates"]
    elif table == "TestNext":
        got = next_after(schedule, go_time(inputs["time"]))
        if expected["next"] == "":
            assert got is None
        else:
            want = go_time(expected["next"])
            # compare instants in UTC: Python's == is False across zones for times in a DST fold (PEP 495)
            assert got is not None and got.astimezone(UTC) == want.astimezone(UTC), f"{got} != {want}"
