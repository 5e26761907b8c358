"""`surge simulate` on material it was not tuned on: other resolutions, units, start times, gaps,
levels, and ScaledObjects as KEDA's docs write them (credentials behind a TriggerAuthentication,
small maxReplicaCount, a Prometheus threshold in requests per second). Property tests hold for
every policy; each finding of the held-out run has a test that fails without its fix
(docs/simulator.md, "Held-out checks")."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.simulate.inputs import InputError, build_setup
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.report import warnings
from autoscaler.simulate.run import PolicyResult, Setup, simulate
from autoscaler.simulate.trace import Trace, TraceError, parse_trace
from tests.test_simulate import DEPLOYMENT, NODEPOOL, SO

POLICIES = ("static-peak", "keda-karpenter", "surge")
A = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0)
# a few examples, no shrinking (a simulated run is too slow to shrink over): the failing example is printed
PROPERTY = settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

KAFKA = SO.replace("minReplicaCount: 0", "minReplicaCount: {min}")
# KEDA's documented SQS example: the credentials live in a TriggerAuthentication (a Secret)
SQS = KAFKA.format(min=0, max=50).split("  triggers:")[0] + """  triggers:
  - type: aws-sqs-queue
    authenticationRef: {name: keda-trigger-auth-aws-credentials}
    metadata: {queueURL: myQueue, queueLength: "5", awsRegion: eu-west-1}
"""
# KEDA's documented Prometheus example: the threshold is requests per second per replica
PROMETHEUS = SQS.split("  triggers:")[0] + """  triggers:
  - type: prometheus
    metadata: {serverAddress: "http://p:9090", threshold: "100", query: "sum(rate(http_requests_total[2m]))"}
