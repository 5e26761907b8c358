"""What a real pod spec asks for, on the real AWS catalog: Kubernetes' effective requests, extended
resources, hostPorts, affinity written with matchExpressions, spread within NodePool zones, NodePool
limits on capacity, raw Pods grouped, and `surge plan` bad input (one line, exit 2)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autoscaler.cli import app
from provisioner.catalog import InstanceType, load_catalog
from provisioner.nodepool import NodePool
from provisioner.plan import make_plan
from provisioner.pods import ManifestError, PodSpecError, effective_requests, read_manifests
from provisioner.resources import Resources


@cache
def catalog() -> list[InstanceType]:
    return load_catalog()


def pool(reqs: list | None = None, limits: dict | None = None) -> NodePool:
    return NodePool.model_validate({"metadata": {"name": "p"}, "spec": {"limits": limits or {}, "template": {"spec": {
        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                         *(reqs or [])]}}}})


def deployment(name: str, replicas: int, spec: dict[str, Any], labels: dict | None = None) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": name}, "spec": {"replicas": replicas, "template": {
        "metadata": {"labels": labels or {"app": name}}, "spec": spec}}}


def container(requests: dict | None = None, limits: dict | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "c", "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v}, **extra}


def test_effective_requests_follow_kubernetes() -> None:
    spec = {"containers": [container({"cpu": "3"}), container({"memory": "1Gi"})],
            "initContainers": [container({"cpu": "2"}, restartPolicy="Always"),  # a sidecar: added
                               container({"cpu": "6", "memory": "4Gi"})],  # init: max(6 + 2 sidecar, 3 + 2)
            "overhead": {"cpu": "250m", "memory": "64Mi"}}
    assert effective_requests(spec) == Resources(8250, 4096 + 64, 0, 1)
    # limits only: requests default to limits (4 CPU, 8Gi, 1 GPU) — never a t4g.nano
    limits_only = {"containers": [container(limits={"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"})]}
    assert effective_requests(limits_only) == Resources(4000, 8192, 1, 1)
    plan = make_plan(read_manifests([{"kind": "Pod", "metadata": {"name": "p"}, "spec": limits_only}]).groups,
                     [pool()], catalog())
    node = plan.nodes[0]
    assert node.instance_type.startswith(("g", "p")) and not plan.unschedulable


@pytest.mark.parametrize(("resource", "amount", "family"), [
    ("aws.amazon.com/neuron", "1", "inf"), ("amd.com/gpu", "1", "g4ad"), ("vpc.amazonaws.com/efa", "1", None)])
def test_extended_resources_pick_types_that_have_them(resource: str, amount: str, family: str | None) -> None:
    docs = [{"kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [container(limits={resource: amount})]}}]
    plan = make_plan(read_manifests(docs).groups, [pool()], catalog())
    by_name = {t.name: t for t in catalog()}
    assert not plan.unschedulable
    assert by_name[plan.nodes[0].instance_type].allocatable.get(resource) >= int(amount)
    if family:
        assert plan.nodes[0].instance_type.startswith(family)


def test_ephemeral_storage_beyond_the_root_volume_is_pending() -> None:
    docs = [deployment("big", 1, {"containers": [container({"ephemeral-storage": "30Gi"})]})]
    plan = make_plan(read_manifests(docs).groups, [pool()], catalog())
    assert plan.nodes == [] and "exceed every allowed instance type" in plan.unschedulable[0]["reason"]


@pytest.mark.parametrize("value", ["0.5", "-1", "abc", "1ki"])
def test_bad_quantities_name_the_field(value: str) -> None:
    spec = {"containers": [container(limits={"nvidia.com/gpu": value})]}
    with pytest.raises(PodSpecError, match=r"containers\[0\]\.resources\.limits\.nvidia\.com/gpu"):
        effective_requests(spec)


def test_kubernetes_quantity_grammar() -> None:
    assert effective_requests({"containers": [container({"cpu": "1e-3", "memory": "1e3"})]}).cpu_m == 1
    assert effective_requests({"containers": [container({"cpu": "1e3"})]}).cpu_m == 1_000_000


def test_host_ports_never_share_a_node() -> None:
    spec = {"containers": [container({"cpu": "100m"}, ports=[{"containerPort": 80, "hostPort": 8080}])]}
    plan = make_plan(read_manifests([deployment("web", 4, spec)]).groups, [pool()], catalog())
    assert len(plan.nodes) == 4 and all(len(n.pods) == 1 for n in plan.nodes)


def test_anti_affinity_with_match_expressions_on_hostname() -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}}]}}
    spec = {"containers": [container({"cpu": "250m"})], "affinity": anti}
    plan = make_plan(read_manifests([deployment("db", 5, spec, {"app": "db"})]).groups, [pool()], catalog())
    assert len(plan.nodes) == 5


def test_zone_spread_uses_the_nodepool_zones() -> None:
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "w"}}}]
    spec = {"containers": [container({"cpu": "1"})], "topologySpreadConstraints": spread}
    zones = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a", "us-east-1b"]}
    plan = make_plan(read_manifests([deployment("w", 7, spec, {"app": "w"})]).groups, [pool([zones])], catalog())
    per_zone = sorted(sum(len(n.pods) for n in plan.nodes if n.zone == z) for z in ("us-east-1a", "us-east-1b"))
    assert not plan.unschedulable and per_zone == [3, 4]


def test_nodepool_limits_count_node_capacity() -> None:
    """Karpenter counts capacity: a 64Gi memory limit buys at most 64 GiB of nodes (not 64Gi of allocatable)."""
    spec = {"containers": [container({"cpu": "500m", "memory": "6Gi"})]}
    plan = make_plan(read_manifests([deployment("m", 30, spec)]).groups, [pool(limits={"memory": "64Gi"})],
                     catalog())
    by_name = {t.name: t for t in catalog()}
    assert sum(by_name[n.instance_type].memory_mib for n in plan.nodes) <= 64 * 1024
    assert plan.unschedulable  # 30 × 6Gi does not fit under the limit
    base = make_plan(read_manifests([deployment("m", 30, spec)]).groups, [pool(limits={"memory": "64Gi"})],
                     catalog(), algorithm="karpenter")
    assert sum(by_name[n.instance_type].memory_mib for n in base.nodes) <= 64 * 1024


def test_min_values_keeps_that_many_families() -> None:
    mv = {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m5", "m6i", "m7i"],
          "minValues": 3}
    spec = {"containers": [container({"cpu": "1", "memory": "2Gi"})]}
    plan = make_plan(read_manifests([deployment("a", 20, spec)]).groups, [pool([mv])], catalog())
    assert not plan.unschedulable
    by_name = {t.name: t for t in catalog()}
    for n in plan.nodes:  # every node's load also fits a type of each other family
        need = Resources(1000 * len(n.pods), 2048 * len(n.pods), 0, len(n.pods))
        fams = {t.family for t in catalog() if t.family in ("m5", "m6i", "m7i") and need.fits_in(t.allocatable)}
        assert len(fams) == 3, (n.instance_type, len(n.pods), by_name[n.instance_type].family)


def test_raw_pods_and_lists_are_grouped() -> None:
    pods = [{"kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"app": "x"}},
             "spec": {"containers": [container({"cpu": "250m"})]}} for i in range(1000)]
    read = read_manifests([{"apiVersion": "v1", "kind": "List", "items": pods},
                           {"kind": "CronJob", "metadata": {"name": "nightly"}}])
    assert [(g.count, len(g.names())) for g in read.groups] == [(1000, 1000)]
    assert read.skipped and "CronJob nightly" in read.skipped[0]


def test_bad_manifest_names_object_and_field() -> None:
    with pytest.raises(ManifestError, match=r"Deployment web: spec.replicas: 'three'"):
        read_manifests([{"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": "three"}}])


@pytest.mark.parametrize(("content", "args", "fragment"), [
    ("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, resources: {requests: {cpu: abc}}}]}\n", [],
     "Pod p: spec.containers[0].resources.requests.cpu: 'abc' is not a Kubernetes quantity"),
    ("kind: Deployment\nmetadata: {name: d}\nspec: {replicas: three}\n", [], "Deployment d: spec.replicas"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n", ["--algorithm", "bogus"],
     "--algorithm: 'bogus'"),
    (b"\xff\xfe", [], "must be UTF-8"),
])
def test_plan_cli_bad_input_is_one_line_exit_2(tmp_path: Path, content: str | bytes, args: list[str],
                                                fragment: str) -> None:
    f = tmp_path / "in.yaml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = CliRunner().invoke(app, ["plan", str(f), *args])
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize(("pool_doc", "fragment"), [
    ({"spec": {"weight": 500}}, "spec.weight"),
    ({"spec": {"template": {"spec": {"requirements": [{"key": "a", "operator": "Near", "values": ["x"]}]}}}},
     "unknown operator 'Near'"),
])
def test_plan_cli_bad_nodepool(tmp_path: Path, pool_doc: dict, fragment: str) -> None:
    pods = tmp_path / "p.yaml"
    pods.write_text("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n")
    np_file = tmp_path / "np.yaml"
    np_file.write_text(json.dumps({"kind": "NodePool", "metadata": {"name": "np"}, **pool_doc}))
    result = CliRunner().invoke(app, ["plan", str(pods), "--nodepool", str(np_file)])
    assert result.exit_code == 2 and fragment in result.output and "NodePool np" in result.output


def test_plan_cli_rejects_negative_spot_prices(tmp_path: Path) -> None:
    pods = tmp_path / "p.yaml"
    pods.write_text("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n")
    spot = tmp_path / "spot.json"
    spot.write_text(json.dumps({"m5.large": {"us-east-1a": -0.02}}))
    result = CliRunner().invoke(app, ["plan", str(pods), "--spot-prices", str(spot)])
    assert result.exit_code == 2 and "m5.large.us-east-1a: -0.02 is not a price" in result.output
