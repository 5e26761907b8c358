"""Self-contained HTML report pages: one look for `surge simulate`, `surge forecast` and `surge cost`.

A page is a title, a few facts and a list of sections; a section holds paragraphs, tables and
charts. Everything is inline (CSS in the page, charts as SVG drawn here), so a report opens offline,
from a file, with nothing fetched — no CDN, no JavaScript. Charts are plain SVG rather than a
plotting library: the figures are line and bar charts of at most a few thousand points, which a
hundred lines draw with labelled axes and time ticks, while matplotlib or plotly would add tens of
megabytes of dependencies (plotly also megabytes of inline JavaScript per page) for the same picture.

Reuse::

    from autoscaler.htmlpage import Line, Section, bar_chart, line_chart, render_page, table

    chart = line_chart("cost over time", [Line("surge", xs, ys)], y_label="$ per hour", start=trace_start)
    rows = table(["policy", "cost $"], [["surge", "12.30"]], numeric={1})
    page = render_page("surge cost", [Section("Summary", [rows, chart])], facts={"cluster": "prod"})

`line_chart` takes x in seconds from `start`; with `start` an epoch (after 1980) the axis shows UTC
dates and times, otherwise time since the start ("6 h", "2 d 12 h"). Lines may hold NaN: the line
breaks there (a gap in the data stays visible). `bar_chart` draws grouped horizontal bars, one
group per label, one panel per measure, so measures of different units sit side by side. Pages are
sized for a 1000-px-wide window (charts scale down below that).
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jinja2 import Environment
from markupsafe import Markup

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
EPOCH_1980 = 315532800.0  # a start later than this is a Unix time (traces from 1995 on exist); earlier is relative

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;max-width:980px;
padding:16px}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px;max-width:100%}
th,td{border:1px solid #d8d8d8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}
td:first-child{white-space:nowrap}
table.facts th{width:16em}
figure{margin:.6em 0 1.2em}figcaption{font-weight:600;margin-bottom:.2em}
svg.chart{width:100%;height:auto;max-width:960px;display:block}
svg.chart text{font-family:inherit;font-size:12px;fill:#333}
.legend{font-size:13px;margin:.1em 0 .3em}.legend span{margin-right:1.2em;white-space:nowrap}
.legend i{display:inline-block;width:18px;height:4px;margin-right:5px;vertical-align:middle}
ul.notes li{margin:.2em 0}.muted{color:#666}
</style></head><body>
<h1>{{ title }}</h1>
{% if subtitle %}<p class="muted">{{ subtitle }}</p>{% endif %}
{% if facts %}{{ facts }}{% endif %}
{% for s in sections %}<section id="{{ s.anchor }}"><h2>{{ s.title }}</h2>
{% for part in s.parts %}{{ part }}
{% endfor %}</section>
{% endfor %}
</body></html>
"""

_ENV = Environment(autoescape=True)
_TEMPLATE = _ENV.from_string(PAGE)


@dataclass(frozen=True)
class Section:
    title: str
    parts: Sequence[str]  # HTML from table / line_chart / bar_chart / paragraph / bullets

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")


@dataclass(frozen=True)
class Line:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str | None = None
    width: float = 1.6
    dashed: bool = False


@dataclass(frozen=True)
class Bars:
    """One measure over the groups (one panel of a bar chart)."""

    title: str
    values: Sequence[float]
    unit: str = ""
    fmt: str = "{:,.2f}"


def render_page(title: str, sections: Sequence[Section], subtitle: str = "",
                facts: Mapping[str, object] | None = None) -> str:
    parts = [Section(s.title, [Markup(p) for p in s.parts]) for s in sections]
    fact_html = Markup(key_values(facts)) if facts else ""
    return _TEMPLATE.render(title=title, subtitle=subtitle, facts=fact_html, sections=parts)


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def bullets(items: Sequence[str], css: str = "notes") -> str:
    if not items:
        return "<p class='muted'>none</p>"
    return f"<ul class='{css}'>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int] | None = None,
          css: str = "") -> str:
    """An HTML table; cells are escaped; columns whose index is in `numeric` are right-aligned."""
    num = numeric or set()

    def cls(i: int) -> str:
        return " class='num'" if i in num else ""

    head = "".join(f"<th{cls(i)}>{html.escape(str(c))}</th>" for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{html.escape(_cell(v))}</td>" for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(items: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_cell(v))}</td></tr>" for k, v in items.items())
    return f"<table class='facts'><tbody>{rows}</tbody></table>"


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_cell(x)}" for k, x in v.items())
    return str(v)


