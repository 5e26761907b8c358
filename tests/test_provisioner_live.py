"""The provisioning controller end to end: the API emulator, real EC2 calls against moto_server,
and a stand-in kubelet that registers a Node for every running instance (there is no kubelet here).

Pending pods → NodeClaims → instances → Nodes → registered and initialized; a controller that died
between CreateFleet and the NodeClaim update adopts the instance instead of launching another;
instances without NodeClaims are collected; a spot interruption launches the replacement before
the drain; empty nodes are consolidated within budgets, except do-not-disrupt and protected ones;
the ScaledObject controller's hand-off launches nodes before the pods exist, and only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from kubernetes_asyncio import client

from autoscaler.operator.main import kubernetes_version
from provisioner.catalog import load_catalog
from provisioner.cloud.availability import UnavailableOfferings
from provisioner.cloud.aws import AWSProvider, ec2_client
from provisioner.cloud.base import LaunchRequest, Offering
from provisioner.cloud.launch import launch
from provisioner.controller import ProvisioningController
from provisioner.interruption import InterruptionQueue
from provisioner.kube import ProvisionerKube
from provisioner.nodeclass import EC2NodeClass
from provisioner.provisioning import NOMINATED, PROTECTED_UNTIL, pod_requests
from tests.k8s.fixture import K8s
from tests.servers import Server

KARP = ("karpenter.sh/v1", "nodeclaims")
ZONES = ("us-east-1a", "us-east-1b")
TYPES = ["m5.large", "m5.xlarge", "c5.large", "c5.xlarge"]
CATALOG = [t for t in load_catalog(ZONES, {(t, z): p for t, p in (("m5.large", 0.035), ("c5.large", 0.031),
                                                                   ("m5.xlarge", 0.07), ("c5.xlarge", 0.06))
                                           for z in ZONES}) if t.name in TYPES]


async def until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.1)


def nodepool(capacity: tuple[str, ...] = ("spot", "on-demand"), **disruption: Any) -> dict:
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"},
            "spec": {"template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": TYPES},
                                 {"key": "karpenter.sh/capacity-type", "operator": "In",
                                  "values": list(capacity)}]}},
                     "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "0s",
                                    "budgets": [{"nodes": "100%"}], **disruption}}}


def pending_pod(name: str, cpu: str = "700m", labels: dict | None = None, **meta: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "apps", "labels": labels or {"app": "web"}, **meta},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                           "reason": "Unschedulable"}]}}


@dataclass
class Rig:
    em: Any
    ec2: Any
    controller: ProvisioningController
    cloud: AWSProvider

    def claims(self) -> list[dict]:
        return self.em.all(*KARP)

    def running(self) -> list[dict]:
        pages = self.ec2.describe_instances(Filters=[{"Name": "tag:surge.sh/cluster", "Values": ["demo"]},
                                                     {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        return [i for r in pages["Reservations"] for i in r["Instances"]]

    def events(self, reason: str) -> list[dict]:
        return [e for e in self.em.all("v1", "events") if e["reason"] == reason]


async def kubelet(em: Any, ec2: Any) -> None:
    """Registers a Node for every running instance of the cluster, as a booting kubelet would:
    providerID, the unregistered taint, allocatable from the catalog, Ready."""
    by_type = {t.name: t for t in CATALOG}
    while True:
        reservations = (await asyncio.to_thread(ec2.describe_instances, Filters=[
            {"Name": "tag:surge.sh/cluster", "Values": ["demo"]},
            {"Name": "instance-state-name", "Values": ["running"]}]))["Reservations"]
        known = {n["spec"].get("providerID") for n in em.all("v1", "nodes")}
        for inst in (i for r in reservations for i in r["Instances"]):
            zone = inst["Placement"]["AvailabilityZone"]
            pid = f"aws:///{zone}/{inst['InstanceId']}"
            if pid in known:
                continue
            t = by_type[inst["InstanceType"]]
            em.put("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": f"ip-{inst['InstanceId']}", "labels": {"node.kubernetes.io/instance-type": t.name,
                                                              "topology.kubernetes.io/zone": zone}},
                "spec": {"providerID": pid, "taints": [{"key": "karpenter.sh/unregistered", "effect": "NoExecute"}]},
                "status": {"allocatable": {"cpu": f"{t.allocatable.cpu_m}m", "memory": f"{t.allocatable.memory_mib}Mi",
                                           "pods": str(t.allocatable.pods)},
                           "conditions": [{"type": "Ready", "status": "True"}]}})
        await asyncio.sleep(0.2)


@pytest.fixture
def vpc(moto_server: Server) -> dict[str, Any]:
    url = f"http://127.0.0.1:{moto_server.port}"
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
    for inst in (i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]):
        ec2.terminate_instances(InstanceIds=[inst["InstanceId"]])  # a clean account per test
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    tag = [{"Key": "karpenter.sh/discovery", "Value": "live"}]
    for i, zone in enumerate(ZONES):
        sn = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[sn], Tags=tag)
    sg = ec2.create_security_group(GroupName=f"live-{vpc}", Description="nodes", VpcId=vpc)["GroupId"]
    ec2.create_tags(Resources=[sg], Tags=tag)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=tag)
    return {"url": url, "ec2": ec2, "ssm": boto3.client("ssm", region_name="us-east-1", endpoint_url=url)}


# AWS reserves /aws/ (moto too: AccessDenied on PutParameter), so the test account publishes
# the "public" AMI parameters under this root; the provider reads the same paths below it
SSM_ROOT = "/surge-test/aws/service"


NODECLASS = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "default"},
             "spec": {"subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "live"}}],
                      "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "live"}}],
                      "amiSelectorTerms": [{"tags": {"karpenter.sh/discovery": "live"}}], "role": "nodes"}}


@contextlib.asynccontextmanager
async def rig(k8s: K8s, vpc: dict[str, Any], pool: dict | None = None, with_kubelet: bool = True,
              interruptions: Any = None, nodeclass: dict | None = None) -> AsyncIterator[Rig]:
    em = k8s.emulator
    em.put("karpenter.sh/v1", "nodepools", pool or nodepool())
    em.put("karpenter.k8s.aws/v1", "ec2nodeclasses", nodeclass or NODECLASS)
    async with client.ApiClient(k8s.configuration) as api:
        cloud = AWSProvider(ec2_client("us-east-1", vpc["url"]), "demo",
                            lambda n: EC2NodeClass.model_validate(controller.nodeclasses[n]), time.time,
                            ssm=vpc["ssm"], ssm_root=SSM_ROOT, kubernetes_version=await kubernetes_version(api))
        controller = ProvisioningController(ProvisionerKube(api), cloud, CATALOG, tick_s=0.1, gc_interval_s=3600,
                                            disruption_interval_s=0.3, interruptions=interruptions)
        tasks = [asyncio.create_task(controller.run())]
        if with_kubelet:
            tasks.append(asyncio.create_task(kubelet(em, vpc["ec2"])))
        try:
            yield Rig(em, vpc["ec2"], controller, cloud)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def initialized(claim: dict) -> bool:
    return any(c["type"] == "Initialized" and c["status"] == "True"
               for c in (claim.get("status") or {}).get("conditions") or [])


async def test_pending_pods_become_registered_nodes_they_fit_on(k8s_api: K8s, vpc: dict) -> None:
    em = k8s_api.emulator
    pods = [pending_pod(f"web-{i}") for i in range(5)]
    for p in pods:
        em.put("v1", "pods", p)
    em.put("v1", "pods", pending_pod("agent", ownerReferences=[{"kind": "DaemonSet", "name": "agent"}]))
    async with rig(k8s_api, vpc) as r:
        await until(lambda: r.claims() and all(initialized(c) for c in r.claims()))
        claims = r.claims()
        nominated = [p for c in claims for p in json.loads(c["metadata"]["annotations"][NOMINATED])]
        assert sorted(nominated) == sorted(f"apps/web-{i}" for i in range(5))  # not the DaemonSet's pod
        assert len(r.running()) == len(claims)  # one instance per NodeClaim, no more
        nodes = {n["spec"]["providerID"]: n for n in em.all("v1", "nodes")}
        for c in claims:
            node = nodes[c["status"]["providerID"]]
            assert node["spec"]["taints"] == []  # unregistered taint removed
            assert node["metadata"]["labels"]["karpenter.sh/nodeclaim"] == c["metadata"]["name"]
            assert c["status"]["nodeName"] == node["metadata"]["name"]
            mine = [p for p in pods if f"apps/{p['metadata']['name']}" in
                    json.loads(c["metadata"]["annotations"][NOMINATED])]
            need = sum(pod_requests(p).cpu_m for p in mine)
            assert need <= int(node["status"]["allocatable"]["cpu"].rstrip("m"))  # the pods fit
        assert {e["reason"] for e in em.all("v1", "events")} >= {"Launched"}


async def test_restart_after_create_fleet_adopts_and_garbage_is_collected(k8s_api: K8s, vpc: dict) -> None:
    em = k8s_api.emulator
    em.put("karpenter.k8s.aws/v1", "ec2nodeclasses", NODECLASS)
    claim = {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "metadata": {
        "name": "default-crash", "labels": {"karpenter.sh/nodepool": "default"}, "annotations": {NOMINATED: "[]"}},
        "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                 "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]},
                                  {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                                  {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}]}}
    em.put(*KARP, claim)
    # a previous controller launched for it and died before recording the instance
    first = AWSProvider(ec2_client("us-east-1", vpc["url"]), "demo", lambda _: EC2NodeClass.model_validate(NODECLASS),
                        time.time)
    offer = Offering("m5.large", "on-demand", "us-east-1a", 0.096)
    launched = await launch(first, LaunchRequest("default-crash", "default", "default", [offer]),
                            UnavailableOfferings(), time.time)
    orphan = await launch(first, LaunchRequest("never-recorded", "default", "default", [offer]),
                          UnavailableOfferings(), time.time)
    async with rig(k8s_api, vpc, pool=nodepool(consolidateAfter="1h")) as r:
        await until(lambda: initialized(r.em.get(*KARP, "", "default-crash")))
        status = r.em.get(*KARP, "", "default-crash")["status"]
        assert status["providerID"].endswith("/" + launched.id)  # adopted, not launched again
        assert {i["InstanceId"] for i in r.running()} == {launched.id, orphan.id}
        r.controller.clock = lambda: time.time() + 3600  # an hour later: old enough to be garbage
        await r.controller.collect_garbage()
        assert {i["InstanceId"] for i in r.running()} == {launched.id}


async def test_spot_interruption_replaces_first_then_drains(k8s_api: K8s, vpc: dict) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=vpc["url"])
    queue = sqs.create_queue(QueueName=f"interruptions-{time.monotonic_ns()}")["QueueUrl"]
    em = k8s_api.emulator
    em.put("v1", "pods", pending_pod("api-0"))
    async with rig(k8s_api, vpc, pool=nodepool(consolidateAfter="1h"),
                   interruptions=InterruptionQueue(sqs, queue, wait_s=1)) as r:
        await until(lambda: len(r.claims()) == 1 and initialized(r.claims()[0]))
        old = r.claims()[0]
        node = old["status"]["nodeName"]
        pod = em.get("v1", "pods", "apps", "api-0")
        pod["spec"]["nodeName"] = node  # the scheduler bound it
        pod["status"] = {"phase": "Running"}
        em.put("v1", "pods", pod)
        # the controller must have seen the binding (its pods watch) before the warning arrives
        await until(lambda: ((r.controller.pods.get("apps/api-0") or {}).get("spec") or {}).get("nodeName") == node)
        instance = old["status"]["providerID"].rsplit("/", 1)[1]
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({
            "version": "0", "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
            "detail": {"instance-id": instance, "instance-action": "terminate"}}))
        await until(lambda: old["metadata"]["name"] not in {c["metadata"]["name"] for c in r.claims()}
                    and len(r.claims()) == 1)
        replacement = r.claims()[0]
        assert json.loads(replacement["metadata"]["annotations"][NOMINATED]) == ["apps/api-0"]
        order = [(e["reason"], e["involvedObject"]["name"]) for e in em.all("v1", "events")]
        launched_new = order.index(("Launched", replacement["metadata"]["name"]))
        drained_old = order.index(("DisruptionTerminating", old["metadata"]["name"]))
        assert launched_new < drained_old  # the replacement was launched before the drain began
        assert em.get("v1", "pods", "apps", "api-0") is None  # evicted
        assert instance not in {i["InstanceId"] for i in r.running()}


async def test_empty_nodes_go_unless_pinned_or_protected_and_pdbs_pace_the_drain(k8s_api: K8s, vpc: dict) -> None:
    em = k8s_api.emulator
    for i in range(3):
        em.put("v1", "pods", pending_pod(f"big-{i}", cpu="3", labels={"app": f"big{i}"}))  # one per node
    async with rig(k8s_api, vpc, pool=nodepool(consolidateAfter="1h")) as r:
        await until(lambda: len(r.claims()) == 3 and all(initialized(c) for c in r.claims()))
        claims = {json.loads(c["metadata"]["annotations"][NOMINATED])[0]: c for c in r.claims()}
        for i, key in enumerate(sorted(claims)):
            pod = em.get("v1", "pods", "apps", f"big-{i}")
            pod["spec"]["nodeName"] = claims[key]["status"]["nodeName"]
            pod["status"] = {"phase": "Running"}
            em.put("v1", "pods", pod)
        assert await r.controller.disrupt_once() == []  # nothing is empty
        pinned = claims["apps/big-1"]["status"]["nodeName"]
        node = em.get("v1", "nodes", "", pinned)
        node["metadata"]["annotations"] = {"karpenter.sh/do-not-disrupt": "true"}
        em.put("v1", "nodes", node)
        em.put("policy/v1", "poddisruptionbudgets", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                                     "metadata": {"name": "keep", "namespace": "apps"},
                                                     "spec": {"minAvailable": 1, "selector": {"matchLabels":
                                                                                              {"app": "big2"}}}})
        for i in range(3):
            em.store.objects[("v1", "pods")].pop(("apps", f"big-{i}"))  # all three finish
            em.store.bump(("v1", "pods"), "DELETED", pending_pod(f"big-{i}"))
        await asyncio.sleep(0.5)
        assert await r.controller.disrupt_once() == []  # consolidateAfter 1h not reached
        r.controller.pools["default"].spec.disruption = {"consolidationPolicy": "WhenEmpty",
                                                         "consolidateAfter": "0s", "budgets": [{"nodes": "100%"}]}
        removed = await r.controller.disrupt_once()
        assert pinned not in {n for n, _ in removed} and len(removed) == 2
        await until(lambda: len(r.claims()) == 1)
        assert r.claims()[0]["status"]["nodeName"] == pinned
        assert len(r.running()) == 1


async def test_pods_and_nodes_together_launch_before_the_pods_exist_and_only_once(k8s_api: K8s,
                                                                                   vpc: dict) -> None:
    em = k8s_api.emulator
    template = {"metadata": {"labels": {"app": "infer"}},
                "spec": {"containers": [{"name": "m", "resources": {"requests": {"cpu": "1500m", "memory": "2Gi"}}}]}}
    em.put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "infer", "namespace": "apps"},
                                      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "infer"}},
                                               "template": template}})
    async with rig(k8s_api, vpc, with_kubelet=False) as r:
        await until(lambda: {"nodes", "nodepools", "nodeclaims", "pods"} <= r.controller.synced)
        claims = await r.controller.prepare_for("apps", "Deployment", "infer", 3)
        assert claims and len(r.claims()) == len(claims)  # launched with no pod in sight
        await until(lambda: len(r.running()) == len(claims))
        assert all(c["metadata"]["annotations"].get("surge.sh/protected-until") for c in r.claims())
        for i in range(3):  # now the replicas arrive and cannot schedule yet (nodes still booting)
            em.put("v1", "pods", pending_pod(f"infer-{i}", cpu="1500m", labels={"app": "infer"}))
        await asyncio.sleep(1.5)  # more than the batch window
        assert len(r.claims()) == len(claims) and len(r.running()) == len(claims)  # not planned twice


async def test_operator_hands_scale_ups_to_the_provisioner(k8s_api: K8s, vpc: dict, redis_plain: Server,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`surge operator --controllers autoscaler,provisioner`: a ScaledObject waking from zero gets
    its nodes launched in the same step — NodeClaims and instances exist while no pod does yet."""
    from autoscaler.operator.main import run_operator
    from tests.fixtures.redis import cli
    from tests.servers import free_port

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("SURGE_CLUSTER_NAME", "demo")
    monkeypatch.setenv("SURGE_AWS_ENDPOINT_URL", vpc["url"])
    em = k8s_api.emulator
    em.put("karpenter.sh/v1", "nodepools", nodepool())
    em.put("karpenter.k8s.aws/v1", "ec2nodeclasses", NODECLASS)
    em.put("apps/v1", "deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gpuish", "namespace": "apps"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "gpuish"}}, "template": {
            "metadata": {"labels": {"app": "gpuish"}},
            "spec": {"containers": [{"name": "m", "resources": {"requests": {"cpu": "3", "memory": "4Gi"}}}]}}}})
    cli(redis_plain.port, "DEL", "gpu-jobs")
    em.put("keda.sh/v1alpha1", "scaledobjects", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "gpuish", "namespace": "apps"},
        "spec": {"scaleTargetRef": {"name": "gpuish"}, "pollingInterval": 1, "maxReplicaCount": 4,
                 "triggers": [{"type": "redis", "metadata": {"address": redis_plain.address, "listName": "gpu-jobs",
                                                             "listLength": "1"}}]}})
    task = asyncio.create_task(run_operator(k8s_api.url, "surge", free_port(), leader_elect=False,
                                            autoscaler=True, provisioner=True))
    try:
        await asyncio.sleep(2.0)
        assert em.all(*KARP) == []  # idle at zero: no nodes
        cli(redis_plain.port, "RPUSH", "gpu-jobs", "a")
        await until(lambda: em.get("apps/v1", "deployments", "apps", "gpuish")["spec"]["replicas"] == 1)
        await until(lambda: len(em.all(*KARP)) == 1)  # 0 → 1: one node for the one new pod
        claim = em.all(*KARP)[0]
        assert claim["metadata"]["annotations"]["surge.sh/protected-until"]
        assert em.all("v1", "pods") == []  # ... before any pod exists
        await until(lambda: bool((em.all(*KARP)[0].get("status") or {}).get("providerID")))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def bind(em: Any, name: str, node: str, cpu: str, **meta: Any) -> None:
    pod = pending_pod(name, cpu=cpu, labels={"app": name}, **meta)
    pod["spec"]["nodeName"] = node
    pod["status"] = {"phase": "Running"}
    em.put("v1", "pods", pod)


