"""Load traces as they are — counts, rates or utilisation, with their gaps — and say exactly what was wrong.

A trace is CSV `timestamp_seconds,value` (the timestamp is the START of the interval). What the
value means is its *kind*:

- ``count``: arrivals in the interval (the default, and what ../shared/traces holds);
- ``rate``: arrivals per second during the interval;
- ``utilisation``: how busy the measured service was (CPU utilisation and the like). It is not a
  number of requests, so it is mapped to load by one stated rule: **work arrives in proportion to
  utilisation**. Values are first brought to a fraction (a trace whose values all lie in [0, 1] is a
  fraction; one within [0, 100] is per cent and divided by 100; anything larger has no known unit
  and is taken as-is, proportional to demand, with a note), and the fraction is read as a rate in
  arrivals per second. The simulator then scales it like any trace (`--peak-pods`: its p99 needs
  that many pods; an explicit `--scale S` means "100 % utilisation = S arrivals per second").

The kind comes from ``--trace-kind``, else from the file: a ``# kind: rate`` comment line before
the data, or the header's value column (``count``/``value``, ``rate``/``per_second``,
``utilisation``/``utilization``/``cpu``), else ``count``. A count trace that looks like utilisation
(every value within [0, 1] and not all whole numbers, or within [0, 100] with a unit hint such as
``cpu``, ``util`` or ``%`` in its name or header) is loaded as asked but warned about.

Gaps stay gaps. A missing row, or a row whose value is empty / ``nan`` / ``NA``, is missing data:
``counts`` holds NaN there, the simulator runs no load through it and charges no cost for it, the
forecaster sees NaN, and each gap is reported once (`gap_notes`, computed on whatever window is
kept, so a gap outside ``--days`` is not reported).

Coarse traces are not step functions: `arrivals` spreads each interval's arrivals over the
simulator's ticks along a line through the neighbouring intervals' mean rates (interval midpoints),
then rescales each interval so it keeps exactly its own arrivals — smooth between intervals,
exact per interval (a gap's edge stays flat).

Timestamps are seconds or ISO 8601 times (UTC when no zone is given). Milliseconds — a header
whose timestamp column says ``ms``/``milli``, or epoch values ≥ 1e11 (year 5138 as seconds) — are
divided by 1000 with a note: read as seconds they stretch the trace 1000-fold, silently.

Bad lines are fatal and name ``file:line`` (non-numeric, infinite, unsorted, duplicated, negative,
off the trace's grid): a trace that says two different things cannot be trusted.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal, cast

import numpy as np

TraceKind = Literal["count", "rate", "utilisation"]
KINDS: tuple[TraceKind, ...] = ("count", "rate", "utilisation")
MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})
_KIND_WORDS: dict[str, TraceKind] = {
    "count": "count", "counts": "count", "value": "count", "requests": "count",
    "rate": "rate", "per_second": "rate", "rps": "rate", "qps": "rate",
    "utilisation": "utilisation", "utilization": "utilisation", "cpu": "utilisation", "util": "utilisation",
}
_UNIT_HINT = re.compile(r"cpu|util|percent|%", re.IGNORECASE)


_BLOCK_TICKS = 1 << 18  # ticks interpolated per block by `Trace.arrivals` (bounded memory, same values)


class TraceError(ValueError):
    """The trace cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Trace:
    name: str
    start: float
    interval: float  # seconds between rows
    counts: np.ndarray  # arrivals per interval (utilisation: fraction × interval); NaN where data is missing
    notes: tuple[str, ...] = field(default=())  # what the reader repaired or warns about (gaps: `gap_notes`)
    kind: TraceKind = "count"

    @property
    def span(self) -> float:
        return self.interval * len(self.counts)

    @property
    def rates(self) -> np.ndarray:
        """Arrivals per second in each interval (NaN in gaps)."""
        return self.counts / self.interval

    @property
    def missing(self) -> np.ndarray:
        return np.isnan(self.counts)

    def gaps(self) -> list[tuple[float, float]]:
        """Missing spans as (start, end) seconds from the trace's start."""
        return list(self._gaps)

    @cached_property
    def _gaps(self) -> tuple[tuple[float, float], ...]:
        return tuple((i * self.interval, j * self.interval) for i, j in _runs(self.missing))

    def missing_seconds(self, start: float, end: float) -> float:
        """How much of [start, end) (seconds from the trace's start) has no data."""
        return sum(max(0.0, min(end, e) - max(start, s)) for s, e in self._gaps)

    def gap_notes(self, most: int = 20) -> list[str]:
        """One line per gap in this (possibly cut) trace; past `most` gaps, one line for the rest."""
        spans = self.gaps()
        out = [f"{self.name}: no data for {(e - s) / self.interval:g} interval(s) ({_hms(e - s)}) from "
               f"{_when(self.start + s)} ({_hms(s)} into the trace): kept as a gap (no load, no cost, NaN to the "
               "forecaster)" for s, e in spans[:most]]
        if len(spans) > most:
            rest = sum(e - s for s, e in spans[most:])
            out.append(f"{self.name}: {len(spans) - most} more gaps ({_hms(rest)} in all) after "
                       f"{_when(self.start + spans[most][0])}, kept as gaps the same way")
        return out

    def all_notes(self) -> list[str]:
        return list(self.notes) + self.gap_notes()

    def head(self, seconds: float) -> tuple[Trace, str | None]:
        """The first `seconds` of the trace, and a note when the trace is shorter than that."""
        rows = max(2, int(seconds / self.interval + 1e-9))
        if rows >= len(self.counts):
            note = None
            if seconds > self.span + 1e-9:
                note = (f"{self.name}: asked for {seconds / 86400:g} days but the trace holds only "
                        f"{self.span / 86400:.3g} days; using all of it")
            return self, note
        note = None
        if rows * self.interval > seconds + 1e-9:  # --days shorter than the rows it needs
            note = (f"{self.name}: asked for {_hms(seconds)} but the trace's rows are {_hms(self.interval)} apart; "
                    f"simulating its first {rows} rows ({_hms(rows * self.interval)})")
        return replace(self, counts=self.counts[:rows]), note

    def arrivals(self, dt: float, ticks: int | None = None) -> np.ndarray:
        """Arrivals per tick of `dt` seconds (`dt` divides the interval), interpolated within each
        interval as the module docstring states; 0 in gaps (see `missing_ticks`)."""
        k = round(self.interval / dt)
        n = len(self.counts)
        filled = np.nan_to_num(self.counts, nan=0.0)
        if k <= 1:
            out = filled.copy()
        else:
            rate = np.where(self.missing, np.nan, filled / self.interval)
            prev = np.concatenate(([np.nan], rate[:-1]))
            nxt = np.concatenate((rate[1:], [np.nan]))
            prev = np.where(np.isnan(prev), rate, prev)  # trace edges and gap edges stay flat
            nxt = np.where(np.isnan(nxt), rate, nxt)
            u = (np.arange(k) + 0.5) / k - 0.5  # each tick's place from the interval's midpoint
            w = np.abs(u)[None, :]
            out = np.empty(n * k)
            rows = max(1, _BLOCK_TICKS // k)  # intervals at a time: a year of 5-s ticks without (n, k) temporaries
            for i in range(0, n, rows):
                j = min(n, i + rows)
                other = np.where(u[None, :] < 0, prev[i:j, None], nxt[i:j, None])
                shape = np.nan_to_num((1 - w) * rate[i:j, None] + w * other, nan=0.0)  # (rows, k)
                per_cell = shape.sum(axis=1)
                factor = np.divide(filled[i:j], per_cell, out=np.zeros(j - i), where=per_cell > 0)
                out[i * k:j * k] = np.where((per_cell > 0)[:, None], shape * factor[:, None],
                                            (filled[i:j] / k)[:, None]).ravel()
        return out if ticks is None else out[:ticks]

    def missing_ticks(self, dt: float, ticks: int | None = None) -> np.ndarray:
        out = np.repeat(self.missing, round(self.interval / dt))
        return out if ticks is None else out[:ticks]


def _runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, end) index pairs of the True runs of `mask`."""
    if not mask.any():
        return
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    yield from zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True)


def _when(t: float) -> str:
    """A timestamp as UTC when it is an epoch (after 1980; relative traces start at 0), else as seconds."""
    if t >= 315532800:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    return f"t={t:g} s"


def _hms(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:g} s"


def parse_trace(text: str, name: str = "trace", kind: TraceKind | None = None) -> Trace:
    """Parse CSV text; `kind` overrides what the file says (module docstring)."""
    if kind is not None and kind not in KINDS:
        raise TraceError(f"{name}: trace kind {kind!r} is not one of {', '.join(KINDS)}")
    rows: list[tuple[float, float]] = []
    lines: list[int] = []
    file_kind: TraceKind | None = None
    header = ""
    iso = False
    for lineno, raw_line in enumerate(io.StringIO(text), start=1):
        stripped = raw_line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = re.match(r"#\s*kind\s*[:=]\s*(\w+)", stripped, re.IGNORECASE)
            if m and not rows:
                file_kind = _kind_word(m.group(1), f"{name}:{lineno}")
            continue
        row = next(csv.reader([stripped]))
        if not rows and not header and _timestamp(row[0]) is None:
            header = stripped
            if len(row) >= 2 and file_kind is None:
                file_kind = _header_kind(row[1])
            continue
        if len(row) < 2:
            raise TraceError(f"{name}:{lineno}: expected 'timestamp_seconds,value', got {stripped!r}")
        t_raw, v_raw = row[0].strip(), row[1].strip()
        v_missing = v_raw.lower() in MISSING
        t_parsed = _timestamp(t_raw)
        if t_parsed is None or not (v_missing or _is_number(v_raw)):
            raise TraceError(f"{name}:{lineno}: expected two numbers (the timestamp may be ISO 8601), got "
                             f"{t_raw!r}, {v_raw!r} (an empty value or 'nan' marks missing data)")
        iso = iso or not _is_number(t_raw)
        t, v = t_parsed, math.nan if v_missing else float(v_raw)
        if not math.isfinite(t) or math.isinf(v):
            raise TraceError(f"{name}:{lineno}: value is not finite ({t_raw!r}, {v_raw!r})")
        if v < 0:
            raise TraceError(f"{name}:{lineno}: negative value {v_raw} (a trace's values cannot be negative)")
        if rows and t <= rows[-1][0]:
            what = "duplicate" if t == rows[-1][0] else "unsorted"
            raise TraceError(f"{name}:{lineno}: {what} timestamp {t_raw} (previous row has {rows[-1][0]:.15g}); "
                             "rows must be in increasing time order")
        rows.append((t, v))
        lines.append(lineno)
    if len(rows) < 2:
        raise TraceError(f"{name}: needs at least two rows of 'timestamp_seconds,value', found {len(rows)} "
                         "(the interval is the step between rows)")
    times = np.array([r[0] for r in rows])
    unit_notes = []
    if not iso and _in_milliseconds(header, times):
        times = times / 1000
        why = "the header says so" if _MS.search(header) else f"epoch milliseconds: the first is {rows[0][0]:.13g}"
        unit_notes.append(f"{name}: timestamps read as milliseconds ({why}); divided by 1000")
    steps = np.diff(times)
    values, counts_of = np.unique(steps, return_counts=True)
    interval = float(values[np.argmax(counts_of)])  # the most common step (the smallest among ties)
    offsets = (times - times[0]) / interval
    if not np.allclose(offsets, np.round(offsets), atol=1e-6):
        bad = int(np.argmax(np.abs(offsets - np.round(offsets)) > 1e-6))
        raise TraceError(f"{name}:{lines[bad]}: timestamp {rows[bad][0]:.15g} is off the {interval:g} s grid of the "
                         f"trace (rows {interval:g} s apart from {rows[0][0]:.15g})")
    index = np.round(offsets).astype(np.int64)
    raw = np.full(int(index[-1]) + 1, np.nan)
    raw[index] = [r[1] for r in rows]
    if np.isnan(raw).all():
        raise TraceError(f"{name}: every value is missing")
    use: TraceKind = kind or file_kind or "count"
    notes = unit_notes + _kind_notes(name, header, raw, use, asked=kind is not None or file_kind is not None)
    if use == "rate":
        counts = raw * interval
    elif use == "utilisation":
        top = float(np.nanmax(raw))
        fraction = raw if top <= 1 else raw / 100 if top <= 100 else raw
        if top > 100:
            notes.append(f"{name}: utilisation values reach {top:g}, beyond per cent: no unit known, read as "
                         "proportional to demand")
        counts = fraction * interval
    else:
        counts = raw
    return Trace(name, float(times[0]), interval, counts, tuple(notes), use)


def _kind_notes(name: str, header: str, raw: np.ndarray, kind: TraceKind, asked: bool) -> list[str]:
    if kind != "count" or asked:
        return []
    v = raw[~np.isnan(raw)]
    whole = bool(np.all(v == np.round(v)))
    hint = bool(_UNIT_HINT.search(name) or _UNIT_HINT.search(header))
    top = float(v.max())
    if (top <= 1 and not whole) or (top <= 100 and hint) or (hint and not whole):
        unit = "a fraction" if top <= 1 else "per cent" if top <= 100 else "of unknown unit"
        return [f"{name}: read as counts per interval, but its values look like utilisation ({unit}: "
                f"{float(v.min()):g}–{top:g}{', not whole numbers' if not whole else ''}"
                f"{', unit hint in the name/header' if hint else ''}); pass --trace-kind utilisation if so"]
    return []


def _header_kind(column: str) -> TraceKind | None:
    """The kind a header's value column names (`cpu_utilisation`, `requests_per_second`, …), if any."""
    word = column.strip().lower()
    if any(w in word for w in ("util", "cpu")):
        return "utilisation"
    # whole words: `tokens_generated` or `moderated_posts` are counts, not rates
    words = set(re.split(r"[^a-z0-9]+", word))
    if words & {"rate", "rps", "qps"} or re.search(r"(per[_ ]?|/)s(ec|econd)?s?\b", word):
        return "rate"
    return None


