"""The packer: feasibility, the constraints it must respect, its bound, and why pods stay pending."""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.catalog import InstanceType, load_catalog
from provisioner.nodepool import NodePool
from provisioner.plan import Plan, make_plan
from provisioner.pods import PodGroup, groups_from_manifests
from provisioner.problem import ExistingNode
from provisioner.requirements import Requirements, Toleration
from provisioner.resources import Resources


@cache
def catalog() -> list[InstanceType]:
    # a realistic general-purpose slice keeps the tests fast
    return [t for t in load_catalog() if t.category in ("c", "m", "r", "g", "p") and t.generation >= 5
            and t.architecture == "amd64"]


def pool(name: str = "default", weight: int = 0, limits: dict[str, str] | None = None, taints: list | None = None,
         extra: list | None = None) -> NodePool:
    reqs = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}, *(extra or [])]
    return NodePool.model_validate({"metadata": {"name": name}, "spec": {
        "weight": weight, "limits": limits or {},
        "template": {"spec": {"requirements": reqs, "taints": taints or []}}}})


def check_feasible(plan: Plan, groups: list[PodGroup]) -> None:
    """Every pod placed at most once; every node holds its pods; bound below cost."""
    placed = Counter(pod for n in plan.nodes for pod in n.pods)
    assert all(v == 1 for v in placed.values())
    wanted = {name for g in groups for name in g.names()}
    pending = {u["pod"] for u in plan.unschedulable}
    assert set(placed) | pending == wanted and not set(placed) & pending
    by_type = {t.name: t for t in catalog()}
    req = {name: g.requests for g in groups for name in g.names()}
    for n in plan.new_nodes:
        used = sum((req[p] for p in n.pods), Resources())
        assert used.fits_in(by_type[n.instance_type].allocatable), (n.instance_type, used)
    assert plan.cost_per_hour >= plan.lower_bound_per_hour - 1e-6


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([100, 250, 500, 1000, 1500, 4000]),
                          st.sampled_from([128, 512, 1024, 4096, 16384]), st.integers(1, 40)), min_size=1, max_size=6))
def test_plans_are_feasible_and_above_the_bound(spec: list[tuple[int, int, int]]) -> None:
    groups = [PodGroup(f"g{i}", n, Resources(c, m, 0, 1)) for i, (c, m, n) in enumerate(spec)]
    for algorithm in ("surge", "karpenter"):
        plan = make_plan(groups, [pool()], catalog(), algorithm=algorithm)  # type: ignore[arg-type]
        check_feasible(plan, groups)
        assert not plan.unschedulable


def test_deterministic() -> None:
    groups = [PodGroup("a", 37, Resources(700, 1500, 0, 1)), PodGroup("b", 11, Resources(2000, 8000, 0, 1))]
    first, second = (make_plan(groups, [pool()], catalog()) for _ in range(2))
    assert [(n.instance_type, n.zone, n.pods) for n in first.nodes] == [(n.instance_type, n.zone, n.pods)
                                                                         for n in second.nodes]


def test_surge_is_not_worse_than_the_karpenter_baseline() -> None:
    groups = [PodGroup(f"d{i}", 20, Resources(c, m, 0, 1))
              for i, (c, m) in enumerate((c, m) for c in (250, 1000, 1500) for m in (512, 2048))]
    surge = make_plan(groups, [pool()], catalog())
    baseline = make_plan(groups, [pool()], catalog(), algorithm="karpenter")
    assert surge.cost_per_hour <= baseline.cost_per_hour


def test_hostname_anti_affinity_one_per_node_and_zone_spread() -> None:
    docs = [{"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 7, "template": {
        "metadata": {"labels": {"app": "web"}}, "spec": {
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                           "labelSelector": {"matchLabels": {"app": "web"}}}],
            "containers": [{"name": "w", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}}]
    groups = groups_from_manifests(docs)
    plan = make_plan(groups, [pool()], catalog())
    assert all(sum(p.startswith("web") for p in n.pods) <= 1 for n in plan.nodes)
    zones = Counter(n.zone for n in plan.nodes for _ in n.pods)
    assert sum(zones.values()) == 7 and max(zones.values()) - min(zones.values()) <= 1 and len(zones) == 3