def unbind(em: Any, name: str) -> None:
    pod = em.store.objects[("v1", "pods")].pop(("apps", name))
    em.store.bump(("v1", "pods"), "DELETED", pod)


async def test_underutilized_nodes_are_deleted_or_replaced_by_a_cheaper_one(k8s_api: K8s, vpc: dict) -> None:
    em = k8s_api.emulator
    for i in range(2):
        em.put("v1", "pods", pending_pod(f"wide-{i}", cpu="3", labels={"app": f"wide{i}"}))
    # on-demand: Karpenter replaces spot with spot only behind the SpotToSpotConsolidation gate (off)
    async with rig(k8s_api, vpc, pool=nodepool(("on-demand",), consolidationPolicy="WhenEmptyOrUnderutilized",
                                               consolidateAfter="1h")) as r:
        await until(lambda: len(r.claims()) == 2 and all(initialized(c) for c in r.claims()))
        claims_before = r.claims()
        nodes = sorted(c["status"]["nodeName"] for c in claims_before)
        # the wide pods finish; small ones take their place, the first one not to be disrupted
        # (https://karpenter.sh/docs/concepts/disruption/#pod-level-controls), so the two nodes are
        # not consolidated together (multi-node) but the second alone (single-node)
        for i, node in enumerate(nodes):
            unbind(em, f"wide-{i}")
            bind(em, f"small-{i}", node, "500m",
                 **({"annotations": {"karpenter.sh/do-not-disrupt": "true"}} if i == 0 else {}))
        await asyncio.sleep(0.5)
        assert await r.controller.disrupt_once() == []  # stable for less than consolidateAfter
        r.controller.pools["default"].spec.disruption = {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                                                         "consolidateAfter": "0s", "budgets": [{"nodes": "100%"}]}
        # the second small pod fits on the first node: the disruption loop deletes the second
        await until(lambda: any("Underutilized (delete" in e["message"] for e in em.all("v1", "events")))
        await until(lambda: len(r.claims()) == 1)
        [kept] = r.claims()
        assert kept["status"]["nodeName"] == nodes[0] and len(r.running()) == 1
        old_type = kept["metadata"]["labels"]["node.kubernetes.io/instance-type"]
        assert em.get("v1", "pods", "apps", "small-1") is None  # evicted by the drain
        bind(em, "small-0", nodes[0], "500m")  # may be disrupted now
        bind(em, "small-1", nodes[0], "500m")  # its ReplicaSet's new pod lands
        # 1 CPU of pods on a 4-CPU node: the disruption loop replaces it with a cheaper one
        await until(lambda: any("Underutilized (replace" in e["message"] for e in em.all("v1", "events")))
        old = kept["metadata"]["name"]

        def launched_other() -> list[dict]:
            return [e for e in em.all("v1", "events") if e["reason"] == "Launched"
                    and e["involvedObject"]["name"] not in {old, *(c["metadata"]["name"] for c in claims_before)}]

        await until(lambda: bool(launched_other()) and old not in {c["metadata"]["name"] for c in r.claims()},
                    timeout=40)
        [event] = launched_other()
        new_type = event["message"].split()[1]  # "launched <type> (<capacity>, <zone>) as <id>"
        prices = {t.name: min(o.price for o in t.offerings if o.capacity_type == "on-demand") for t in CATALOG}
        assert prices[new_type] < prices[old_type]
        order = [(e["reason"], e["involvedObject"]["name"]) for e in em.all("v1", "events")]
        assert order.index(("Launched", event["involvedObject"]["name"])) < \
            order.index(("DisruptionTerminating", kept["metadata"]["name"]))  # replacement first