# --- charts ---------------------------------------------------------------------------------------

W, PAD_L, PAD_R, PAD_T, PAD_B = 960, 70, 16, 10, 46


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out: list[float] = []
    v = first
    while not out or out[-1] < hi - step * 1e-9:  # the last tick covers hi
        out.append(round(v, 12))
        v += step
    return out


_TIME_STEPS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
               2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 91 * 86400)


def time_ticks(span: float, start: float = 0.0, count: int = 8) -> list[tuple[float, str]]:
    """(x, label) for a time axis of `span` seconds: dates/times (UTC) for an epoch `start`,
    else elapsed time."""
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    absolute = start >= EPOCH_1980
    out = []
    first = (math.ceil(start / step) * step - start) if absolute and step <= 86400 else 0.0
    x = first
    while x <= span + 1e-9:
        out.append((x, _time_label(start + x if absolute else x, step, absolute)))
        x += step
    return out


def _time_label(t: float, step: float, absolute: bool) -> str:
    if absolute:
        tm = time.gmtime(t)
        if step >= 86400:
            return time.strftime("%Y-%m-%d", tm)
        if step >= 3600 and tm.tm_hour == 0:
            return time.strftime("%m-%d", tm)
        return time.strftime("%H:%M" if step >= 60 else "%H:%M:%S", tm)
    d, rem = divmod(round(t), 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if step >= 86400:
        return f"{d} d"
    if step >= 3600:
        return f"{h} h" if not d else f"{d} d" if not h else f"{d} d {h} h"
    if step >= 60:
        hours = d * 24 + h
        return f"{m} min" if not hours else f"{hours} h" if not m else f"{hours} h {m:02d}"
    return f"{m}:{s:02d}"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return "<div class='legend'>" + "".join(
        f"<span><i style='background:{c}'></i>{html.escape(label)}</span>" for label, c in items) + "</div>"


def line_chart(title: str, lines: Sequence[Line], y_label: str, x_label: str = "", start: float = 0.0,
               span: float | None = None, height: int = 260, y_min: float | None = 0.0) -> str:
    """A time-series chart: x in seconds from `start`, labelled time axis, y axis with its label."""
    colored = [(ln, ln.color or COLORS[i % len(COLORS)]) for i, ln in enumerate(lines)]
    xs = [x for ln in lines for x in ln.x]
    ys = [y for ln in lines for y in ln.y if y is not None and math.isfinite(y)]
    x_hi = span if span is not None else (max(xs) if xs else 1.0)
    x_hi = x_hi or 1.0
    y_lo = y_min if y_min is not None else (min(ys) if ys else 0.0)
    y_hi = max(ys) if ys else 1.0
    if y_hi <= y_lo:
        y_hi = y_lo + 1.0
    yt = nice_ticks(y_lo, y_hi)
    y_hi = max(y_hi, yt[-1])
    pw, ph = W - PAD_L - PAD_R, height - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + x / x_hi * pw

    def py(y: float) -> float:
        return PAD_T + ph - (y - y_lo) / (y_hi - y_lo) * ph

    grid = []
    for v in yt:
        grid.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{py(v):.1f}' y2='{py(v):.1f}' stroke='#e5e5e5'/>"
                    f"<text x='{PAD_L - 6}' y='{py(v) + 4:.1f}' text-anchor='end'>{_num(v)}</text>")
    for x, label in time_ticks(x_hi, start):
        grid.append(f"<line x1='{px(x):.1f}' x2='{px(x):.1f}' y1='{PAD_T}' y2='{PAD_T + ph}' stroke='#f0f0f0'/>"
                    f"<text x='{px(x):.1f}' y='{PAD_T + ph + 16}' text-anchor='middle'>{html.escape(label)}</text>")
    paths = []
    for ln, color in colored:
        dash = " stroke-dasharray='5 3'" if ln.dashed else ""
        for seg in _segments(ln.x, ln.y):
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
            paths.append(f"<polyline class='series' fill='none' stroke='{color}' stroke-width='{ln.width}'"
                         f"{dash} points='{pts}'/>")
    absolute = start >= EPOCH_1980
    xl = x_label or ("time (UTC)" if absolute else "time since the start of the trace")
    axes = (f"<rect x='{PAD_L}' y='{PAD_T}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>"
            f"<text x='{PAD_L + pw / 2:.0f}' y='{height - 6}' text-anchor='middle'>{html.escape(xl)}</text>"
            f"<text transform='translate(14,{PAD_T + ph / 2:.0f}) rotate(-90)' text-anchor='middle'>"
            f"{html.escape(y_label)}</text>")
    svg = (f"<svg class='chart' role='img' aria-label='{html.escape(title)}' viewBox='0 0 {W} {height}' "
           f"xmlns='http://www.w3.org/2000/svg'>{''.join(grid)}{axes}{''.join(paths)}</svg>")
    return (f"<figure><figcaption>{html.escape(title)}</figcaption>"
            f"{_legend([(ln.label, c) for ln, c in colored])}{svg}</figure>")


