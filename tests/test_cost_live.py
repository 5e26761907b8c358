"""`surge cost` against a real Prometheus holding a backfilled, hand-computed cluster history.

Worked example (window W = [T, T+2h)):
  node-spot  m5.xlarge  spot       us-east-1a  NodePool general  4 cores 16 GiB        spot $0.07/h (od $0.192)
  node-gpu   g4dn.xlarge on-demand us-east-1b  NodePool gpu      4 cores 16 GiB 1 GPU  $0.526/h
  node-idle  m5.large   on-demand  us-east-1c  NodePool general  2 cores 8 GiB, no pods $0.096/h
  web/web-1     on node-spot  req 1 core 2 GiB, uses 0.5 core 1 GiB      2 h  → charged the request
  web/web-2     on node-spot  req 1 core 2 GiB, uses 1.5 core 3 GiB      2 h  → charged the usage
  batch/job-1   on node-spot  req 0.5 core 1 GiB, uses 0.2 core 0.5 GiB  1 h (second hour)
  ml/infer-0    on node-gpu   req 2 cores 8 GiB 1 GPU, uses 1 core 4 GiB 2 h
Unit prices (OpenCost split, ratios CPU:RAM:GPU = 0.031611 : 0.004237 : 0.95):
  node-spot: RAM 0.07 / (4·7.46070 + 16) = 0.00152696 $/GiB-h, CPU 0.01139217 $/core-h
  node-gpu:  RAM 0.526 / (224.2152 + 4·7.46070 + 16) = 0.00194773, CPU 0.01453143, GPU 0.43671061
Expected: web 2·(1·cpuA + 2·ramA) + 2·(1.5·cpuA + 3·ramA) = $0.072230, batch 0.5·cpuA + 1·ramA = $0.007223,
  ml 2·(2·cpuB + 8·ramB + gpuB) = $0.962711; total 2·(0.07 + 0.526 + 0.096) = $1.384; idle $0.341836;
  spot savings 2·(0.192 − 0.07) = $0.244.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.cost.allocation import IDLE, UNKNOWN
from autoscaler.cost.prices import PriceBook, SpotRow, catalog_on_demand, spot_changes
from autoscaler.cost.prom import Prometheus
from autoscaler.cost.report import run_cost
from tests.fixtures.promhistory import OpenMetricsWriter, SynthNode, SynthPod, backfill, prometheus_on, write_cluster
from tests.servers import Server

GIB = 1024 ** 3
H = 3600.0


def cluster(t: float) -> tuple[list[SynthNode], list[SynthPod]]:
    end = t + 2 * H
    nodes = [
        SynthNode("node-spot", "m5.xlarge", "spot", "us-east-1a", "general", 4, 16 * GIB, 0, t, end),
        SynthNode("node-gpu", "g4dn.xlarge", "on-demand", "us-east-1b", "gpu", 4, 16 * GIB, 1, t, end),
        SynthNode("node-idle", "m5.large", "on-demand", "us-east-1c", "general", 2, 8 * GIB, 0, t, end),
    ]
    pods = [
        SynthPod("web", "web-1", "node-spot", "ReplicaSet", "web-5d8f", 1, 2 * GIB, 0.5, 1 * GIB, t, end,
                 deployment="web", labels={"team": "shop"}),
        SynthPod("web", "web-2", "node-spot", "ReplicaSet", "web-5d8f", 1, 2 * GIB, 1.5, 3 * GIB, t, end,
                 deployment="web", labels={"team": "shop"}),
        SynthPod("batch", "job-1", "node-spot", "Job", "nightly", 0.5, 1 * GIB, 0.2, 0.5 * GIB, t + H, end),
        SynthPod("ml", "infer-0", "node-gpu", "StatefulSet", "infer", 2, 8 * GIB, 1, 4 * GIB, t, end, gpu_request=1,
                 labels={"team": "ml"}),
    ]
    return nodes, pods


def bad_cluster(t: float) -> tuple[list[SynthNode], list[SynthPod]]:
    """Two hours of broken inputs: a node with no labels nor capacity, an unknown instance type, a
    node with a 30-minute gap in its samples, a pod on a node no metric describes, a pod without
    kube_pod_info."""
    end = t + 2 * H
    nodes = [
        SynthNode("node-bare", None, None, None, None, None, None, 0, t, end),
        SynthNode("node-odd", "z9.mega", "on-demand", "us-east-1a", "general", 2, 4 * GIB, 0, t, end),
        SynthNode("node-gap", "m5.large", "on-demand", "us-east-1a", "general", 2, 8 * GIB, 0, t, end,
                  gaps=((t + 30 * 60, t + 60 * 60),)),
    ]
    pods = [
        SynthPod("a", "on-bare", "node-bare", "<none>", "<none>", 1, 1 * GIB, 0.1, 0.1 * GIB, t, end),
        SynthPod("a", "on-odd", "node-odd", "<none>", "<none>", 1, 1 * GIB, 0.1, 0.1 * GIB, t, end),
        SynthPod("b", "on-gap", "node-gap", "<none>", "<none>", 1, 1 * GIB, 0.1, 0.1 * GIB, t, end),
        SynthPod("b", "ghost-pod", "node-ghost", "<none>", "<none>", 1, 1 * GIB, 0.1, 0.1 * GIB, t, end),
        SynthPod("c", "no-info", "node-gap", "<none>", "<none>", 0.5, 1 * GIB, 0.1, 0.1 * GIB, t, end, info=False),
    ]
    return nodes, pods


def recorded_cluster(t: float) -> tuple[list[SynthNode], list[SynthPod]]:
    """Two hours in which a cost exporter recorded node-rec's prices (spot, $0.05/h) but not node-book's."""
    end = t + 2 * H
    return ([SynthNode("node-rec", "m5.xlarge", "spot", "us-east-1a", "general", 4, 16 * GIB, 0, t, end),
             SynthNode("node-book", "m5.large", "on-demand", "us-east-1a", "general", 2, 8 * GIB, 0, t, end)],
            [SynthPod("rec", "r-1", "node-rec", "<none>", "<none>", 1, 2 * GIB, 0.5, 1 * GIB, t, end)])


REC_PRICES = {"node_total_hourly_cost": 0.05, "node_cpu_hourly_cost": 0.008, "node_ram_hourly_cost": 0.001,
              "node_gpu_hourly_cost": 0.0}


@pytest.fixture(scope="module")
def history() -> Iterator[tuple[str, float, float]]:
    """(Prometheus URL, T of the worked example, T of the broken one)."""
    t_good = (time.time() // H) * H - 4 * H
    t_bad = t_good - 3 * H
    with tempfile.TemporaryDirectory(prefix="surge-cost-") as tmp:
        om = Path(tmp, "history.om")
        g_nodes, g_pods = cluster(t_good)
        b_nodes, b_pods = bad_cluster(t_bad)
        r_nodes, r_pods = recorded_cluster(t_bad - 3 * H)
        with om.open("w") as f:
            w = OpenMetricsWriter(f)
            write_cluster(w, g_nodes + b_nodes + r_nodes, g_pods + b_pods + r_pods, 60.0,
                          scaled_objects=[("web", "web-so", "Deployment", "web")])
            rec_minutes = [t_bad - 3 * H + 60 * i for i in range(120)]
            for name, price in REC_PRICES.items():
                w.family(name, [({"instance": "node-rec", "node": "node-rec", "instance_type": "m5.xlarge",
                                  "region": "us-east-1", "provider_id": "aws:///us-east-1a/i-1", "arch": "amd64"},
                                 [(t, price) for t in rec_minutes])])
            minutes = [t_good + 60 * i for i in range(120)]
            w.family("keda_scaler_metrics_value", [
                ({"namespace": "web", "scaledObject": "web-so", "scaler": "redisScaler", "triggerIndex": "0",
                  "metric": "s0-redis-jobs"}, [(t, backlog_at(i)) for i, t in enumerate(minutes) if not 50 <= i < 60]),
                ({"namespace": "web", "scaledObject": "ghost-so", "scaler": "redisScaler", "triggerIndex": "0",
                  "metric": "s0-redis-q"}, [(t, 5.0) for t in minutes]),
                ({"namespace": "web", "scaledObject": "api-so", "scaler": "prometheusScaler", "triggerIndex": "0",
                  "metric": "s0-prometheus"}, [(t, 40.0 if 60 <= i < 90 else 5.0) for i, t in enumerate(minutes)])])
            w.family("kube_deployment_status_replicas_available", [
                ({"namespace": "web", "deployment": "web"}, [(t, 2.0) for t in minutes])])
            w.close()
        backfill(om, Path(tmp, "data"))
        with prometheus_on(Path(tmp, "data")) as url:
            yield url, t_good, t_bad


def backlog_at(i: int) -> float:
    """web-so's queue: empty, then 1,500 items piling up for 20 minutes (more than 2 pods serve), draining."""
    if 30 <= i < 50:
        return 1500.0 * (i - 29)
    if 50 <= i < 90:
        return max(0.0, 30000.0 - 1500.0 * (i - 49))
    return 0.0