async def test_a_mostly_empty_spot_node_is_right_sized_by_a_cheaper_spot_node(k8s_api: K8s, vpc: dict,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # surge's rule, not Karpenter's (its SpotToSpotConsolidation gate is off): spot → one cheaper spot
    # node when that saves at least SPOT_RESIZE_MIN_SAVING of the node's price (provisioner/disruption.py)
    em = k8s_api.emulator
    async with small_pod_on_a_wide_spot_node(k8s_api, vpc) as (r, claim):
        labels = claim["metadata"]["labels"]
        assert labels["karpenter.sh/capacity-type"] == "spot"
        spot = {t.name: min(o.price for o in t.offerings if o.capacity_type == "spot") for t in CATALOG}
        await asyncio.sleep(0.5)
        # half a 4-CPU node's price is not worth a drain at the shipped floor (60 %)
        assert await r.controller.disrupt_once() == []
        monkeypatch.setattr("provisioner.controller.SPOT_RESIZE_MIN_SAVING", 0.4)
        await until(lambda: any("Underutilized (replace" in e["message"] for e in em.all("v1", "events")))
        launched = [e for e in em.all("v1", "events") if e["reason"] == "Launched"
                    and e["involvedObject"]["name"] != claim["metadata"]["name"]]
        assert len(launched) == 1
        new_type = launched[0]["message"].split()[1]  # "launched <type> (<capacity>, <zone>) as <id>"
        assert "(spot," in launched[0]["message"]
        assert spot[new_type] <= 0.6 * spot[labels["node.kubernetes.io/instance-type"]]



@contextlib.asynccontextmanager
async def small_pod_on_a_wide_spot_node(k8s_api: K8s, vpc: dict) -> AsyncIterator[tuple[Rig, dict]]:
    """A spot node launched for a 3-CPU pod, which finished; a 500m pod runs there now (a
    replacement by a cheaper spot node is due once SPOT_RESIZE_MIN_SAVING allows it)."""
    em = k8s_api.emulator
    em.put("v1", "pods", pending_pod("wide-0", cpu="3", labels={"app": "wide0"}))
    async with rig(k8s_api, vpc, pool=nodepool(("spot",), consolidationPolicy="WhenEmptyOrUnderutilized",
                                               consolidateAfter="0s", budgets=[{"nodes": "100%"}])) as r:
        await until(lambda: len(r.claims()) == 1 and initialized(r.claims()[0]))
        [claim] = r.claims()
        unbind(em, "wide-0")
        bind(em, "small-0", claim["status"]["nodeName"], "500m")
        yield r, claim


async def test_a_replacement_is_not_deleted_as_empty_before_the_drain_moves_its_pods(
        k8s_api: K8s, vpc: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # Karpenter counts pods nominated to a node as its pods: the replacement node is initialized a
    # while before the old node's drain starts (here a 1.5-s poll against 0.3-s disruption rounds),
    # and must not look empty in between, or it is deleted and the replace starts over
    em = k8s_api.emulator
    async with small_pod_on_a_wide_spot_node(k8s_api, vpc) as (r, claim):
        r.controller.tick_s = 1.5
        monkeypatch.setattr("provisioner.controller.SPOT_RESIZE_MIN_SAVING", 0.4)
        await until(lambda: any("Underutilized (replace" in e["message"] for e in em.all("v1", "events")))
        events = [(e["reason"], e["message"]) for e in em.all("v1", "events")]
        replaced = next(i for i, (_, m) in enumerate(events) if "Underutilized (replace" in m)
        # up to the drain's start: one replacement, nothing deleted (after it, the evicted pod has no
        # ReplicaSet here to come back, so the replacement may rightly go as empty)
        assert [reason for reason, _ in events[:replaced + 1]] == ["Launched", "Launched", "DisruptionTerminating"], \
            events
        assert claim["status"]["nodeName"] in events[replaced][1]



async def test_a_replacement_taints_the_old_node_before_it_launches_and_untaints_it_when_it_fails(
        k8s_api: K8s, vpc: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # Karpenter taints the candidates karpenter.sh/disrupted:NoSchedule before it pre-spins their
    # replacement, and un-taints them when the replacement fails
    # (https://karpenter.sh/docs/concepts/disruption/#disruption-controller): a pod bound to the old
    # node while the replacement boots would only be moved again by the drain
    em = k8s_api.emulator
    async with small_pod_on_a_wide_spot_node(k8s_api, vpc) as (r, claim):
        old = claim["status"]["nodeName"]
        create = r.controller.kube.create_nodeclaim

        async def refused(body: dict) -> dict:
            raise client.ApiException(status=403, reason="Forbidden")

        def taints() -> list[list[str]]:  # the old node's disruption taints, write by write
            return [[t["key"] for t in (obj["spec"].get("taints") or []) if t["key"] == "karpenter.sh/disrupted"]
                    for _, key, _, obj in em.store.events
                    if key == ("v1", "nodes") and obj["metadata"]["name"] == old]

        monkeypatch.setattr(r.controller.kube, "create_nodeclaim", refused)
        monkeypatch.setattr("provisioner.controller.SPOT_RESIZE_MIN_SAVING", 0.4)
        await until(lambda: taints()[-2:] == [["karpenter.sh/disrupted"], []])  # tainted, then un-tainted
        assert len(r.claims()) == 1 and em.get("v1", "nodes", "", old)["spec"].get("unschedulable") is not True
        monkeypatch.setattr(r.controller.kube, "create_nodeclaim", create)
        await until(lambda: any("Underutilized (replace" in e["message"] for e in em.all("v1", "events")))
        log = [(key, obj["metadata"]["name"], obj) for _, key, _, obj in em.store.events]
        created = next(i for i, (key, name, _) in enumerate(log) if key == KARP and name != claim["metadata"]["name"])
        [*_, (_, _, before)] = [entry for entry in log[:created] if entry[:2] == (("v1", "nodes"), old)]
        assert any(t["key"] == "karpenter.sh/disrupted" for t in before["spec"].get("taints") or [])  # taint first
        assert taints()[-1] == ["karpenter.sh/disrupted"]  # once, though the drain writes it again


async def test_a_fragmented_fleet_is_repacked_one_node_at_a_time(k8s_api: K8s, vpc: dict,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # surge's rule, not Karpenter's: three one-pod c5.large nodes (a ramp's leftovers, 0.255 $/h) that
    # a 10 % budget cannot consolidate (no pod fits elsewhere, no single node has a cheaper
    # replacement, multi-node needs three at once) are repacked onto one c5.xlarge (0.17 $/h):
    # the first is replaced, the others deleted one per round onto the new node's room
    em = k8s_api.emulator
    pool = nodepool(("on-demand",), consolidationPolicy="WhenEmptyOrUnderutilized", consolidateAfter="1h")
    async with rig(k8s_api, vpc, pool=pool) as r:
        nodes: list[str] = []
        for i in range(3):  # one at a time, as a slow ramp launches them
            em.put("v1", "pods", pending_pod(f"p-{i}", cpu="1100m", labels={"app": "w"}))
            await until(lambda: len(r.claims()) == len(nodes) + 1 and all(initialized(c) for c in r.claims()))
            [claim] = [c for c in r.claims() if c["status"]["nodeName"] not in nodes]
            assert claim["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "c5.large"
            nodes.append(claim["status"]["nodeName"])
            bind(em, f"p-{i}", nodes[-1], "1100m")
        before = {c["metadata"]["name"] for c in r.claims()}
        await asyncio.sleep(0.5)
        r.controller.pools["default"].spec.disruption = {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                                                         "consolidateAfter": "0s", "budgets": [{"nodes": "10%"}]}
        monkeypatch.setattr("provisioner.controller.REPACK_ON", False)
        assert await r.controller.disrupt_once() == []  # without repack the fleet stays as it is
        monkeypatch.setattr("provisioner.controller.REPACK_ON", True)

        def new_claims() -> list[dict]:
            return [c for c in r.claims() if c["metadata"]["name"] not in before]

        # a stand-in ReplicaSet and scheduler: an evicted pod comes back on the repack's node
        async def replicaset() -> None:
            while True:
                fresh = [c for c in new_claims() if initialized(c)]
                for i in range(3):
                    if fresh and em.get("v1", "pods", "apps", f"p-{i}") is None:
                        bind(em, f"p-{i}", fresh[0]["status"]["nodeName"], "1100m")
                await asyncio.sleep(0.1)

        task = asyncio.create_task(replicaset())
        try:
            await until(lambda: len(r.claims()) == 1 and not (before & {c["metadata"]["name"] for c in r.claims()}),
                        timeout=60)
        finally:
            task.cancel()
        [new] = r.claims()
        assert new["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "c5.xlarge"
        assert float(new["metadata"]["annotations"][PROTECTED_UNTIL]) > time.time() + 200  # kept while filled
        assert all(em.get("v1", "pods", "apps", f"p-{i}")["spec"]["nodeName"] == new["status"]["nodeName"]
                   for i in range(3))
        terminating = [e for e in em.all("v1", "events") if e["reason"] == "DisruptionTerminating"]
        assert len(terminating) == 3 and "Underutilized (replace: repack" in terminating[0]["message"]
        assert all("Underutilized (delete" in e["message"] for e in terminating[1:])
        order = [(e["reason"], e["involvedObject"]["name"]) for e in em.all("v1", "events")]
        assert order.index(("Launched", new["metadata"]["name"])) < order.index(
            ("DisruptionTerminating", terminating[0]["involvedObject"]["name"]))  # replacement first

async def test_consolidation_keeps_what_the_forecast_will_need(k8s_api: K8s, vpc: dict) -> None:
    em = k8s_api.emulator
    em.put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "batch", "namespace": "apps"},
                                      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "batch"}},
                                               "template": {"metadata": {"labels": {"app": "batch"}}, "spec": {
                                                   "containers": [{"name": "c", "resources": {
                                                       "requests": {"cpu": "3", "memory": "1Gi"}}}]}}}})
    em.put("v1", "pods", pending_pod("batch-0", cpu="3", labels={"app": "batch"}))
    async with rig(k8s_api, vpc, pool=nodepool(consolidateAfter="1h")) as r:
        await until(lambda: len(r.claims()) == 1 and initialized(r.claims()[0]))
        unbind(em, "batch-0")  # the run ended: the node is empty
        # the forecast says one such pod is back within ten minutes
        await r.controller.note_forecast("apps", "Deployment", "batch", 1, 600)
        r.controller.pools["default"].spec.disruption = {"consolidationPolicy": "WhenEmpty",
                                                         "consolidateAfter": "0s", "budgets": [{"nodes": "100%"}]}
        await asyncio.sleep(1.0)
        assert await r.controller.disrupt_once() == [] and len(r.claims()) == 1  # kept for the forecast
        later = time.time() + 700
        r.controller.clock = lambda: later  # the horizon has passed without the pod: now it goes
        await until(lambda: r.claims() == [])


