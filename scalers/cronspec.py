"""Cron schedules exactly as KEDA reads them: robfig/cron v3's grammar and its `Next`.

KEDA's cron trigger parses `start`/`end` with `cron.NewParser(Minute|Hour|Dom|Month|Dow)`. That
grammar differs from Vixie cron and from croniter both ways: it takes a `CRON_TZ=<zone>` (or
`TZ=`) prefix, `?` as `*`, month and weekday names, `N/step` meaning `N-max/step`; it rejects
`L`, `W`, `#`, day-of-week 7, `@hourly`-style descriptors and anything but five fields. No
maintained Python library parses exactly that (croniter accepts L/W/#/7 and reads `*/2` in
day-of-month as a wildcard for the day-of-month/day-of-week OR rule), so this is a port of the
grammar, checked against robfig's own parser/spec test tables and KEDA's cron table.

Pure: `next_after` takes the instant to start from; nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STAR_BIT = 1 << 63


class CronSpecError(ValueError):
    """The expression is not one robfig/cron v3 accepts; the message says why (robfig's wording)."""


@dataclass(frozen=True)
class Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


SECONDS = Bounds(0, 59)
MINUTES = Bounds(0, 59)
HOURS = Bounds(0, 23)
DOM = Bounds(1, 31)
MONTHS = Bounds(1, 12, {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))})
DOW = Bounds(0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})


@dataclass(frozen=True)
class Schedule:
    """Bit sets per field (bit n = value n allowed; STAR_BIT = the field started with * or ?)."""

    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    zone: tzinfo | None  # from CRON_TZ=/TZ=; None = the caller's zone


def _atoi(text: str) -> int:
    """Go's strconv.Atoi: optional sign, ASCII digits only."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise CronSpecError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _must_parse_int(text: str) -> int:
    num = _atoi(text)
    if num < 0:
        raise CronSpecError(f"negative number ({num}) not allowed: {text}")
    return num


def _int_or_name(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    return _must_parse_int(text)


def _bits(low: int, high: int, step: int) -> int:
    if step == 1:
        return ~(~0 << (high + 1)) & (~0 << low)
    out = 0
    for i in range(low, high + 1, step):
        out |= 1 << i
    return out


def get_range(expr: str, r: Bounds) -> int:
    """One comma-separated part: `*`, `?`, `n`, `a-b`, each optionally `/step`."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = r.low, r.high, STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], r.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], r.names)
        else:
            raise CronSpecError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_parse_int(range_and_step[1])
        if single:
            end = r.high
        if step > 1:
            extra = 0
    else:
        raise CronSpecError(f"too many slashes: {expr}")
    if start < r.low:
        raise CronSpecError(f"beginning of range ({start}) below minimum ({r.low}): {expr}")
    if end > r.high:
        raise CronSpecError(f"end of range ({end}) above maximum ({r.high}): {expr}")
    if start > end:
        raise CronSpecError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronSpecError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def get_field(field: str, r: Bounds) -> int:
    bits = 0
    for part in (p for p in field.split(",") if p):  # Go's FieldsFunc drops empty parts
        bits |= get_range(part, r)
    return bits


def parse(spec: str, *, seconds: bool = False) -> Schedule:
    """Parse like `cron.NewParser(Minute|Hour|Dom|Month|Dow)` (KEDA's), or with a leading seconds
    field when `seconds` (robfig's `Second|...|DowOptional` test parser, 6 fields, or 5 with Dow
    defaulted)."""
    if not spec:
        raise CronSpecError("empty spec string")
    zone: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        if space < 0:
            raise CronSpecError(f"provided bad location {spec[spec.index('=') + 1:]}: no schedule follows")
        name = spec[spec.index("=") + 1:space]
        zone = load_zone(name, "provided bad location")
        spec = spec[space:].strip()
    if spec.startswith("@"):
        raise CronSpecError(f"parser does not accept descriptors: {spec}")
    fields = spec.split()
    if seconds:
        if not 5 <= len(fields) <= 6:
            raise CronSpecError(f"expected 5 to 6 fields, found {len(fields)}: [{' '.join(fields)}]")
        if len(fields) == 5:
            fields.append("*")
    else:
        if len(fields) != 5:
            raise CronSpecError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
        fields = ["0", *fields]
    return Schedule(
        second=get_field(fields[0], SECONDS), minute=get_field(fields[1], MINUTES),
        hour=get_field(fields[2], HOURS), dom=get_field(fields[3], DOM),
        month=get_field(fields[4], MONTHS), dow=get_field(fields[5], DOW), zone=zone)


