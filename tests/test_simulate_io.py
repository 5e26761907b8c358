"""Traces as they are (kinds, interpolation, gaps, bad input) and the report as people see it
(rendered in headless Chromium). Excerpts of real traces: tests/data/traces/SOURCES.md."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.htmlpage import nice_ticks, time_ticks
from autoscaler.simulate.inputs import build_setup
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import simulate
from autoscaler.simulate.trace import TraceError, load_trace, parse_trace

DATA = Path(__file__).parent / "data" / "traces"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def csv_text(values: Sequence[float | str], step: int = 60, header: str = "timestamp_seconds,value") -> str:
    return header + "\n" + "".join(f"{i * step},{v}\n" for i, v in enumerate(values))


# --- kinds ----------------------------------------------------------------------------------------

def test_kind_comes_from_the_option_then_the_file_then_count() -> None:
    assert parse_trace(csv_text([1, 2]), "a.csv").kind == "count"
    assert parse_trace(csv_text([1, 2], header="timestamp_seconds,requests_per_second"), "a.csv").kind == "rate"
    assert parse_trace("# kind: utilisation\n" + csv_text([0.5, 0.7]), "a.csv").kind == "utilisation"
    assert parse_trace(csv_text([1, 2], header="t,cpu_utilisation"), "a.csv", kind="count").kind == "count"


def test_rate_and_utilisation_become_arrivals_by_the_stated_rule() -> None:
    rate = parse_trace(csv_text([2.0, 4.0]), "r.csv", kind="rate")
    assert list(rate.counts) == [120.0, 240.0] and list(rate.rates) == [2.0, 4.0]
    percent = parse_trace(csv_text([25, 50, 100]), "u.csv", kind="utilisation")
    assert list(percent.rates) == [0.25, 0.5, 1.0]  # per cent → fraction → arrivals per second
    fraction = parse_trace(csv_text([0.25, 0.5]), "u.csv", kind="utilisation")
    assert list(fraction.rates) == [0.25, 0.5]
    odd = parse_trace(csv_text([50, 150]), "u.csv", kind="utilisation")
    assert list(odd.rates) == [50, 150] and "beyond per cent" in odd.notes[0]


def test_real_cpu_trace_read_as_counts_is_warned_about() -> None:
    t = load_trace(DATA / "crane_cpu_1min_excerpt.csv")
    assert t.kind == "count"
    assert len(t.notes) == 1 and "look like utilisation" in t.notes[0] and "--trace-kind utilisation" in t.notes[0]
    assert not any("look like" in n for n in load_trace(DATA / "crane_cpu_1min_excerpt.csv", "utilisation").notes)
    frac = parse_trace(csv_text([0.1, 0.35, 0.9]), "load.csv")
    assert "a fraction" in frac.notes[0]
    pct = parse_trace(csv_text([10, 35, 90]), "cpu_percent.csv")
    assert "per cent" in pct.notes[0] and "unit hint" in pct.notes[0]
    assert parse_trace(csv_text([10, 35, 90]), "requests.csv").notes == ()  # whole counts, no hint


@pytest.mark.parametrize(("text", "kind", "needle"), [
    ("# kind: bananas\n0,1\n60,2\n", None, "x.csv:1: unknown trace kind 'bananas'"),
    ("t,v\n0,1\n60,inf\n", None, "x.csv:3: value is not finite"),
    ("t,v\n0,1\n60,1e\n", None, "x.csv:3: expected two numbers"),
    ("t,v\n0,\n60,nan\n", None, "x.csv: every value is missing"),
    ("t,v\n0,1\n60,2\n", "watts", "trace kind 'watts' is not one of count, rate, utilisation"),
])
def test_bad_traces_name_the_line(text: str, kind: str | None, needle: str) -> None:
    with pytest.raises(TraceError, match=needle):
        parse_trace(text, "x.csv", kind=kind)  # type: ignore[arg-type]


def test_binary_file_and_bad_kind_option(tmp_path: Path) -> None:
    p = tmp_path / "trace.csv"
    p.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(TraceError, match=r"trace\.csv: not a text file"):
        load_trace(p)
    p.write_text(csv_text([1, 2]))
    with pytest.raises(TraceError, match="--trace-kind 'percent'"):
        load_trace(p, "percent")


# --- interpolation -------------------------------------------------------------------------------

def test_coarse_intervals_are_interpolated_and_keep_their_arrivals() -> None:
    t = parse_trace(csv_text([600, 1200, 1800, 600], step=600), "c.csv")
    a = t.arrivals(5.0)
    assert len(a) == 4 * 120
    assert np.allclose(a.reshape(4, 120).sum(axis=1), [600, 1200, 1800, 600])  # exact per interval
    assert (a >= 0).all()
    second = a[120:240]
    assert second[0] < second[-1]  # rising through a rising interval: not a step
    assert abs(a[119] - a[120]) < abs(600 / 120 - 1200 / 120)  # smoother than the step at the boundary


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.floats(0, 1e6)), min_size=2, max_size=40),
       k=st.sampled_from([1, 2, 5, 12, 120]))
def test_interpolation_keeps_every_interval_and_never_goes_negative(values: list[float | None], k: int) -> None:
    if all(v is None for v in values):
        values[0] = 1.0
    t = parse_trace(csv_text(["" if v is None else repr(v) for v in values], step=60), "p.csv")
    a = t.arrivals(60 / k)
    assert len(a) == len(values) * k and (a >= 0).all()
    per_interval = a.reshape(-1, k).sum(axis=1)
    assert np.allclose(per_interval, np.nan_to_num(t.counts), rtol=1e-9, atol=1e-6)
    assert (per_interval[t.missing] == 0).all()


def test_a_gap_gets_no_arrivals_and_its_edges_stay_flat() -> None:
    t = parse_trace(csv_text([600, "", 600], step=600), "g.csv")
    a, gap = t.arrivals(5.0), t.missing_ticks(5.0)
    assert gap[120:240].all() and not gap[:120].any()
    assert a[120:240].sum() == 0 and np.allclose(a[:120], 5.0) and np.allclose(a[240:], 5.0)


# --- gaps -----------------------------------------------------------------------------------------

def test_real_gap_is_reported_once_and_only_inside_the_window() -> None:
    t = load_trace(DATA / "nab_elb_5min_excerpt.csv")
    (note,) = t.gap_notes()
    assert "no data for 1 interval(s) (5 min) from 2014-04-10 11:34:00 UTC (6.33 h into the trace)" in note
    before, _ = t.head(4 * 3600)
    assert before.gap_notes() == []
    _, say = t.head(30 * 86400)
    assert say is not None and "asked for 30 days but the trace holds only 0.5 days" in say


def test_many_gaps_are_reported_without_flooding() -> None:
    t = parse_trace(csv_text([1.0 if i % 4 else "" for i in range(100)]), "holes.csv")
    notes = t.gap_notes()
    assert len(t.gaps()) == 25 and len(notes) == 21
    assert notes[-1].startswith("holes.csv: 5 more gaps (5 min in all) after t=4800 s")


def test_missing_data_costs_nothing_and_carries_no_load() -> None:
    full = parse_trace(csv_text([300.0] * 120), "f.csv")
    holed = parse_trace(csv_text([300.0] * 30 + [""] * 60 + [300.0] * 30), "h.csv")
    a = replace(Assumptions(), scale=1.0)
    setup, _ = build_setup(assumptions=a)
    static = policy_named("static-peak")
    rf, rh = simulate(full, setup, static, a), simulate(holed, setup, static, a)
    assert rh.cost_usd == pytest.approx(rf.cost_usd / 2, rel=1e-9)  # static nodes, half the time has data
    assert rh.arrived == pytest.approx(300.0 * 60)
    assert any(np.isnan(v) for v in rh.series.load)  # the chart shows the gap


# --- the command and the report -------------------------------------------------------------------

def test_cli_warns_about_days_and_kind(tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["simulate", "--trace", str(DATA / "crane_cpu_1min_excerpt.csv"),
                                      "--days", "3", "--policy", "static-peak", "--format", "json",
                                      "--report", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["trace_kind"] == "count" and data["span_days"] == 0.5
    assert any("asked for 3 days" in n for n in data["notes"])
    assert any("look like utilisation" in n for n in data["notes"])
    result = CliRunner().invoke(app, ["simulate", "--trace", str(DATA / "crane_cpu_1min_excerpt.csv"),
                                      "--trace-kind", "utilisation", "--policy", "static-peak", "--format", "json"])
    data = json.loads(result.output)
    assert data["trace_kind"] == "utilisation" and not any("look like" in n for n in data["notes"])


def test_pending_pods_waiting_for_a_batch_are_not_blamed_on_limits(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(csv_text([0] * 10 + [3000] * 50))
    result = CliRunner().invoke(app, ["simulate", "--trace", str(trace), "--policy", "keda-karpenter",
                                      "--format", "json"])
    data = json.loads(result.output)
    pending = [n for n in data["notes"] if "Pending" in n]
    assert pending and all("not a NodePool limit" in n for n in pending)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


PROBE = """<script>
const q = s => Array.from(document.querySelectorAll(s));
const boxes = q('svg.chart').map(e => e.getBoundingClientRect());
const out = {
  charts: boxes.length,
  chartsShown: boxes.filter(b => b.width > 300 && b.height > 100).length,
  lines: q('svg.chart polyline.series').filter(p => p.getBBox().width > 50).length,
  bars: q('svg.chart rect.bar').length,
  barsShown: q('svg.chart rect.bar').filter(r => r.getBBox().width > 0).length,
  axisLabels: q('svg.chart text').map(t => t.textContent),
  rows: q('table.summary tbody tr').map(r => r.cells[0].textContent),
  tables: q('table').length,
  scrollWidth: document.documentElement.scrollWidth,
};
document.body.insertAdjacentHTML('beforeend', '<pre id="probe">' + JSON.stringify(out) + '</pre>');
</script>"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (scripts/setup.sh)")
def test_report_renders_tables_and_charts_in_chromium(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(csv_text([(i % 30) * 40 for i in range(240)]))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["simulate", "--trace", str(trace), "--report", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<pre>" not in page and "cdn" not in page.lower() and "<script" not in page  # tables, all inline
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,900"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    probe = json.loads(dom.rsplit('<pre id="probe">', 1)[1].split("</pre>", 1)[0])
    assert probe["rows"] == ["static-peak", "keda-karpenter", "surge"]
    assert probe["charts"] == probe["chartsShown"] == 5  # summary + cost over time + one per policy
    assert probe["lines"] >= 3 + 3 * 3  # cost per policy, load/replicas/nodes per policy
    assert probe["bars"] == 9 and probe["barsShown"] >= 3  # 3 measures × 3 policies; every cost is > 0
    assert "$ per hour" in probe["axisLabels"] and "time since the start of the trace" in probe["axisLabels"]
    assert "1 h" in probe["axisLabels"]  # time ticks
    assert probe["tables"] >= 5
    assert probe["scrollWidth"] <= 1000  # readable at 1000 px: nothing runs off the side
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", (out / "report.html").as_uri()], capture_output=True,
                   timeout=120, check=True)
    if os.environ.get("SURGE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["SURGE_KEEP_SCREENSHOT"])
    assert _png_size(shot) == (1000, 900) and shot.stat().st_size > 20_000  # a page with content, not blank


def test_axis_ticks_are_round_and_time_aware() -> None:
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert [label for _, label in time_ticks(3 * 86400)][:4] == ["0 h", "12 h", "1 d", "1 d 12 h"]
    assert [label for _, label in time_ticks(6 * 3600, start=1404172800)][:2] == ["07-01", "01:00"]