async def test_nodepool_limits_count_running_nodes(k8s_api: K8s, vpc: dict) -> None:
    em = k8s_api.emulator
    pool = nodepool(consolidateAfter="1h")
    pool["spec"]["limits"] = {"cpu": "6"}  # room for one 4-CPU node, not two
    em.put("v1", "pods", pending_pod("first", cpu="3", labels={"app": "a"}))
    async with rig(k8s_api, vpc, pool=pool) as r:
        await until(lambda: len(r.claims()) == 1)
        em.put("v1", "pods", pending_pod("second", cpu="3", labels={"app": "b"}))  # a later batch
        await until(lambda: any(e["reason"] == "FailedProvisioning" and e["involvedObject"]["name"] == "second"
                                for e in em.all("v1", "events")))
        await asyncio.sleep(1.5)
        assert len(r.claims()) == 1 and len(r.running()) == 1


async def test_nodepool_status_and_termination_grace_period(k8s_api: K8s, vpc: dict) -> None:
    """NodePools get a Ready condition (naming what surge does not act on, or what is wrong); an
    expired node whose pod a PDB protects is drained anyway once terminationGracePeriod is up."""
    em = k8s_api.emulator
    pool = nodepool(consolidateAfter="1h", budgets=[{"nodes": "100%", "reasons": ["Drifted"]}])
    pool["spec"]["replicas"] = 2  # a static NodePool (Karpenter v1.x): not acted on by surge
    pool["spec"]["template"]["spec"]["expireAfter"] = "3s"
    pool["spec"]["template"]["spec"]["terminationGracePeriod"] = "1s"
    broken = nodepool(budgets=[{"nodes": "0", "schedule": "whenever", "duration": "1h"}])
    broken["metadata"]["name"] = "broken"
    em.put("karpenter.sh/v1", "nodepools", broken)
    em.put("v1", "pods", pending_pod("guarded", cpu="1", labels={"app": "guarded"}))
    em.put("policy/v1", "poddisruptionbudgets", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                                 "metadata": {"name": "g", "namespace": "apps"},
                                                 "spec": {"minAvailable": 1,
                                                          "selector": {"matchLabels": {"app": "guarded"}}}})
    async with rig(k8s_api, vpc, pool=pool) as r:
        def ready(name: str) -> dict:
            obj = em.get("karpenter.sh/v1", "nodepools", "", name) or {}
            return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})

        await until(lambda: bool(ready("default")) and bool(ready("broken")))
        message = ready("default")["message"]
        # minValues is planned for and Drifted is a budget reason surge acts on: neither is reported
        assert ready("default")["status"] == "True" and "spec.replicas" in message and "Drifted" not in message
        assert "minValues" not in message
        assert ready("broken")["status"] == "False" and "budgets[0].schedule" in ready("broken")["message"]
        await until(lambda: len(r.claims()) == 1 and initialized(r.claims()[0]))
        assert r.claims()[0]["spec"]["terminationGracePeriod"] == "1s"
        first = r.claims()[0]["metadata"]["name"]
        bind(em, "guarded", r.claims()[0]["status"]["nodeName"], "1")
        # expired after 3 s; the PDB refuses the eviction; after the 1 s grace the pod is deleted
        await until(lambda: first not in {c["metadata"]["name"] for c in r.claims()}, timeout=30)
        assert em.get("v1", "pods", "apps", "guarded") is None
        assert any(e["reason"] == "DisruptionTerminating" and "Expired" in e["message"] for e in em.all("v1", "events"))