"""


def setup_for(tmp: Path, so: str = KAFKA.format(min=0, max=50), capacity: str = "spot, on-demand",
              policy: str = "WhenEmptyOrUnderutilized", cpu: str = "1000") -> tuple[Setup, list[str]]:
    (tmp / "so.yaml").write_text(so)
    pool = NODEPOOL.format(capacity=capacity, cpu=cpu)
    (tmp / "np.yaml").write_text(pool.replace("WhenEmptyOrUnderutilized", policy))
    (tmp / "dep.yaml").write_text(DEPLOYMENT)
    return build_setup(tmp / "so.yaml", [tmp / "np.yaml"], tmp / "dep.yaml", A)


def csv_text(start: float, interval: float, values: list[float | None], header: str = "timestamp_seconds,value") -> str:
    rows = "".join(f"{start + i * interval:.0f},{'' if v is None else repr(float(v))}\n" for i, v in enumerate(values))
    return f"{header}\n{rows}"


def outcome(r: PolicyResult) -> tuple[float, int, int, int]:
    return round(r.cost_usd, 9), r.slo_violation_minutes, r.scaling_actions, r.node_launches


# a short trace, one-minute rows, 1–40 pods' worth per minute at pod_rate 10/s
loads = st.lists(st.integers(0, 24000), min_size=20, max_size=40)


# --- the same load, written differently, is the same run ----------------------------------------

@PROPERTY
@given(values=loads, start=st.sampled_from([0.0, 43200.0, 804571200.0 + 13 * 3600]))
def test_units_and_start_time_do_not_change_a_run(tmp_path: Path, values: list[int], start: float) -> None:
    """Counts per minute, a rate per second (header and `# kind` comment) and a start at noon or at
    an epoch timestamp describe one load: every policy gives the same cost, SLO and actions."""
    setup, _ = setup_for(tmp_path)
    count = parse_trace(csv_text(0.0, 60.0, [float(v) for v in values]), "c.csv")
    rate = parse_trace(csv_text(start, 60.0, [v / 60 for v in values], "timestamp_seconds,requests_per_second"), "r")
    commented = parse_trace("# kind: rate\n" + csv_text(start, 60.0, [v / 60 for v in values]), "k")
    assert rate.kind == commented.kind == "rate" and count.kind == "count"
    for name in POLICIES:
        policy = policy_named(name)
        expected = outcome(simulate(count, setup, policy, A))
        for other in (rate, commented):
            got = outcome(simulate(other, setup, policy, A))
            assert got[1:] == expected[1:] and got[0] == pytest.approx(expected[0], rel=1e-6), (name, other.name)


@PROPERTY
@given(values=st.lists(st.floats(0.02, 1.0), min_size=20, max_size=40))
def test_utilisation_in_per_cent_or_as_a_fraction_is_one_load(tmp_path: Path, values: list[float]) -> None:
    """The stated rule (work in proportion to utilisation): 0–1 and 0–100 % give the same arrivals,
    so with the scale the CLI derives (--peak-pods) every policy gives the same run."""
    from autoscaler.simulate.run import scale_for

    setup, _ = setup_for(tmp_path)
    frac = parse_trace(csv_text(0.0, 60.0, [round(v, 4) for v in values], "timestamp_seconds,utilization"), "f")
    pct = parse_trace(csv_text(0.0, 60.0, [round(v, 4) * 100 for v in values], "timestamp_seconds,cpu_percent"), "p")
    assert frac.kind == pct.kind == "utilisation"
    np.testing.assert_allclose(frac.counts, pct.counts, rtol=1e-9)
    a = Assumptions(peak_pods=8, spot_interruptions_per_node_hour=0.0)
    for name in POLICIES:
        got = [outcome(simulate(t, setup, policy_named(name), replace(a, scale=scale_for(t, a)))) for t in (frac, pct)]
        assert got[0][1:] == got[1][1:] and got[0][0] == pytest.approx(got[1][0], rel=1e-6), name


# --- more load never costs less; gaps cost nothing -------------------------------------------------

@PROPERTY
@given(values=loads, factor=st.floats(1.5, 4.0))
def test_scaling_a_trace_up_never_lowers_cost(tmp_path: Path, values: list[int], factor: float) -> None:
    """Every policy: the trace × factor (≥ 1.5) costs at least 98 % of the trace. The 2 % margin is
    packing: a bigger fleet may land on a cheaper instance mix for a few minutes."""
    setup, _ = setup_for(tmp_path)
    low = Trace("low", 0.0, 60.0, np.array(values, float))
    high = replace(low, name="high", counts=low.counts * factor)
    for name in POLICIES:
        lo, hi = (simulate(t, setup, policy_named(name), A) for t in (low, high))
        assert hi.cost_usd >= lo.cost_usd * 0.98, (name, lo.cost_usd, hi.cost_usd)


@PROPERTY
@given(values=loads, where=st.floats(0.1, 0.7), length=st.integers(2, 10))
def test_a_gap_is_neither_load_nor_cost(tmp_path: Path, values: list[int], where: float, length: int) -> None:
    """Every policy: no item arrives in a gap, no node-second inside it is charged, and the run
    reports it once."""
    setup, _ = setup_for(tmp_path)
    i = int(where * len(values))
    holed: list[float | None] = [float(v) for v in values]
    holed[i:i + length] = [None] * len(holed[i:i + length])
    trace = parse_trace(csv_text(0.0, 60.0, holed), "holed.csv")
    assert len(trace.gap_notes()) == 1
    gap = (i * 60.0, (i + length) * 60.0)
    for name in POLICIES:
        r = simulate(trace, setup, policy_named(name), A)
        assert r.arrived == pytest.approx(sum(v for v in holed if v is not None))
        inside = [c for t, c in zip(r.series.t, r.series.cost_per_hour, strict=True) if gap[0] < t < gap[1] - 1]
        assert inside and all(c == 0 for c in inside), name
        # the cost chart is what is charged: its integral is the total (it charged the gap before)
        assert sum(r.series.cost_per_hour) * A.tick_s / 3600 == pytest.approx(r.cost_usd, rel=1e-9, abs=1e-12), name


# --- a constant load, at any level, is calm once warm ------------------------------------------------

def ramped(pods: int, hours: float = 2.0, ramp_minutes: int = 30) -> Trace:
    per_minute = pods * 600.0  # pod_rate 10/s
    counts = np.full(int(hours * 60), per_minute)
    counts[:ramp_minutes] = per_minute * np.arange(1, ramp_minutes + 1) / ramp_minutes
    return Trace("flat", 0.0, 60.0, counts)


def calm_after(r: PolicyResult, warm: float) -> tuple[list[float], int]:
    changes = [t for t, a, b in zip(r.series.t[1:], r.series.replicas, r.series.replicas[1:], strict=False)
               if t > warm and a != b]
    return changes, len([n for n in r.nodes if n.launched_at > warm])


@settings(PROPERTY, max_examples=5)
@given(pods=st.integers(1, 30), capacity=st.sampled_from(["spot, on-demand", "on-demand"]))
def test_a_constant_load_at_any_level_is_calm_once_warm(tmp_path: Path, pods: int, capacity: str) -> None:
    """keda-karpenter on WhenEmpty (Karpenter evicts nothing, so nothing feeds the HPA: calm) and
    surge on the default WhenEmptyOrUnderutilized (its drains hand over, docs/simulator.md): at most
    one replica change and one launch after the first hour, and the SLO holds. (surge's handovers
    may still move pods: they are make-before-break, without a replica change or launch.)"""
    warm = 3600.0
    for name, policy in (("keda-karpenter", "WhenEmpty"), ("surge", "WhenEmptyOrUnderutilized")):
        setup, _ = setup_for(tmp_path, capacity=capacity, policy=policy)
        r = simulate(ramped(pods), setup, policy_named(name), A)
        changes, launches = calm_after(r, warm)
        assert len(changes) <= 1 and launches <= 1, (name, pods, changes, launches)
        assert r.slo_violation_minutes <= 5, (name, pods)


# --- resolution ---------------------------------------------------------------------------------------

def test_a_coarser_resolution_of_a_smooth_trace_costs_about_the_same(tmp_path: Path) -> None:
    """A smooth 6-hour day-shaped load at 1, 5 and 15 minutes: interpolation (not steps) keeps
    every policy's cost within 15 % of the 1-minute run. Noisy traces are not held to this: a
    1-minute trace's short peaks are real load that a 15-minute mean hides."""
    setup, _ = setup_for(tmp_path)
    minutes = np.arange(360)
    base = 6000.0 * (1.2 + np.sin(2 * np.pi * minutes / 720))
    for name in POLICIES:
        costs = [simulate(Trace("r", 0.0, 60.0 * k, base.reshape(-1, k).sum(1)), setup, policy_named(name), A).cost_usd
                 for k in (1, 5, 15)]
        assert max(costs) <= min(costs) * 1.15, (name, costs)


