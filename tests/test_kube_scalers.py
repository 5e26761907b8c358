"""cpu, memory and kubernetes-workload against the Kubernetes API emulator (pods, their
metrics.k8s.io PodMetrics, the target Deployment), and KEDA's tables for both scalers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from scalers import kube_source
from scalers.base import Trigger
from scalers.batch import poll_cycle
from scalers.cpu_memory import CpuMemoryScaler
from scalers.errors import ConfigError, QueryError
from scalers.kubernetes_workload import KubernetesWorkloadScaler
from tests.fixtures.conformance import vector_cases
from tests.k8s.fixture import K8s


@pytest.fixture
async def kube(k8s_api: K8s) -> AsyncIterator[K8s]:
    async with client.ApiClient(k8s_api.configuration) as api:
        kube_source.use(api)
        yield k8s_api
        kube_source.use(None)


def pod(name: str, labels: dict[str, str], phase: str = "Running", node: str = "", cpu: str = "500m",
        memory: str = "256Mi", ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {**({"nodeName": node} if node else {}), "containers": [
                {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}},
                {"name": "sidecar", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
            "status": {"phase": phase}}


def usage(name: str, app_cpu: str, app_mem: str, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics", "metadata": {"name": name, "namespace": ns},
            "containers": [{"name": "app", "usage": {"cpu": app_cpu, "memory": app_mem}},
                           {"name": "sidecar", "usage": {"cpu": "50m", "memory": "32Mi"}}]}


@pytest.mark.conformance("kubernetes-workload.json")
@pytest.mark.parametrize("case", vector_cases("kubernetes-workload.json"))
async def test_workload_table(case: dict[str, Any], kube: K8s) -> None:
    inputs, expected = case.get("inputs") or {}, case.get("expected") or {}
    trig = Trigger(type="kubernetes-workload", metadata=case["metadata"], namespace=inputs["namespace"],
                   index=expected.get("triggerIndex", 0))
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            KubernetesWorkloadScaler(trig)
        return
    s = KubernetesWorkloadScaler(trig)
    for p in inputs.get("pods", []):
        kube.emulator.put("v1", "pods", {"apiVersion": "v1", "kind": "Pod", **p})
    if case["table"] == "getMetricSpecForScalingTestDataset":
        assert s.metric_specs()[0].name == case["name"]
    elif "active" in expected:
        assert (await s.metrics()).active is expected["active"]
    elif "count" in expected:
        assert list((await s.metrics()).values.values()) == [float(expected["count"])]


@pytest.mark.conformance("cpu-memory.json")
@pytest.mark.parametrize("case", vector_cases("cpu-memory.json"))
def test_cpu_memory_table(case: dict[str, Any]) -> None:
    mt = case["inputs"]["metricType"]
    trig = Trigger(type=case["inputs"].get("resource", "cpu"), metadata=case["metadata"],
                   metric_type=mt or "AverageValue", metric_type_given=bool(mt))  # type: ignore[arg-type]
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            CpuMemoryScaler(trig)
        return
    s = CpuMemoryScaler(trig)
    expected = case.get("expected") or {}
    if expected:
        assert s.resource == expected["resource"] and s.metric_specs()[0].metric_type == expected["targetType"]
        assert s.config.container_name == expected.get("container", "")


async def test_cpu_memory_and_workload_read_the_cluster(kube: K8s) -> None:
    em = kube.emulator
    em.put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "web", "namespace": "default"},
                                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}})
    em.put("v1", "pods", pod("web-1", {"app": "web"}, node="n1"))
    em.put("v1", "pods", pod("web-2", {"app": "web"}, node="n2"))
    em.put("v1", "pods", pod("web-old", {"app": "web"}, phase="Succeeded"))
    em.put("v1", "pods", pod("other", {"app": "other"}, node="n1"))
    em.put("metrics.k8s.io/v1beta1", "pods", usage("web-1", "400m", "200Mi"))
    em.put("metrics.k8s.io/v1beta1", "pods", usage("web-2", "300m", "100Mi"))
    em.put("metrics.k8s.io/v1beta1", "pods", usage("other", "900m", "900Mi"))
    target = ("apps/v1", "Deployment", "web")
    cpu = CpuMemoryScaler(Trigger(type="cpu", metadata={"value": "50"}, metric_type="Utilization",
                                  namespace="default", scale_target=target))
    app_only = CpuMemoryScaler(Trigger(type="cpu", index=1, metadata={"value": "50", "containerName": "app"},
                                       metric_type="Utilization", namespace="default", scale_target=target))
    memory = CpuMemoryScaler(Trigger(type="memory", index=2, metadata={"value": "128Mi"}, metric_type="AverageValue",
                                     namespace="default", scale_target=target))
    workload = KubernetesWorkloadScaler(Trigger(type="kubernetes-workload", index=3, namespace="default", metadata={
        "podSelector": "app in (web, other)", "value": "2"}))
    by_node = KubernetesWorkloadScaler(Trigger(type="kubernetes-workload", index=4, namespace="default", metadata={
        "podSelector": "app", "value": "1", "groupByNode": "true"}))
    r_cpu, r_app, r_mem, r_work, r_node = await poll_cycle([cpu, app_only, memory, workload, by_node])
    # (400m + 50m + 300m + 50m) / (500m + 100m) × 2 pods = 800m / 1200m = 66.7 %
    assert not isinstance(r_cpu, Exception) and r_cpu.values["s0-cpu"] == pytest.approx(800 / 1200 * 100)
    assert not isinstance(r_app, Exception) and r_app.values["s1-cpu"] == pytest.approx(700 / 1000 * 100)
    mib = 2**20
    assert not isinstance(r_mem, Exception) and r_mem.values["s2-memory"] == pytest.approx((200 + 32 + 100 + 32) * mib)
    assert r_cpu.active and r_mem.active  # resource triggers are always active, as in KEDA
    assert not isinstance(r_work, Exception) and r_work.values == {"s3-workload-default": 3.0}
    assert not isinstance(r_node, Exception) and r_node.values == {"s4-workload-default": 2.0}
    # a pod without a cpu request makes Utilization undefined, as for the HPA
    bare = pod("web-3", {"app": "web"})
    del bare["spec"]["containers"][0]["resources"]
    em.put("v1", "pods", bare)
    em.put("metrics.k8s.io/v1beta1", "pods", usage("web-3", "100m", "10Mi"))
    with pytest.raises(QueryError, match="missing request for cpu"):
        await cpu.metrics()