async def test_bad_nodepools_and_nodeclasses_are_named_in_status_without_launching(k8s_api: K8s,
                                                                                   vpc: dict) -> None:
    em = k8s_api.emulator
    nowhere = nodepool()
    nowhere["metadata"]["name"] = "nowhere"
    nowhere["spec"]["template"]["spec"]["requirements"] = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["z9.mega"]}]
    lonely = nodepool()
    lonely["metadata"]["name"] = "lonely"
    lonely["spec"]["template"]["spec"]["nodeClassRef"]["name"] = "lonely"
    em.put("karpenter.sh/v1", "nodepools", nowhere)
    em.put("karpenter.k8s.aws/v1", "ec2nodeclasses", {
        **NODECLASS, "metadata": {"name": "lonely"},
        "spec": {**NODECLASS["spec"], "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "nobody"}}]}})
    em.put("v1", "pods", pending_pod("waiting", cpu="1"))
    async with rig(k8s_api, vpc, pool=lonely) as r:
        def ready(name: str) -> dict:
            obj = em.get("karpenter.sh/v1", "nodepools", "", name) or {}
            return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})

        await until(lambda: ready("nowhere").get("reason") == "NoInstanceTypes")
        assert "match no instance type" in ready("nowhere")["message"]
        await until(lambda: ready("lonely").get("reason") == "LaunchFailed")
        assert "spec.subnetSelectorTerms select nothing" in ready("lonely")["message"]
        assert any(e["reason"] == "LaunchFailed" for e in em.all("v1", "events"))
        await asyncio.sleep(2.0)
        assert r.running() == [] and r.claims() == []  # nothing launched, nothing left behind
        failures = r.controller.metrics.registry.get_sample_value(
            "surge_nodeclaims_launch_failures_total", {"nodepool": "lonely", "reason": "LaunchFailed"})
        assert failures == 1  # backed off, not retried hot
        assert r.controller.metrics.registry.get_sample_value("surge_nodepool_ready", {"nodepool": "lonely"}) == 0


async def test_an_ami_release_drifts_nodes_which_are_replaced_before_the_drain(
        k8s_api: K8s, vpc: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """al2023@latest resolved through SSM: a new AMI published → the node's NodeClaim is Drifted
    (AMIDrift) → held while a pod says do-not-disrupt → then a replacement on the new AMI is
    launched and initialized before the old node is drained and its instance terminated."""
    monkeypatch.setattr("provisioner.cloud.aws.RESOLVE_TTL_S", 0.2)  # see the new release at once
    em, ssm = k8s_api.emulator, vpc["ssm"]
    old_ami, new_ami = [i["ImageId"] for i in vpc["ec2"].describe_images(Owners=["amazon"])["Images"]
                        if i["Architecture"] == "x86_64"][:2]
    # the alias names the AMIs built for the API server's version (the emulator says 1.30)
    parameter = f"{SSM_ROOT}/eks/optimized-ami/1.30/amazon-linux-2023/x86_64/standard/recommended/image_id"
    ssm.put_parameter(Name=parameter, Value=old_ami, Type="String", Overwrite=True)
    aliased = {**NODECLASS, "spec": {**NODECLASS["spec"], "amiSelectorTerms": [{"alias": "al2023@latest"}]}}
    em.put("v1", "pods", pending_pod("web", cpu="700m", labels={"app": "web"}))
    async with rig(k8s_api, vpc, pool=nodepool(("on-demand",), consolidateAfter="1h"), nodeclass=aliased) as r:
        await until(lambda: len(r.claims()) == 1 and initialized(r.claims()[0]))
        [first] = r.claims()
        assert first["status"]["imageID"] == old_ami
        assert first["metadata"]["annotations"]["karpenter.sh/nodepool-hash"]
        assert first["metadata"]["annotations"]["karpenter.k8s.aws/ec2nodeclass-hash"]
        instance = first["status"]["providerID"].rsplit("/", 1)[-1]
        bind(em, "web", first["status"]["nodeName"], "700m",
             annotations={"karpenter.sh/do-not-disrupt": "true"})
        await asyncio.sleep(1.0)
        assert not any(c["type"] == "Drifted" for c in r.claims()[0]["status"]["conditions"])

        ssm.put_parameter(Name=parameter, Value=new_ami, Type="String", Overwrite=True)  # a new release

        def drifted() -> dict:
            claim = em.get("karpenter.sh/v1", "nodeclaims", "", first["metadata"]["name"]) or {}
            return next((c for c in (claim.get("status") or {}).get("conditions") or []
                         if c["type"] == "Drifted"), {})

        await until(lambda: drifted().get("reason") == "AMIDrift")
        assert drifted()["status"] == "True"
        await asyncio.sleep(1.5)  # several disruption rounds: the do-not-disrupt pod holds the node
        assert [c["metadata"]["name"] for c in r.claims()] == [first["metadata"]["name"]]
        bind(em, "web", first["status"]["nodeName"], "700m")  # the pod may be disrupted now

        def others() -> list[dict]:
            return [c for c in r.claims() if c["metadata"]["name"] != first["metadata"]["name"]]

        await until(lambda: len(others()) == 1 and initialized(others()[0])
                    and first["metadata"]["name"] not in {c["metadata"]["name"] for c in r.claims()}, timeout=40)
        [second] = others()
        assert second["status"]["imageID"] == new_ami  # launched on the new release
        assert not any(c["type"] == "Drifted" for c in second["status"]["conditions"])
        assert em.get("v1", "pods", "apps", "web") is None  # evicted by the drain
        state = r.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state in ("shutting-down", "terminated")
        order = [(e["reason"], e["involvedObject"]["name"]) for e in em.all("v1", "events")]
        assert order.index(("Launched", second["metadata"]["name"])) < \
            order.index(("DisruptionTerminating", first["metadata"]["name"]))  # replacement first
        assert any(e["reason"] == "DisruptionTerminating" and e["message"].startswith("Drifted")
                   for e in em.all("v1", "events"))