def _segments(xs: Sequence[float], ys: Sequence[float]) -> list[list[tuple[float, float]]]:
    out: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None or not math.isfinite(y):
            if out[-1]:
                out.append([])
            continue
        out[-1].append((x, y))
    return [s for s in out if s]


def _num(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def bar_chart(title: str, labels: Sequence[str], measures: Sequence[Bars], caption: str = "") -> str:
    """Horizontal bars: one row per label, one panel per measure (each with its own scale and unit)."""
    row_h, gap, label_w = 26, 18, 170
    height = PAD_T + len(labels) * row_h + 40
    panel_w = (W - label_w - PAD_R - gap * (len(measures) - 1)) / max(1, len(measures))
    parts = []
    for i, label in enumerate(labels):
        y = PAD_T + i * row_h + row_h / 2 + 4
        parts.append(f"<text x='{label_w - 8}' y='{y:.1f}' text-anchor='end'>{html.escape(label)}</text>")
    for j, m in enumerate(measures):
        x0 = label_w + j * (panel_w + gap)
        vals = [v if v is not None and math.isfinite(v) else 0.0 for v in m.values]
        hi = max(vals, default=0.0) or 1.0
        inner = panel_w - 70  # room for the value at the bar's end
        parts.append(f"<text x='{x0:.1f}' y='{height - 12}' font-weight='600'>{html.escape(m.title)}"
                     f"{' (' + html.escape(m.unit) + ')' if m.unit else ''}</text>"
                     f"<line x1='{x0:.1f}' x2='{x0:.1f}' y1='{PAD_T}' y2='{PAD_T + len(labels) * row_h}' "
                     "stroke='#999'/>")
        for i, v in enumerate(vals):
            y = PAD_T + i * row_h + 4
            w = max(0.0, v / hi * inner)
            parts.append(f"<rect class='bar' x='{x0:.1f}' y='{y:.1f}' width='{w:.1f}' height='{row_h - 8}' "
                         f"fill='{COLORS[i % len(COLORS)]}'/><text x='{x0 + w + 4:.1f}' y='{y + row_h / 2:.1f}'>"
                         f"{html.escape(m.fmt.format(m.values[i]))}</text>")
    svg = (f"<svg class='chart' role='img' aria-label='{html.escape(title)}' viewBox='0 0 {W} {height}' "
           f"xmlns='http://www.w3.org/2000/svg'>{''.join(parts)}</svg>")
    cap = f"<p class='muted'>{html.escape(caption)}</p>" if caption else ""
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{svg}{cap}</figure>"