def load_zone(name: str, what: str = "unknown time zone") -> tzinfo:
    """Go's time.LoadLocation: "" and "UTC" are UTC, "Local" is not allowed here (no host clock)."""
    if name in ("", "UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronSpecError(f"{what} {name}: unknown time zone {name}") from None


def _day_matches(s: Schedule, t: datetime) -> bool:
    dom_match = bool((1 << t.day) & s.dom)
    dow_match = bool((1 << ((t.weekday() + 1) % 7)) & s.dow)
    if s.dom & STAR_BIT or s.dow & STAR_BIT:
        return dom_match and dow_match
    return dom_match or dow_match


def _wall(year: int, month: int, day: int, hour: int, minute: int, second: int, zone: tzinfo) -> datetime:
    """Go's time.Date: normalises overflow; a wall time in a DST gap or overlap gets the offset Go's
    lookup picks (the zone period the naive time falls in, re-looked-up once at the result)."""
    extra_months, month0 = divmod(month - 1, 12)
    naive = datetime(year + extra_months, month0 + 1, 1) + timedelta(
        days=day - 1, hours=hour, minutes=minute, seconds=second)
    as_utc = naive.replace(tzinfo=UTC)
    first = as_utc.astimezone(zone).utcoffset()
    assert first is not None
    utc = as_utc - first
    second_offset = utc.astimezone(zone).utcoffset()
    if second_offset is not None and second_offset != first:
        utc = as_utc - second_offset
    return utc.astimezone(zone)


def _add(t: datetime, delta: timedelta) -> datetime:
    """Go's t.Add: absolute time, not wall-clock arithmetic."""
    zone = t.tzinfo
    assert zone is not None
    return (t.astimezone(UTC) + delta).astimezone(zone)


def next_after(s: Schedule, t: datetime) -> datetime | None:
    """The first activation strictly after `t` (aware), as robfig's SpecSchedule.Next; None when
    nothing matches within five years (e.g. 30 Feb)."""
    original = t.tzinfo
    zone = s.zone or original
    assert zone is not None and original is not None
    t = t.astimezone(zone)
    t = _add(t.replace(microsecond=0), timedelta(seconds=1))
    added = False
    year_limit = t.year + 5
    while True:
        if t.year > year_limit:
            return None
        wrapped = False
        while not (1 << t.month) & s.month:
            if not added:
                added = True
                t = _wall(t.year, t.month, 1, 0, 0, 0, zone)
            t = _wall(t.year, t.month + 1, t.day, t.hour, t.minute, t.second, zone)
            if t.month == 1:
                wrapped = True
                break
        if wrapped:
            continue
        while not _day_matches(s, t):
            if not added:
                added = True
                t = _wall(t.year, t.month, t.day, 0, 0, 0, zone)
            t = _wall(t.year, t.month, t.day + 1, t.hour, t.minute, t.second, zone)
            if t.hour != 0:
                t = _add(t, timedelta(hours=24 - t.hour) if t.hour > 12 else timedelta(hours=-t.hour))
            if t.day == 1:
                wrapped = True
                break
        if wrapped:
            continue
        while not (1 << t.hour) & s.hour:
            if not added:
                added = True
                t = _wall(t.year, t.month, t.day, t.hour, 0, 0, zone)
            t = _add(t, timedelta(hours=1))
            if t.hour == 0:
                wrapped = True
                break
        if wrapped:
            continue
        while not (1 << t.minute) & s.minute:
            if not added:
                added = True
                t = _add(t, -timedelta(seconds=t.second))
            t = _add(t, timedelta(minutes=1))
            if t.minute == 0:
                wrapped = True
                break
        if wrapped:
            continue
        while not (1 << t.second) & s.second:
            if not added:
                added = True
            t = _add(t, timedelta(seconds=1))
            if t.second == 0:
                wrapped = True
                break
        if wrapped:
            continue
        return t.astimezone(original)
