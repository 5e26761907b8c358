"""A crash during a node launch: a real `surge operator --controllers provisioner` process sends
CreateFleet to moto_server through a fault proxy that lets the request land and loses the answer;
the process is SIGKILLed while it waits. The replacement process must adopt the instance that
was launched (found by its NodeClaim tag) — no second instance, no orphan.

(The answer is lost with the connection kept open, so the SDK waits for it instead of retrying at
once: moto does not honour CreateFleet's ClientToken, and a retry there launches a second
instance where real EC2 would return the first fleet.)"""

from __future__ import annotations

import signal
from typing import Any

import boto3

from tests.chaos.harness import cluster
from tests.chaos.proxy import FaultProxy
from tests.servers import Server
from tests.test_provisioner_live import NODECLASS, nodepool, pending_pod, vpc  # noqa: F401 - the vpc fixture

KARP = ("karpenter.sh/v1", "nodeclaims")


def instances(ec2: Any) -> list[dict[str, Any]]:
    pages = ec2.describe_instances(Filters=[{"Name": "tag:surge.sh/cluster", "Values": ["chaos"]},
                                            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def tag(instance: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in instance.get("Tags") or [] if t["Key"] == key), "")


async def test_a_crash_between_createfleet_and_its_answer_adopts_the_instance(
        redis_plain: Server, moto_server: Server, vpc: dict[str, Any]) -> None:  # noqa: F811
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=vpc["url"])
    moto = await FaultProxy(moto_server.port).start()
    env = {"AWS_REGION": "us-east-1", "SURGE_CLUSTER_NAME": "chaos",
           "SURGE_AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto.port}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    try:
        async with cluster(redis_plain.port) as c:
            em = c.emulator
            em.put("karpenter.sh/v1", "nodepools", nodepool())
            em.put("karpenter.k8s.aws/v1", "ec2nodeclasses", NODECLASS)
            em.put("v1", "pods", pending_pod("api-0"))
            moto.set("lostreply", match=b"Action=CreateFleet")
            # two replicas start together; whichever leads launches, and is killed mid-launch
            for who in ("prov-a", "prov-b"):
                await c.start_operator(who, controllers="provisioner", env=env)
            await c.wait_for("a leader", lambda: c.leader() in ("prov-a", "prov-b"), 60)
            leader = c.leader()
            [standby] = [op for who, op in c.operators.items() if who != leader]
            await c.wait_for("CreateFleet to land in moto", lambda: len(instances(ec2)) >= 1, 60)
            assert len(instances(ec2)) == 1
            assert len(em.all(*KARP)) == 1
            claim = em.all(*KARP)[0]
            assert not (claim.get("status") or {}).get("providerID")  # the answer never came back
            await c.wait_for_ready(standby, 60)
            await c.stop_operator(leader, signal.SIGKILL)
            moto.set("pass")
            await c.wait_for("the NodeClaim to be Launched", lambda: any(
                (cl.get("status") or {}).get("providerID") for cl in em.all(*KARP)), 60)
            assert c.leader() == standby.identity
            claims = em.all(*KARP)
            running = instances(ec2)
            assert [cl["metadata"]["name"] for cl in claims] == [claim["metadata"]["name"]]  # no new NodeClaim
            assert len(running) == 1, f"a second instance was launched: {[i['InstanceId'] for i in running]}"
            assert claims[0]["status"]["providerID"].endswith("/" + running[0]["InstanceId"])  # adopted
            assert tag(running[0], "karpenter.sh/nodeclaim") == claim["metadata"]["name"]
            assert moto.stats.faults.get("lostreply", 0) >= 1
    finally:
        await moto.stop()
