"""Pending pods → CreateFleet called: how long the provisioner takes once a batch closes, for 1,
100 and 1,000 pending pods, against the API emulator and moto_server's EC2.

The clock starts when the batch window closes (the window itself, 1 s idle / 10 s max, is
Karpenter's and excluded) and stops when the first and when the last CreateFleet of the batch
is sent. In between: grouping the pods, planning with the packer against the whole catalog,
creating the NodeClaims through the API and resolving the EC2NodeClass.

    python bench/provision.py        (writes docs/benchmarks-provision.md)
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from aiohttp import web  # noqa: E402
from kubernetes_asyncio import client  # noqa: E402

from provisioner.catalog import load_catalog  # noqa: E402
from provisioner.cloud.aws import AWSProvider, ec2_client  # noqa: E402
from provisioner.controller import ProvisioningController  # noqa: E402
from provisioner.kube import ProvisionerKube  # noqa: E402
from provisioner.nodeclass import EC2NodeClass  # noqa: E402
from provisioner.nodepool import NodePool  # noqa: E402
from provisioner.provisioning import pending_groups  # noqa: E402
from tests.fixtures.aws import moto_server_binary  # noqa: E402
from tests.k8s.emulator import Emulator  # noqa: E402
from tests.servers import free_port, run_server  # noqa: E402

SIZES = [(1, 20), (100, 10), (1000, 5)] if len(sys.argv) < 2 else [(int(a), 2) for a in sys.argv[1:]]
SHAPES = [("250m", "512Mi"), ("1", "2Gi"), ("2", "8Gi")]
ZONES = ("us-east-1a", "us-east-1b")


class Timed:
    """The AWS provider, noting when each CreateFleet is sent."""

    def __init__(self, inner: AWSProvider) -> None:
        self.inner = inner
        self.sent: list[float] = []

    async def create_fleet(self, *args: Any) -> Any:
        self.sent.append(time.perf_counter())
        return await self.inner.create_fleet(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def pods(n: int, trial: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        cpu, mem = SHAPES[i % len(SHAPES)]
        out.append({"metadata": {"name": f"t{trial}-p{i}", "namespace": "bench", "labels": {"shape": str(i % 3)}},
                    "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]},
                    "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                                   "reason": "Unschedulable"}]}})
    return out


def fresh_account(url: str) -> EC2NodeClass:
    """A VPC with two tagged subnets, a security group and a tagged AMI; the node class selecting them."""
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tag = [{"Key": "karpenter.sh/discovery", "Value": "bench"}]
    for i, z in enumerate(ZONES):
        sn = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i * 16}.0/20", AvailabilityZone=z)["Subnet"]
        ec2.create_tags(Resources=[sn["SubnetId"]], Tags=tag)
    sg = ec2.create_security_group(GroupName="n", Description="n", VpcId=vpc)["GroupId"]
    ec2.create_tags(Resources=[sg], Tags=tag)
    ec2.create_tags(Resources=[ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]], Tags=tag)
    sel = [{"tags": {"karpenter.sh/discovery": "bench"}}]
    return EC2NodeClass.model_validate({"metadata": {"name": "default"}, "spec": {
        "subnetSelectorTerms": sel, "securityGroupSelectorTerms": sel, "amiSelectorTerms": sel}})


async def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    rows = []
    catalog = load_catalog(ZONES)
    em = Emulator()
    runner = web.AppRunner(em.app)
    await runner.setup()
    kport = free_port()
    await web.TCPSite(runner, "127.0.0.1", kport).start()
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"},
            "spec": {"template": {"spec": {"requirements": [
                {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]}]}}}}
    async with client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{kport}")) as api:
        for n, trials in SIZES:
            first, last, nodes = [], [], []
            for trial in range(trials):
                mport = free_port()  # a fresh moto per trial: its lookups slow down as instances pile up
                with run_server([moto_server_binary(), "-H", "127.0.0.1", "-p", str(mport)], mport, timeout_s=30):
                    url = f"http://127.0.0.1:{mport}"
                    nodeclass = fresh_account(url)
                    cloud = Timed(AWSProvider(ec2_client("us-east-1", url), "bench", lambda _, c=nodeclass: c,
                                              time.time))
                    controller = ProvisioningController(ProvisionerKube(api), cloud, catalog)  # type: ignore[arg-type]
                    controller.pools = {"default": NodePool.model_validate(pool)}
                    batch = pods(n, trial)
                    controller.pods = {f"bench/{p['metadata']['name']}": p for p in batch}
                    start = time.perf_counter()
                    claims = await controller.provision(pending_groups(batch))
                    await asyncio.gather(*controller.launching.values())
                    first.append(min(cloud.sent) - start)
                    last.append(max(cloud.sent) - start)
                    nodes.append(len(claims))
                    print(f"  {n} pods, trial {trial}: {len(claims)} nodes, CreateFleet after {first[-1]:.3f} s "
                          f"(first) / {last[-1]:.3f} s (last)", flush=True)
                    for name in claims:
                        await controller._forget_claim(name)
            rows.append((n, trials, statistics.median(nodes), statistics.median(first),
                         sorted(first)[min(len(first) - 1, int(0.99 * len(first)))], statistics.median(last),
                         sorted(last)[min(len(last) - 1, int(0.99 * len(last)))]))
            print(rows[-1], flush=True)
    await runner.cleanup()
    lines = ["| pending pods | trials | nodes planned | first CreateFleet p50 (s) | p99 (s) | "
             "last CreateFleet p50 (s) | p99 (s) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n:,} | {t} | {k:.0f} | {f50:.3f} | {f99:.3f} | {l50:.3f} | {l99:.3f} |"
              for n, t, k, f50, f99, l50, l99 in rows]
    table = "\n".join(lines)
    print(table)
    (ROOT / "docs" / "benchmarks-provision.md").write_text(
        "# Provisioning: batch closed → CreateFleet sent\n\nMeasured by `bench/provision.py` "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}): the provisioner "
        "against the API emulator and moto_server's EC2, a NodePool allowing every c/m/r type in two zones, "
        "pods of three shapes. Excludes the batch window (1 s idle / 10 s max). The last CreateFleet waits for "
        "every NodeClaim of the batch to be created through the API first. p99 over few trials is the maximum.\n\n"
        + table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