WEB_SO = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web-so, namespace: web}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 1
  maxReplicaCount: 50
  triggers:
    - type: redis
      metadata: {address: "redis:6379", listName: jobs, listLength: "100"}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: api-so, namespace: web}
spec:
  scaleTargetRef: {name: web}
  maxReplicaCount: 50
  triggers:
    - type: prometheus
      metadata: {serverAddress: "http://prometheus:9090", query: "sum(rate(http_requests_total[1m]))", threshold: "10"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: web, resources: {requests: {cpu: "1", memory: 2Gi}}}]
"""


def worked_book() -> PriceBook:
    rows = [SpotRow("m5.xlarge", "us-east-1a", 0.07, 0.0)]
    return PriceBook("us-east-1", catalog_on_demand(), "catalog", spot_changes(rows), "test rows")


R, G = 0.031611 / 0.004237, 0.95 / 0.004237
RAM_A = 0.07 / (4 * R + 16)
CPU_A = RAM_A * R
RAM_B = 0.526 / (G + 4 * R + 16)
CPU_B, GPU_B = RAM_B * R, RAM_B * G
RAM_GAP = 0.096 / (2 * R + 8)  # node-gap, m5.large


def test_worked_example_by_namespace(history: tuple[str, float, float]) -> None:
    url, t, _ = history
    run = run_cost(Prometheus(url), t, t + 2 * H, 300, "namespace", lambda types, zones: worked_book())
    a = run.allocation
    rows = {r["name"]: r for r in a.rows()}
    web = 2 * (1 * CPU_A + 2 * RAM_A) + 2 * (1.5 * CPU_A + 3 * RAM_A)
    batch = 1 * (0.5 * CPU_A + 1 * RAM_A)
    ml = 2 * (2 * CPU_B + 8 * RAM_B + GPU_B)
    g = a.groups
    assert g["web"].total == pytest.approx(web, rel=1e-9) and round(g["web"].total, 6) == 0.072230
    assert g["batch"].total == pytest.approx(batch, rel=1e-9) and round(g["batch"].total, 6) == 0.007223
    assert g["ml"].total == pytest.approx(ml, rel=1e-9) and round(g["ml"].total, 6) == 0.962711
    assert g["ml"].gpu == pytest.approx(2 * GPU_B, rel=1e-9)
    assert a.total == pytest.approx(1.384, abs=1e-9)
    assert rows[IDLE]["total"] == pytest.approx(1.384 - web - batch - ml, abs=1e-6)
    assert round(a.idle, 6) == 0.341836
    # every dollar accounted for, to the cent and beyond
    assert abs(a.allocated + a.idle - a.total) < 1e-9
    assert round(a.allocated, 2) + round(a.idle, 2) == pytest.approx(round(a.total, 2), abs=0.0051)
    assert a.spot_savings == pytest.approx(2 * (0.192 - 0.07), abs=1e-9)
    assert a.nodes["node-idle"].idle == pytest.approx(0.192, abs=1e-9)
    assert a.nodes["node-idle"].allocated.total == 0
    assert a.nodes["node-spot"].cost.total == pytest.approx(0.14, abs=1e-9)
    assert a.problems == []
    assert rows["web"]["hours"] == pytest.approx(4.0) and rows["batch"]["hours"] == pytest.approx(1.0)
    # the stacked series adds up to the total in every chunk
    for i in range(len(a.series_t)):
        assert sum(vs[i] for vs in a.series.values()) == pytest.approx(a.series_total[i], abs=1e-12)


@pytest.mark.parametrize(("by", "expected"), [
    ("workload", {"web/Deployment/web", "batch/Job/nightly", "ml/StatefulSet/infer"}),
    ("nodepool", {"general", "gpu"}),
    ("label:team", {"shop", "ml", UNKNOWN}),
    ("scaledobject", {"web/web-so", f"batch/{UNKNOWN}", f"ml/{UNKNOWN}"}),
])
def test_worked_example_groupings(history: tuple[str, float, float], by: str, expected: set[str]) -> None:
    url, t, _ = history
    run = run_cost(Prometheus(url), t, t + 2 * H, 300, by, lambda types, zones: worked_book())
    rows = {r["name"]: r["total"] for r in run.allocation.rows()}
    assert set(rows) - {IDLE} == expected
    assert sum(rows.values()) == pytest.approx(1.384, abs=1e-9)


def test_cli_json_offline_prices_and_html_in_chromium(history: tuple[str, float, float], tmp_path: Path) -> None:
    url, t, _ = history
    result = CliRunner().invoke(app, ["cost", "--prometheus", url, "--window", "2h", "--end", str(t + 2 * H),
                                      "--by", "namespace", "--format", "json", "--report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    s = out["summary"]
    # offline: the spot node has no spot price, so it is priced on demand and no savings are claimed
    assert s["total"] == pytest.approx(2 * (0.192 + 0.526 + 0.096), abs=1e-6)
    assert s["spot_savings"] == 0
    assert any("node-spot" in p["item"] and "no spot price" in p["message"] for p in out["problems"])
    assert any("offline prices" in n for n in out["notes"])
    assert s["allocated"] + s["idle"] == pytest.approx(s["total"], abs=1e-6)
    csv_text = (tmp_path / "cost.csv").read_text()
    assert csv_text.splitlines()[0] == "name,hours,cpu,ram,gpu,total,share" and "__idle__" in csv_text

    dom = render(tmp_path / "cost.html")
    # the stacked cost chart (ml, web, batch, idle), the bars, the idle/spot shares: SVG in the page
    assert dom.count("<svg") == 3 and dom.count('class="series"') == 4 + 2
    assert "idle share" in dom and "spot share" in dom and "cost by namespace" in dom
    groups = dom.split('class="groups"')[1].split("</table>")[0]
    assert [cell.split("<")[0] for cell in groups.split("<td>")[1:] if cell.split("<")[0] in
            {"ml", "web", "batch", "__idle__"}] == ["ml", "web", "batch", "__idle__"]
    assert "<td>node-idle</td>" in dom


def render(page: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="surge-chromium-") as profile:
        done = subprocess.run(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_bad_inputs_reported_and_reconciled(history: tuple[str, float, float]) -> None:
    url, _, t = history
    run = run_cost(Prometheus(url), t, t + 2 * H, 300, "workload", lambda types, zones: worked_book())
    a = run.allocation
    said = {p.item: p.message for p in a.problems}
    assert "no capacity" in said["node node-bare"]
    assert "has no known price" in said["node node-odd"]
    assert "gap" in said["node node-gap"]
    assert "no metric describes" in said["pod b/ghost-pod"]
    assert "no kube_pod_info" in said["pod c/no-info"]
    # nothing dropped: the pod without kube_pod_info is the workload "unknown" of its namespace
    assert a.groups[f"c/{UNKNOWN}"].total == pytest.approx(2 * (0.5 * RAM_GAP * R + 1 * RAM_GAP), rel=1e-6)
    # the node nobody described costs what its pod was charged at OpenCost's default prices
    assert a.nodes[UNKNOWN].cost.total == pytest.approx(2 * (1 * 0.031611 + 1 * 0.004237), rel=1e-9)
    # node-odd (unknown type) is priced at default unit prices for its capacity
    assert a.nodes["node-odd"].cost.total == pytest.approx(2 * (2 * 0.031611 + 4 * 0.004237), rel=1e-9)
    # node-gap had no samples for 30 of 120 minutes; Prometheus's 5-minute lookback still finds the
    # last sample at the first step of the gap, so it counts 1.5 h + one 5-minute step
    assert a.nodes["node-gap"].hours == pytest.approx(1.5 + 5 / 60)
    assert abs(a.allocated + a.idle - a.total) < 1e-9
    # the terminal table says the same, item by item
    result = CliRunner().invoke(app, ["cost", "--prometheus", url, "--window", "2h", "--end", str(t + 2 * H)])
    assert result.exit_code == 0, result.output
    assert "__idle__" in result.output and "problem: node node-odd" in result.output
    assert "problem: pod b/ghost-pod" in result.output


def test_what_if_keda_karpenter_replays_recorded_readings(history: tuple[str, float, float], tmp_path: Path) -> None:
    url, t, _ = history
    manifests = tmp_path / "web.yaml"
    manifests.write_text(WEB_SO)
    result = CliRunner().invoke(app, ["cost", "--prometheus", url, "--window", "2h", "--end", str(t + 2 * H),
                                      "--by", "namespace", "--format", "json", "--what-if", "keda-karpenter",
                                      "--scaledobject", str(manifests), "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)["what_if"]
    by = {w["scaledObject"]: w for w in out["workloads"]}
    web, ghost = by["web-so"], by["ghost-so"]
    # actual: the cost of web-so's pods (web-1, web-2) at offline prices (node-spot priced on demand)
    ram, cpu = 0.192 / (4 * R + 16), 0.192 / (4 * R + 16) * R
    assert web["actual_cost"] == pytest.approx(2 * (1 * cpu + 2 * ram) + 2 * (1.5 * cpu + 3 * ram), rel=1e-5)
    assert web["signal"] == "backlog" and web["keda_karpenter"]["cost_usd"] > 0
    # the burst overwhelms 2 replicas at 10 items/s: the estimated actual wait passes the 60 s SLO
    assert web["actual_slo_violation_minutes"] > 0
    # readings every 5 minutes (--step); the 10 minutes without samples leave one step past the lookback
    assert any("1 of 24 steps had no reading" in n for n in web["notes"])
    assert any("bundled sample" in n for n in ghost["notes"]) and ghost["actual_cost"] == 0
    # a rate trigger's readings are the arrival rate itself; no wait estimate exists for the actual run
    api = by["api-so"]
    assert api["signal"] == "rate" and api["actual_slo_violation_minutes"] is None
    assert api["keda_karpenter"]["cost_usd"] > 0
    assert out["assumptions"]["pod_rate"] == 10.0 and any("lower bound" in n for n in out["notes"])
    assert "What if KEDA + Karpenter" in (tmp_path / "r" / "cost.html").read_text()


def test_cli_live_prices_against_moto_fall_back_and_say_so(history: tuple[str, float, float],
                                                           moto_server: Server) -> None:
    url, t, _ = history
    result = CliRunner().invoke(app, ["cost", "--prometheus", url, "--window", "2h", "--end", str(t + 2 * H),
                                      "--format", "json", "--live-prices",
                                      "--aws-endpoint-url", f"http://{moto_server.address}"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert any("Pricing API unavailable" in n for n in out["notes"])
    assert any("90-day" in n for n in out["notes"])  # moto's placeholder spot history is not used
    assert out["summary"]["total"] == pytest.approx(2 * (0.192 + 0.526 + 0.096), abs=1e-6)


def test_bad_arguments_exit_2_naming_the_option(history: tuple[str, float, float]) -> None:
    url, _, _ = history
    for args, said in ((["--window", "a week"], "--window"), (["--by", "team"], "--by"),
                       (["--format", "xml"], "--format"), (["--what-if", "hpa"], "--what-if")):
        result = CliRunner().invoke(app, ["cost", "--prometheus", url, *args])
        assert result.exit_code == 2 and said in result.output, result.output
    result = CliRunner().invoke(app, ["cost", "--prometheus", "http://127.0.0.1:9", "--window", "1h"])
    assert result.exit_code == 2 and "unreachable" in result.output


def test_recorded_node_prices_are_used_where_present(history: tuple[str, float, float]) -> None:
    """Where a cost exporter recorded node prices (OpenCost's series), they price the node, as OpenCost
    reads them; the price book prices the rest and the on-demand side of spot savings."""
    url, _, t_bad = history
    t = t_bad - 3 * H
    a = run_cost(Prometheus(url), t, t + 2 * H, 300, "namespace", lambda types, zones: worked_book()).allocation
    rec, book = a.nodes["node-rec"], a.nodes["node-book"]
    assert rec.price_source == "recorded" and rec.cost.total == pytest.approx(2 * 0.05)
    assert rec.spot_savings == pytest.approx(2 * (0.192 - 0.05))
    assert a.groups["rec"].total == pytest.approx(2 * (1 * 0.008 + 2 * 0.001))  # the recorded unit prices
    assert book.price_source == "on-demand" and book.cost.total == pytest.approx(2 * 0.096)
    assert abs(a.allocated + a.idle - a.total) < 1e-12 and a.problems == []
    off = run_cost(Prometheus(url), t, t + 2 * H, 300, "namespace", lambda types, zones: worked_book(),
                   use_recorded=False).allocation
    assert off.nodes["node-rec"].cost.total == pytest.approx(2 * 0.07)  # the book's spot price instead