def _kind_word(word: str, where: str) -> TraceKind:
    kind = _KIND_WORDS.get(word.lower())
    if kind is None:
        raise TraceError(f"{where}: unknown trace kind {word!r}; expected one of {', '.join(KINDS)}")
    return kind


def load_trace(path: str | Path, kind: str | None = None) -> Trace:
    p = Path(path)
    if kind is not None and kind not in KINDS:
        raise TraceError(f"--trace-kind {kind!r}: expected one of {', '.join(KINDS)}")
    try:
        text = p.read_text()
    except OSError as exc:
        raise TraceError(f"{p}: cannot read the trace ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TraceError(f"{p}: not a text file (expected CSV timestamp_seconds,value)") from None
    return parse_trace(text, p.name, cast(TraceKind | None, kind))


_MS = re.compile(r"^[^,;]*(\bms\b|_ms\b|milli)", re.IGNORECASE)  # the timestamp column names milliseconds
EPOCH_MS = 1e11  # as seconds, year 5138; as milliseconds, 1973: a timestamp this large is epoch milliseconds


def _in_milliseconds(header: str, times: np.ndarray) -> bool:
    """Epoch milliseconds read as seconds stretch a trace 1000-fold (an hour becomes 42 days, and
    costs 1000 times as much) without a single error: say so and convert."""
    return bool(_MS.search(header)) or float(times[0]) >= EPOCH_MS


def _timestamp(text: str) -> float | None:
    """Seconds, or an ISO 8601 time (UTC when it has no zone); None when it is neither."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