# --- findings of the held-out run: ScaledObjects as KEDA's docs write them ----------------------------

def test_a_trigger_whose_credentials_are_in_a_trigger_authentication_is_simulated(tmp_path: Path) -> None:
    """KEDA's SQS example keeps its keys in a TriggerAuthentication; offline nothing is dialled, so
    the trigger is simulated with a note (it was refused as 'no trigger can be simulated')."""
    setup, notes = setup_for(tmp_path, so=SQS)
    assert [(t.type, t.signal, t.target) for t in setup.triggers] == [("aws-sqs-queue", "backlog+inflight", 5.0)]
    assert any("keda-trigger-auth-aws-credentials" in n and "assumed valid" in n for n in notes), notes


def test_no_simulatable_trigger_names_the_file_and_each_reason(tmp_path: Path) -> None:
    broken = SQS.replace("    authenticationRef: {name: keda-trigger-auth-aws-credentials}\n", "")
    with pytest.raises(InputError) as err:
        setup_for(tmp_path, so=broken)
    message = str(err.value)
    assert str(tmp_path / "so.yaml") in message and "ScaledObject/worker: spec.triggers" in message
    assert "awsSecretAccessKey" in message  # why this aws-sqs-queue trigger is not simulated


def test_a_rate_target_above_what_a_pod_serves_is_warned_about(tmp_path: Path) -> None:
    """KEDA's Prometheus example targets 100 requests/s per replica; at --pod-rate 10 every policy
    but static-peak falls behind all day. The report says why instead of only counting SLO minutes."""
    _, notes = setup_for(tmp_path, so=PROMETHEUS)
    assert any("targets 100/s per replica" in n and "--pod-rate" in n for n in notes), notes
    _, fine = setup_for(tmp_path, so=PROMETHEUS.replace('threshold: "100"', 'threshold: "10"'))
    assert not any("per replica" in n for n in fine)


def test_default_peak_pods_fits_the_scaledobjects_max_replicas(tmp_path: Path) -> None:
    """`--peak-pods` defaults to 20; against maxReplicaCount 8 that left every autoscaled policy
    short at every busy minute. The default is capped (and said); an explicit value is kept."""
    setup_for(tmp_path, so=KAFKA.format(min=0, max=8))
    trace = tmp_path / "t.csv"
    trace.write_text(csv_text(0.0, 60.0, [float(600 * (1 + i % 5)) for i in range(30)]))
    base = ["simulate", "--trace", str(trace), "--scaledobject", str(tmp_path / "so.yaml"), "--nodepool",
            str(tmp_path / "np.yaml"), "--deployment", str(tmp_path / "dep.yaml"), "--policy", "keda-karpenter",
            "--format", "json"]
    runner = CliRunner()
    default = json.loads(runner.invoke(app, base).output)
    explicit = json.loads(runner.invoke(app, [*base, "--peak-pods", "20"]).output)
    p99 = float(np.percentile([600 * (1 + i % 5) / 60 for i in range(30)], 99))
    assert default["trace_scale"] == pytest.approx(8 * 10 / p99, rel=1e-5)
    assert explicit["trace_scale"] == pytest.approx(20 * 10 / p99, rel=1e-5)
    assert any("maxReplicaCount (8)" in n for n in default["notes"])
    assert not any("maxReplicaCount (8) instead" in n for n in explicit["notes"])


