"""Drift as Karpenter v1 decides it: on plain values, which NodeClaims are Drifted and why and
which drifted node the disruption controller replaces first, within which budgets; against
moto_server, the AWS provider's reasons (AMI through SSM, subnet, node class hash)."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest

from provisioner.cloud.ami import AliasError, alias_parameters
from provisioner.cloud.availability import UnavailableOfferings
from provisioner.cloud.aws import AWSProvider, ec2_client
from provisioner.cloud.base import Offering
from provisioner.cloud.launch import launch
from provisioner.disruption import disruption_actions
from provisioner.drift import (
    NODECLASS_HASH,
    NODEPOOL_HASH,
    NODEPOOL_HASH_VERSION,
    drift_conditions,
    nodeclass_drift,
    nodeclass_hash,
    nodepool_drift,
    nodepool_hash,
    restamp,
    stamps,
    subnet_drift,
)
from provisioner.nodeclass import EC2NodeClass
from provisioner.nodepool import NodePool
from provisioner.plan import Plan, PlannedNode
from provisioner.provisioning import Budget, Disruption, NodeView
from tests.test_cloud import Clock, aws, request
from tests.test_cloud import nodeclass as aws_nodeclass

__all__ = ["aws"]  # the moto account fixture, shared with test_cloud

POOL: dict[str, Any] = {"metadata": {"name": "default"}, "spec": {
    "template": {"metadata": {"labels": {"team": "a"}}, "spec": {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
        "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}],
        "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                          "values": ["m5.large", "c5.large"]},
                         {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}]}},
    "weight": 10, "limits": {"cpu": "100"}, "disruption": {"consolidateAfter": "1m"}}}
CLASS: dict[str, Any] = {"metadata": {"name": "default"}, "spec": {
    "subnetSelectorTerms": [{"tags": {"k": "v"}}], "securityGroupSelectorTerms": [{"tags": {"k": "v"}}],
    "amiSelectorTerms": [{"alias": "al2023@latest"}], "userData": "echo hi", "tags": {"env": "prod"}}}


def pool(**changes: Any) -> NodePool:
    obj = copy.deepcopy(POOL)
    for path, value in changes.items():
        *parents, last = path.split("__")
        at = obj["spec"]
        for p in parents:
            at = at[p]
        at[last] = value
    return NodePool.model_validate(obj)


def nodeclass(**spec: Any) -> EC2NodeClass:
    return EC2NodeClass.model_validate({**CLASS, "spec": {**CLASS["spec"], **spec}})


def claim(annotations: dict[str, str], itype: str = "m5.large", zone: str = "us-east-1a",
          image: str = "ami-1") -> dict[str, Any]:
    return {"metadata": {"name": "c", "annotations": annotations,
                         "labels": {"karpenter.sh/nodepool": "default", "team": "a",
                                    "node.kubernetes.io/instance-type": itype, "topology.kubernetes.io/zone": zone,
                                    "karpenter.sh/capacity-type": "on-demand"}},
            "status": {"imageID": image, "conditions": [{"type": "Launched", "status": "True"}]}}


def test_the_nodepool_hash_covers_the_template_but_not_requirements_or_behaviour() -> None:
    base = nodepool_hash(pool())
    assert nodepool_hash(pool(weight=90, limits={"cpu": "5"}, disruption={"consolidateAfter": "1h"})) == base
    assert nodepool_hash(pool(template__spec__requirements=[])) == base  # RequirementsDrifted's business
    assert nodepool_hash(pool(template__spec__taints=list(reversed(POOL["spec"]["template"]["spec"]["taints"])))) \
        == base  # a set, not a sequence
    assert nodepool_hash(pool(template__spec__expireAfter="720h")) == base  # the default written out
    changes: list[dict[str, Any]] = [{"template__metadata": {"labels": {"team": "b"}}}, {"template__spec__taints": []},
                   {"template__spec__expireAfter": "24h"}, {"template__spec__terminationGracePeriod": "1h"},
                   {"template__spec__nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                     "name": "gpu"}}]
    for change in changes:
        assert nodepool_hash(pool(**change)) != base, change


def test_nodepool_and_requirements_drift() -> None:
    made = claim(stamps(pool(), nodeclass()))
    assert nodepool_drift(made, pool(), {}) is None
    assert nodepool_drift(made, pool(weight=50), {}) is None
    assert nodepool_drift(made, pool(template__spec__taints=[]), {}) == "NodePoolDrifted"
    other_version = claim({**stamps(pool(), None), NODEPOOL_HASH_VERSION: "v3"})  # stamped by Karpenter
    assert nodepool_drift(other_version, pool(template__spec__taints=[]), {}) is None
    assert nodepool_drift(claim({}), pool(template__spec__taints=[]), {}) is None  # never stamped
    assert nodepool_drift(claim({}), pool(template__metadata={"labels": {"team": "b"}}), {}) is None  # hashed only
    narrower = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c5.large"]}]
    assert nodepool_drift(made, pool(template__spec__requirements=narrower), {}) == "RequirementsDrifted"
    zone = [{"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["us-east-1a"]}]
    assert nodepool_drift(made, pool(template__spec__requirements=zone), {}) == "RequirementsDrifted"
    family = [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["c5"]}]
    assert nodepool_drift(made, pool(template__spec__requirements=family),
                          {"karpenter.k8s.aws/instance-family": "m5"}) == "RequirementsDrifted"
    assert nodepool_drift(made, pool(template__spec__requirements=family),
                          {"karpenter.k8s.aws/instance-family": "c5"}) is None


def test_nodeclass_and_ami_drift() -> None:
    nc = nodeclass()
    made = claim(stamps(pool(), nc), image="ami-1")
    assert nodeclass_drift(made, nc, ["ami-1", "ami-arm"]) is None
    # selector terms drift by what they select, not by hash
    assert nodeclass_hash(nodeclass(amiSelectorTerms=[{"alias": "al2023@v20240807"}],
                                    subnetSelectorTerms=[{"id": "s"}])) \
        == nodeclass_hash(nodeclass(amiFamily="AL2023")) == nodeclass_hash(nc)
    # ... but the AMI family they imply is hashed (Karpenter hashes the resolved family)
    assert nodeclass_hash(nodeclass(amiSelectorTerms=[{"id": "ami-9"}])) != nodeclass_hash(nc)
    assert nodeclass_drift(made, nodeclass(userData="echo bye"), ["ami-1"]) == "NodeClassDrift"
    assert nodeclass_drift(made, nodeclass(tags={"env": "dev"}), ["ami-1"]) == "NodeClassDrift"
    assert nodeclass_drift(made, nc, ["ami-2", "ami-arm"]) == "AMIDrift"  # al2023@latest moved on
    assert nodeclass_drift(made, nc, []) is None  # nothing resolved: no evidence
    assert nodeclass_drift(claim({}, image=""), nc, ["ami-2"]) is None  # image unknown
    assert nodeclass_drift({**made, "metadata": {**made["metadata"], "annotations": {
        **made["metadata"]["annotations"], NODECLASS_HASH: "0"}}}, nc, ["ami-1"]) == "NodeClassDrift"


def test_restamp_only_what_another_version_stamped() -> None:
    current = stamps(pool(), nodeclass())
    assert restamp(current, pool(), nodeclass()) == {}
    karpenters = {NODEPOOL_HASH: "123", NODEPOOL_HASH_VERSION: "v3"}
    assert restamp(karpenters, pool(), nodeclass()) == current
    assert restamp({}, pool(), None) == stamps(pool(), None)


def test_drifted_condition_is_set_kept_and_cleared() -> None:
    c = claim({})
    conditions = drift_conditions(c, "AMIDrift", "2026-12-02T10:00:00Z")
    assert conditions is not None and conditions[-1] == {"type": "Drifted", "status": "True", "reason": "AMIDrift",
                                                         "message": "AMIDrift",
                                                         "lastTransitionTime": "2026-12-02T10:00:00Z"}
    c["status"]["conditions"] = conditions
    assert drift_conditions(c, "AMIDrift", "2026-12-02T11:00:00Z") is None  # unchanged: nothing to write
    changed = drift_conditions(c, "NodePoolDrifted", "2026-12-02T11:00:00Z")
    assert changed is not None and changed[-1]["lastTransitionTime"] == "2026-12-02T10:00:00Z"  # still drifted
    assert drift_conditions(c, None, "2026-12-02T12:00:00Z") == [{"type": "Launched", "status": "True"}]
    assert drift_conditions(claim({}), None, "x") is None


def view(name: str, pods: int = 1, drifted_at: float | None = 100.0, dnd: bool = False,
         pool_name: str = "default", node_dnd: bool = False, grace: float | None = None,
         expire: float | None = None) -> NodeView:
    return NodeView(name, f"claim-{name}", pool_name, 0.1, pods, None, dnd or node_dnd, None, 0.0, expire,
                    pods_changed_at=0.0, drifted_at=drifted_at, node_do_not_disrupt=node_dnd,
                    termination_grace_s=grace)


def replacing(*types: str) -> Plan:
    return Plan([PlannedNode(t, "on-demand", "us-east-1a", 0.2, ["apps/p"], "default") for t in types], 0.2, 0.0)


POLICY = {"default": Disruption("WhenEmpty", None, Disruption().budgets)}


def test_drifted_nodes_are_replaced_one_at_a_time_empty_then_oldest_first() -> None:
    plans = {"a": replacing("m5.large", "m5.large"), "b": replacing("c5.large"), "e": Plan([], 0.0, 0.0)}
    nodes = [view("a", drifted_at=50.0), view("b", drifted_at=10.0), view("c", drifted_at=None)]
    [action] = disruption_actions(nodes, POLICY, {}, 1000.0, lambda ns: plans[ns[0].name])
    assert (action.reason, [n.name for n in action.nodes], action.kind) == ("Drifted", ["b"], "replace")
    # any number of replacements, at any price (not a consolidation)
    [action] = disruption_actions(nodes[:1], POLICY, {}, 1000.0, lambda ns: plans[ns[0].name])
    assert action.replacement is not None and len(action.replacement.new_nodes) == 2
    # an empty drifted node goes first (consolidateAfter Never keeps emptiness from taking it)
    empty = view("e", pods=0, drifted_at=500.0)
    [action] = disruption_actions([*nodes, empty], POLICY, {}, 1000.0, lambda ns: plans[ns[0].name])
    assert [n.name for n in action.nodes] == ["e"] and action.kind == "delete"


def test_drift_respects_do_not_disrupt_unschedulable_pods_and_drifted_budgets() -> None:
    plans = {"a": replacing("m5.large"), "b": Plan([], 0.0, 0.0, unschedulable=[{"pod": "apps/x", "reason": "r"}])}

    def plan_for(ns: Any) -> Plan:
        return plans[ns[0].name]

    assert disruption_actions([view("a", dnd=True)], POLICY, {}, 1000.0, plan_for) == []  # a pod says so
    # ... unless the NodeClaim has a terminationGracePeriod (the drain waits for that pod until then)
    [action] = disruption_actions([view("a", dnd=True, grace=600.0)], POLICY, {}, 1000.0, plan_for)
    assert action.reason == "Drifted"
    assert disruption_actions([view("a", node_dnd=True, grace=600.0)], POLICY, {}, 1000.0, plan_for) == []
    # expiry is forceful: do-not-disrupt (pod or node) and budgets do not hold it
    held = {"default": Disruption("WhenEmpty", None, (Budget("0"),))}
    [action] = disruption_actions([view("a", node_dnd=True, expire=10.0)], held, {}, 1000.0, plan_for)
    assert action.reason == "Expired"
    [action] = disruption_actions([view("b", drifted_at=1.0), view("a")], POLICY, {}, 1000.0, plan_for)
    assert [n.name for n in action.nodes] == ["a"]  # b's pods would not all schedule: blocked, a goes
    frozen = NodePool.model_validate({**POOL, "spec": {**POOL["spec"], "disruption": {
        "consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never",
        "budgets": [{"nodes": "0", "reasons": ["Drifted"]}, {"nodes": "100%"}]}}})
    assert disruption_actions([view("a")], {"default": Disruption.of(frozen)}, {}, 1000.0, plan_for) == []
    other = NodePool.model_validate({**POOL, "spec": {**POOL["spec"], "disruption": {
        "consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never",
        "budgets": [{"nodes": "0", "reasons": ["Underutilized", "Empty"]}]}}})
    assert disruption_actions([view("a")], {"default": Disruption.of(other)}, {}, 1000.0, plan_for)
    # the default 10 % (rounded up) of the pool's nodes, those being disrupted included
    ten = [view(f"n{i}") for i in range(10)]
    plans |= {f"n{i}": replacing("m5.large") for i in range(10)}
    assert len(disruption_actions(ten, POLICY, {}, 1000.0, plan_for)) == 1
    assert disruption_actions(ten[:9], POLICY, {"default": 1}, 1000.0, plan_for) == []  # 1 of 10 busy
    assert len(disruption_actions(ten, POLICY, {"default": 1}, 1000.0, plan_for)) == 1  # 2 of 11 allowed


def test_budget_fields_are_checked_like_karpenters_crd() -> None:
    for budget, field in (({"nodes": "0", "reasons": ["Expired"]}, r"budgets\[0\]\.reasons: 'Expired'"),
                          ({"nodes": "150%"}, r"budgets\[0\]\.nodes: '150%'"),
                          ({"nodes": "0", "duration": "1h"}, r"budgets\[0\]\.schedule: required with a duration")):
        bad = NodePool.model_validate({"metadata": {"name": "p"}, "spec": {"disruption": {"budgets": [budget]}}})
        with pytest.raises(ValueError, match=field):
            Disruption.of(bad)


def test_ami_aliases_name_the_public_ssm_parameters() -> None:
    assert alias_parameters("al2023@latest", "1.31") == [
        "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id",
        "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/arm64/standard/recommended/image_id"]
    assert alias_parameters("al2023@v20240807", "1.30")[1] == (
        "/aws/service/eks/optimized-ami/1.30/amazon-linux-2023/arm64/standard/"
        "amazon-eks-node-al2023-arm64-standard-1.30-v20240807/image_id")
    assert alias_parameters("bottlerocket@v1.20.3", "1.30")[0] == \
        "/aws/service/bottlerocket/aws-k8s-1.30/x86_64/1.20.3/image_id"
    assert alias_parameters("al2@latest", "1.29", root="/t")[1] == \
        "/t/eks/optimized-ami/1.29/amazon-linux-2-arm64/recommended/image_id"
    with pytest.raises(AliasError, match="family 'windows2022' is not resolved"):
        alias_parameters("windows2022@latest", "1.31")
    with pytest.raises(AliasError, match="expected family@version"):
        alias_parameters("al2023", "1.31")


def test_subnet_drift() -> None:
    assert subnet_drift("sn-1", ["sn-1", "sn-2"]) is None
    assert subnet_drift("sn-3", ["sn-1"]) == "SubnetDrift"
    assert subnet_drift("", ["sn-1"]) is None  # the instance says nothing: no evidence
    assert subnet_drift("sn-3", []) is None


async def test_aws_provider_drift_against_moto(aws: dict) -> None:  # type: ignore[type-arg]
    """An ssmParameter AMI term, the instance's subnet and the node class hash, on moto_server."""
    clock = Clock()
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=aws["url"])
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=aws["url"])
    old, new = [i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]
                if i["Architecture"] == "x86_64"][:2]
    ssm.put_parameter(Name="/surge-drift-test/node-ami", Value=old, Type="String", Overwrite=True)
    current = {"class": aws_nodeclass(amiSelectorTerms=[{"ssmParameter": "/surge-drift-test/node-ami"}])}
    cloud = AWSProvider(ec2_client("us-east-1", aws["url"]), "demo", lambda _: current["class"], clock, ssm=ssm)
    instance = await launch(cloud, request("drift-1", [Offering("m5.large", "on-demand", "us-east-1a", 0.096)]),
                            UnavailableOfferings(), clock)
    assert instance.image_id == old
    claim = {"metadata": {"name": "drift-1", "annotations": stamps(pool(), current["class"])},
             "spec": {"nodeClassRef": {"name": "default"}},
             "status": {"providerID": instance.provider_id, "imageID": instance.image_id}}
    assert await cloud.is_drifted(claim) is None
    subnet = ec2.describe_instances(InstanceIds=[instance.id])["Reservations"][0]["Instances"][0]["SubnetId"]
    ec2.delete_tags(Resources=[subnet], Tags=[{"Key": "karpenter.sh/discovery"}])  # no longer selected
    clock.t += 61
    try:
        assert await cloud.is_drifted(claim) == "SubnetDrift"
    finally:
        ec2.create_tags(Resources=[subnet], Tags=[{"Key": "karpenter.sh/discovery", "Value": "demo"}])
    ssm.put_parameter(Name="/surge-drift-test/node-ami", Value=new, Type="String", Overwrite=True)
    clock.t += 61
    assert await cloud.is_drifted(claim) == "AMIDrift"
    current["class"] = aws_nodeclass(amiSelectorTerms=[{"ssmParameter": "/surge-drift-test/node-ami"}],
                                     userData="#!/bin/bash\necho changed")
    assert await cloud.is_drifted(claim) == "NodeClassDrift"  # checked first, without AWS calls
    await cloud.terminate([instance.id])
