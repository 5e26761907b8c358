"""Load traces (`timestamp_seconds,value`, counts per interval) and say exactly what was wrong.

Bad lines are either fatal (non-numeric, unsorted, negative, duplicated: a trace that says two
different things cannot be trusted) or repaired with a note that names the line (a missing
interval becomes zeros — which is what most of the shared traces already do for outages).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class TraceError(ValueError):
    """The trace cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Trace:
    name: str
    start: float
    interval: float  # seconds between rows
    counts: np.ndarray  # per interval; float64, gaps already filled
    notes: tuple[str, ...] = field(default=())

    @property
    def span(self) -> float:
        return self.interval * len(self.counts)

    @property
    def rates(self) -> np.ndarray:
        """Arrivals per second in each interval."""
        return self.counts / self.interval


def parse_trace(text: str, name: str = "trace") -> Trace:
    rows: list[tuple[float, float]] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text))
    for lineno, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if lineno == 1 and not _is_number(row[0]):
            continue  # header
        if len(row) < 2:
            raise TraceError(f"{name}:{lineno}: expected 'timestamp_seconds,value', got {','.join(row)!r}")
        t_raw, v_raw = row[0].strip(), row[1].strip()
        if not _is_number(t_raw) or not _is_number(v_raw):
            raise TraceError(f"{name}:{lineno}: expected two numbers, got {t_raw!r}, {v_raw!r}")
        t, v = float(t_raw), float(v_raw)
        if not math.isfinite(t) or not math.isfinite(v):
            raise TraceError(f"{name}:{lineno}: value is not finite ({t_raw!r}, {v_raw!r})")
        if v < 0:
            raise TraceError(f"{name}:{lineno}: negative value {v_raw} (counts per interval cannot be negative)")
        if rows and t <= rows[-1][0]:
            what = "duplicate" if t == rows[-1][0] else "unsorted"
            raise TraceError(f"{name}:{lineno}: {what} timestamp {t_raw} (previous row has {rows[-1][0]:g}); "
                             "rows must be in increasing time order")
        rows.append((t, v))
        lines.append(lineno)
    if len(rows) < 2:
        raise TraceError(f"{name}: needs at least two rows of 'timestamp_seconds,value', found {len(rows)}")
    times = np.array([r[0] for r in rows])
    steps = np.diff(times)
    values, counts_of = np.unique(steps, return_counts=True)
    interval = float(values[np.argmax(counts_of)])  # the most common step (the smallest among ties)
    notes: list[str] = []
    offsets = (times - times[0]) / interval
    if not np.allclose(offsets, np.round(offsets), atol=1e-6):
        bad = int(np.argmax(np.abs(offsets - np.round(offsets)) > 1e-6))
        raise TraceError(f"{name}:{lines[bad]}: timestamp {times[bad]:g} is off the {interval:g} s grid of the trace")
    index = np.round(offsets).astype(np.int64)
    counts = np.zeros(int(index[-1]) + 1)
    counts[index] = [r[1] for r in rows]
    for pos in np.nonzero(steps > interval * 1.5)[0][:20]:
        missing = round(steps[pos] / interval) - 1
        notes.append(f"{name}: {missing} interval(s) missing after line {lines[pos]} (t={times[pos]:g}); "
                     "filled with 0")
    gaps = int(np.count_nonzero(steps > interval * 1.5))
    if gaps > 20:
        notes.append(f"{name}: {gaps - 20} more gaps filled with 0")
    return Trace(name, float(times[0]), interval, counts, tuple(notes))


def load_trace(path: str | Path) -> Trace:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TraceError(f"{p}: cannot read the trace ({exc.strerror or exc})") from None
    return parse_trace(text, p.name)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