# --- findings of the held-out run: NodePool limits that bind --------------------------------------

def test_limits_that_bind_are_blamed_for_static_peaks_pending_pods(tmp_path: Path) -> None:
    """static-peak's one packing left the pods beyond an 8-CPU limit Pending and the report said
    they waited for 'the batch window and node boot, not a NodePool limit'."""
    setup, _ = setup_for(tmp_path, cpu="8")
    trace = Trace("t", 0.0, 60.0, np.full(20, 12000.0))  # 20 pods' worth
    r = simulate(trace, setup, policy_named("static-peak"), A)
    assert r.unplaceable_pods > 0
    said = warnings([r], setup.spec.max_replicas, A)
    assert any("could not be placed" in n for n in said) and not any("not a NodePool limit" in n for n in said)


def test_pending_pods_at_a_binding_limit_do_not_replan_the_same_answer(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pods Pending at a binding limit are retried every 30 s; each retry ran make_plan (an LP) on
    the same remaining limits: 44 s per simulated day instead of 4. The plan is memoised on what
    the limits leave, so the run is the same and plans only when something changed."""
    import autoscaler.simulate.run as run

    calls = []

    def counting(*args: object, **kw: object) -> object:
        calls.append(1)
        return make_plan(*args, **kw)  # type: ignore[arg-type]

    from provisioner.plan import make_plan

    monkeypatch.setattr(run, "make_plan", counting)
    setup, _ = setup_for(tmp_path, cpu="8")
    trace = Trace("t", 0.0, 60.0, np.full(180, 12000.0))  # 3 h of 20 pods' worth, 8 CPUs allowed
    r = simulate(trace, setup, policy_named("keda-karpenter"), A)
    assert r.unplaceable_pods > 0 and r.pending_pod_seconds > 0
    assert len(calls) < 40, len(calls)  # 3 h of 30-s retries was > 300 plans


# --- findings of the held-out run: how timestamps are written -------------------------------------

@pytest.mark.parametrize(("header", "scale"), [("timestamp_ms,value", 1000), ("timestamp,value", 1000),
                                               ("timestamp_seconds,value", 1)])
def test_millisecond_timestamps_are_not_read_as_seconds(header: str, scale: int) -> None:
    """Epoch milliseconds read as seconds made a 2-hour trace 83 days long and 1000 times as dear."""
    text = header + "\n" + "".join(f"{(1628640000 + 60 * i) * scale},{10 + i % 7}\n" for i in range(120))
    trace = parse_trace(text, "ms.csv")
    assert trace.interval == 60 and trace.start == 1628640000 and trace.span == 7200
    assert any("milliseconds" in n for n in trace.notes) == (scale == 1000)


def test_iso_timestamps_are_read_as_utc_and_bad_ones_name_the_line() -> None:
    rows = "".join(f"2021-08-11T00:{i:02d}:00{'Z' if i % 2 else ''},{10 + i}\n" for i in range(30))
    trace = parse_trace("time,value\n" + rows, "iso.csv")
    assert trace.start == 1628640000 and trace.interval == 60 and trace.counts[3] == 13
    with pytest.raises(TraceError, match=r"iso.csv:3: expected two numbers \(the timestamp may be ISO 8601\)"):
        parse_trace("time,value\n2021-08-11T00:00:00Z,1\n11/08/2021 00:01,2\n", "iso.csv")


def test_an_off_grid_timestamp_is_quoted_as_written() -> None:
    """The message printed 1.62864e+09 for 1628643007: the reader could not find the row."""
    rows = "".join(f"{1628640000 + 60 * i + (7 if i == 50 else 0)},1\n" for i in range(60))
    with pytest.raises(TraceError, match=r"t.csv:52: timestamp 1628643007 is off the 60 s grid"):
        parse_trace("timestamp_seconds,value\n" + rows, "t.csv")


@pytest.mark.parametrize(("column", "kind"), [
    ("tokens_generated", "count"), ("moderated_posts", "count"), ("separate_jobs", "count"),  # were rates (× interval)
    ("requests_per_minute", "count"), ("requests/s", "rate"), ("requests per second", "rate"),
    ("req_rate", "rate"), ("events_per_sec", "rate"), ("qps", "rate"), ("cpu_percent", "utilisation"),
])
def test_the_header_names_the_kind_by_whole_words(column: str, kind: str) -> None:
    """`rate` inside `generated` made a count trace a rate: every value × the interval (60× for
    one-minute rows)."""
    trace = parse_trace(f"timestamp_seconds,{column}\n0,3\n60,4\n120,5\n", "t.csv")
    assert trace.kind == kind


def test_days_shorter_than_the_rows_it_needs_says_what_is_simulated() -> None:
    """`--days 0.01` of an hourly trace simulated two hours without a word."""
    trace = parse_trace("timestamp_seconds,value\n" + "".join(f"{3600 * i},5\n" for i in range(48)), "h.csv")
    cut, note = trace.head(0.01 * 86400)
    assert cut.span == 7200 and note is not None and "first 2 rows (2 h)" in note
    day, said = trace.head(86400)
    assert day.span == 86400 and said is None  # whole rows: nothing to say


# --- findings of the held-out run: a cron trigger beside a queue ----------------------------------

CRON = KAFKA.format(min=0, max=30) + """    - type: cron
      metadata: {timezone: Europe/Berlin, start: "0 8 * * *", end: "0 18 * * *", desiredReplicas: "5"}
"""


@pytest.mark.parametrize("policy", ["keda-karpenter", "surge"])
def test_a_cron_trigger_holds_its_replicas_inside_its_window(tmp_path: Path, policy: str) -> None:
    """KEDA's cron scaler (https://keda.sh/docs/latest/scalers/cron/): desiredReplicas from start to
    end in its time zone, nothing outside. It read 0 ('not simulated'), so a ScaledObject with an
    office-hours floor was simulated without it. The window is the operator's own `in_window`, at
    the trace's timestamps: 08:00–18:00 Berlin in July is 06:00–16:00 UTC."""
    setup, notes = setup_for(tmp_path, so=CRON)
    assert [t.signal for t in setup.triggers] == ["backlog+inflight", "schedule"]
    assert any("cron" in n and "UTC" in n for n in notes)
    day = 804556800.0  # 1995-07-01 00:00 UTC
    trace = Trace("quiet", day, 60.0, np.zeros(24 * 60))  # no work at all: only the schedule scales
    r = simulate(trace, setup, policy_named(policy), A)
    series = list(zip(r.series.t, r.series.replicas, strict=True))

    def at(hours: float) -> int:
        return [n for t, n in series if t <= hours * 3600][-1]

    assert at(5.95) == 0 and at(6.05) == 5 and at(15.95) == 5  # seen within a 30-s poll
    assert at(16.2) == 0 and max(n for t, n in series if t > 16.2 * 3600) == 0  # cooldown 300 s after the window
    assert r.cost_usd > 0
    only_cron = SQS.split("  triggers:")[0] + "  triggers:\n    - type: cron\n" + CRON.split("    - type: cron\n")[1]
    assert any("only simulated triggers are cron" in n for n in setup_for(tmp_path, so=only_cron)[1])


def test_a_cron_trigger_beside_kafka_keeps_surges_lag_watch(tmp_path: Path) -> None:
    """engine.reaction.watch_interval polled an object with a cron trigger only every
    pollingInterval, though reading cron is the clock: with the cron trigger that the simulation
    now reads, surge lost its one-second wake-up (surge-no-events' numbers). Work arriving at an
    idle consumer outside the window is seen at the next tick again."""
    setup, _ = setup_for(tmp_path, so=CRON)
    quiet = [0.0] * 10 + [600.0] * 20 + [0.0] * 10  # work from 600 s, at midnight: outside the window
    trace = Trace("step", 804556800.0, 60.0, np.array(quiet))
    first = {name: next(t for t, n in zip(r.series.t, r.series.replicas, strict=True) if n > 0)
             for name in ("surge", "surge-no-events") for r in [simulate(trace, setup, policy_named(name), A)]}
    assert first["surge"] <= 605 < 625 <= first["surge-no-events"], first