def test_gpu_pods_need_tolerations_and_go_to_gpu_nodes() -> None:
    gpu_pool = pool("gpu", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                    extra=[{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}])
    tolerant = PodGroup("infer", 3, Resources(4000, 16000, 1, 1), tolerations=(Toleration("nvidia.com/gpu", "Exists"),))
    intolerant = PodGroup("rogue", 1, Resources(1000, 1000, 1, 1))
    plan = make_plan([tolerant, intolerant], [gpu_pool], catalog())
    assert {n.instance_type.split(".")[0][0] for n in plan.nodes} <= {"g", "p"}
    assert [u["pod"] for u in plan.unschedulable] == ["rogue"]
    assert "taint nvidia.com/gpu" in plan.unschedulable[0]["reason"]


@pytest.mark.parametrize(("group", "pools", "fragment"), [
    (PodGroup("huge", 1, Resources(900_000, 1024, 0, 1)), [pool()], "exceed every allowed instance type"),
    (PodGroup("arm", 1, Resources(100, 100, 0, 1), (Requirements.from_terms(
        [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]),)), [pool()],
     "no instance type satisfies"),
    (PodGroup("odd", 1, Resources(100, 100, 0, 1), (Requirements.from_terms(
        [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
         {"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["amd64"]}]),)), [pool()], "contradict"),
    (PodGroup("none", 1, Resources(100, 100, 0, 1)), [pool(extra=[
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["no.such"]}])],
     "no instance type satisfies"),
])
def test_pending_pods_come_with_a_reason(group: PodGroup, pools: list[NodePool], fragment: str) -> None:
    plan = make_plan([group], pools, catalog())
    assert plan.nodes == [] and fragment in plan.unschedulable[0]["reason"]


def test_zero_request_pods_are_planned() -> None:
    plan = make_plan([PodGroup("sidecar", 3, Resources(0, 0, 0, 1))], [pool()], catalog())
    assert not plan.unschedulable and sum(len(n.pods) for n in plan.nodes) == 3


def test_limits_and_weights() -> None:
    groups = [PodGroup("w", 30, Resources(2000, 4000, 0, 1))]
    preferred = pool("preferred", weight=50, limits={"cpu": "16"})
    fallback = pool("fallback", weight=10)
    plan = make_plan(groups, [fallback, preferred], catalog())
    by_pool = Counter(n.nodepool for n in plan.nodes for _ in n.pods)
    assert by_pool["preferred"] > 0 and by_pool["fallback"] > 0  # preferred first, then its limit forces fallback
    cpu_in_preferred = sum({t.name: t.vcpu for t in catalog()}[n.instance_type] for n in plan.nodes
                           if n.nodepool == "preferred")
    assert cpu_in_preferred <= 16
    capped = make_plan(groups, [pool("only", limits={"cpu": "8"})], catalog())
    assert capped.unschedulable and "limits" in capped.unschedulable[0]["reason"]


def test_existing_nodes_are_used_first() -> None:
    node = ExistingNode("old-1", {"kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": "us-east-1a",
                                  "node.kubernetes.io/instance-type": "m5.2xlarge"}, Resources(3000, 6000, 0, 20))
    plan = make_plan([PodGroup("a", 4, Resources(500, 1000, 0, 1))], [pool()], catalog(), existing=[node])
    assert [n.existing for n in plan.nodes] == ["old-1"] and plan.cost_per_hour == 0


def test_daemonset_overhead_is_reserved_on_every_node() -> None:
    from provisioner.pods import daemonset_overhead

    docs = [{"kind": "DaemonSet", "spec": {"template": {"spec": {"containers": [
        {"name": "agent", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}]}}}}]
    overhead = daemonset_overhead(docs)
    assert overhead == Resources(250, 256, 0, 1)
    groups = [PodGroup("w", 8, Resources(900, 1024, 0, 1))]
    plain = make_plan(groups, [pool()], catalog())
    loaded = make_plan(groups, [pool()], catalog(), daemonset_overhead=overhead)
    by_type = {t.name: t for t in catalog()}
    for n in loaded.nodes:
        room = by_type[n.instance_type].allocatable - overhead
        assert Resources(900, 1024, 0, 1).times(len(n.pods)).fits_in(room)
    assert loaded.cost_per_hour >= plain.cost_per_hour
