"""The operator's OpenCost-named metrics, served by its registry and scraped by a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from autoscaler.cost.allocation import DEFAULT_CPU_HOURLY, DEFAULT_GPU_HOURLY, DEFAULT_RAM_HOURLY
from autoscaler.cost.exporter import CostCollector, container_samples, install, price_of_catalog
from autoscaler.cost.prices import spec_of
from provisioner.catalog import load_catalog
from tests.fixtures.promhistory import prometheus_on
from tests.k8s.fixture import K8s
from tests.servers import free_port
from tests.test_provisioner_live import vpc  # noqa: F401 - fixture

GIB = 1024 ** 3


def node(name: str, itype: str, capacity: str, zone: str, cpu: str, memory: str,
         gpus: str | None = None) -> dict[str, Any]:
    cap = {"cpu": cpu, "memory": memory, "pods": "58", **({"nvidia.com/gpu": gpus} if gpus else {})}
    return {"metadata": {"name": name, "labels": {
        "node.kubernetes.io/instance-type": itype, "karpenter.sh/capacity-type": capacity,
        "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "us-east-1",
        "karpenter.sh/nodepool": "general", "kubernetes.io/arch": "amd64"}},
        "spec": {"providerID": f"aws:///{zone}/i-{name}"}, "status": {"capacity": cap}}


def pod(ns: str, name: str, node_name: str | None, phase: str, cpu: str, memory: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}},
                                           {"name": "sidecar", "resources": {}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec, "status": {"phase": phase}}


NODES = [node("node-a", "m5.xlarge", "spot", "us-east-1a", "4", "16Gi"),
         node("node-g", "g4dn.xlarge", "on-demand", "us-east-1b", "4", "16Gi", "1"),
         node("node-x", "z9.mega", "on-demand", "us-east-1b", "2", "4Gi")]
PODS = [pod("web", "web-1", "node-a", "Running", "500m", "1Gi"), pod("web", "web-2", None, "Pending", "1", "1Gi"),
        pod("batch", "done-1", "node-a", "Succeeded", "1", "1Gi")]


def test_container_allocations_are_requests_of_bound_live_pods() -> None:
    got = {(labels[1], labels[2], name): v for name, labels, v in container_samples(PODS)}
    assert got == {("web-1", "app", "container_cpu_allocation"): 0.5,
                   ("web-1", "app", "container_memory_allocation_bytes"): GIB,
                   ("web-1", "sidecar", "container_cpu_allocation"): 0.0,
                   ("web-1", "sidecar", "container_memory_allocation_bytes"): 0.0}


def query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=5) as resp:
        return list(json.load(resp)["data"]["result"])


def test_exported_metrics_scraped_by_prometheus() -> None:
    catalog = load_catalog(spot_prices={("m5.xlarge", "us-east-1a"): 0.07})
    registry = CollectorRegistry()
    registry.register(CostCollector(lambda: NODES, lambda: PODS,
                                    lambda: {("web", "web-so"): ("web", "Deployment", "web")},
                                    price_of_catalog(catalog), spec_of, time.time))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with tempfile.TemporaryDirectory(prefix="surge-costmetrics-") as tmp, \
                prometheus_on(Path(tmp), [f"127.0.0.1:{port}"]) as url:
            deadline = time.monotonic() + 30
            while not query(url, "node_total_hourly_cost") and time.monotonic() < deadline:
                time.sleep(0.3)
            total = {r["metric"]["node"]: float(r["value"][1]) for r in query(url, "node_total_hourly_cost")}
            assert total == pytest.approx({"node-a": 0.07, "node-g": 0.526,
                                           "node-x": 2 * DEFAULT_CPU_HOURLY + 4 * DEFAULT_RAM_HOURLY})
            # OpenCost's labels survive the scrape (honor_labels, as OpenCost's own scrape config)
            a = query(url, 'node_cpu_hourly_cost{node="node-a"}')[0]["metric"]
            assert {k: a[k] for k in ("instance", "instance_type", "region", "provider_id", "arch")} == {
                "instance": "node-a", "instance_type": "m5.xlarge", "region": "us-east-1",
                "provider_id": "aws:///us-east-1a/i-node-a", "arch": "amd64"}
            # the split adds back up to the node's price: cores·CPU + GiB·RAM + GPUs·GPU
            parts = query(url, '4 * node_cpu_hourly_cost{node="node-g"} + ignoring() 16 * '
                               'node_ram_hourly_cost{node="node-g"} + ignoring() node_gpu_hourly_cost{node="node-g"}')
            assert float(parts[0]["value"][1]) == pytest.approx(0.526, rel=1e-9)
            gpu = float(query(url, 'node_gpu_hourly_cost{node="node-g"}')[0]["value"][1])
            ram = float(query(url, 'node_ram_hourly_cost{node="node-g"}')[0]["value"][1])
            assert gpu / ram == pytest.approx(DEFAULT_GPU_HOURLY / DEFAULT_RAM_HOURLY)
            spot = {r["metric"]["node"]: float(r["value"][1]) for r in query(url, "kubecost_node_is_spot")}
            assert spot == {"node-a": 1.0, "node-g": 0.0, "node-x": 0.0}
            saved = query(url, "surge_node_spot_savings_hourly")
            assert [(r["metric"]["node"], float(r["value"][1])) for r in saved] == [
                ("node-a", pytest.approx(0.192 - 0.07))]
            assert [float(r["value"][1]) for r in query(url, "node_gpu_count")] != []
            cpu = query(url, 'container_cpu_allocation{container="app"}')
            assert [(r["metric"]["namespace"], r["metric"]["pod"], r["metric"]["node"], float(r["value"][1]))
                    for r in cpu] == [("web", "web-1", "node-a", 0.5)]
            mem = query(url, 'container_memory_allocation_bytes{container="app"}')
            assert float(mem[0]["value"][1]) == GIB
            info = query(url, "surge_scaledobject_target_info")[0]["metric"]
            assert (info["scaledObject"], info["scaleTargetKind"], info["scaleTargetName"]) == ("web-so", "Deployment",
                                                                                               "web")
    finally:
        server.shutdown()
        thread.join(timeout=5)


async def test_operator_exports_the_nodes_its_provisioner_launched(k8s_api: K8s,
                                                                   vpc: dict[str, Any]) -> None:  # noqa: F811
    """The collector as the operator installs it, over the provisioner's live watches: every node it
    launched is priced by its instance type, capacity type and zone."""
    from tests.test_provisioner_live import CATALOG, pending_pod, rig, until

    em = k8s_api.emulator
    for i in range(3):
        em.put("v1", "pods", pending_pod(f"web-{i}"))
    async with rig(k8s_api, vpc) as r:
        await until(lambda: len(em.all("v1", "nodes")) >= 1 and all(
            "karpenter.sh/capacity-type" in (n["metadata"].get("labels") or {}) for n in em.all("v1", "nodes")))
        await asyncio.sleep(0.5)  # the watch delivers the labelled nodes
        registry = CollectorRegistry()
        install(registry, None, r.controller, time.time)
        got = {smp.labels["node"]: smp for fam in registry.collect() if fam.name == "node_total_hourly_cost"
               for smp in fam.samples}
        nodes = em.all("v1", "nodes")
        assert set(got) == {n["metadata"]["name"] for n in nodes}
        by_name = {t.name: t for t in CATALOG}
        for n in nodes:
            labels = n["metadata"]["labels"]
            itype, ctype = labels["node.kubernetes.io/instance-type"], labels["karpenter.sh/capacity-type"]
            zone = labels["topology.kubernetes.io/zone"]
            price = min(o.price for o in by_name[itype].offerings if o.capacity_type == ctype and o.zone == zone)
            smp = got[n["metadata"]["name"]]
            assert smp.labels["instance_type"] == itype and smp.value == pytest.approx(price)
            spot = registry.get_sample_value("kubecost_node_is_spot", smp.labels)
            assert spot == (1.0 if ctype == "spot" else 0.0)
