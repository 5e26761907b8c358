"""Launching NodeClaims: the launch policy on the simulated cloud, and the AWS provider against
moto_server (selectors, launch template, CreateFleet, tags, adoption after a crash, GC)."""

from __future__ import annotations

import time

import boto3
import pytest

from provisioner.cloud.availability import UNAVAILABLE_TTL_S, UnavailableOfferings, catalog_now
from provisioner.cloud.aws import AWSProvider, ec2_client, fleet_outcome
from provisioner.cloud.base import TAG_CLUSTER, TAG_NODECLAIM, CapacityError, LaunchError, LaunchRequest, Offering
from provisioner.cloud.launch import launch, orphans
from provisioner.cloud.simulated import SimulatedProvider
from provisioner.nodeclass import EC2NodeClass
from tests.servers import Server

OFFERS = [Offering("m5.large", "spot", "us-east-1a", 0.035), Offering("m5.large", "spot", "us-east-1b", 0.038),
          Offering("c5.large", "spot", "us-east-1a", 0.031), Offering("m5.large", "on-demand", "us-east-1a", 0.096),
          Offering("c5.large", "on-demand", "us-east-1a", 0.085)]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def request(name: str, offerings: list[Offering] = OFFERS) -> LaunchRequest:
    return LaunchRequest(name, "default", "default", offerings)


async def test_cheapest_spot_first_then_next_offering_then_on_demand() -> None:
    clock = Clock()
    cloud = SimulatedProvider(clock, capacity={("c5.large", "spot", "us-east-1a"): 0})
    unavailable = UnavailableOfferings()
    first = await launch(cloud, request("a"), unavailable, clock)
    assert (first.instance_type, first.capacity_type, first.zone) == ("m5.large", "spot", "us-east-1a")
    assert not unavailable.available(OFFERS[2], clock())  # c5.large spot ran dry: remembered
    # the next launch does not even ask for the dry pool
    cloud.capacity[("m5.large", "spot", "us-east-1a")] = 0
    cloud.capacity[("m5.large", "spot", "us-east-1b")] = 0
    second = await launch(cloud, request("b"), unavailable, clock)
    assert (second.instance_type, second.capacity_type) == ("c5.large", "on-demand")  # spot gone: on-demand
    asked = [o for call in cloud.fleet_calls[1:] for o in call[2]]
    assert OFFERS[2] not in asked
    # after the TTL the pool is tried again
    clock.t += UNAVAILABLE_TTL_S + 1
    cloud.capacity[("c5.large", "spot", "us-east-1a")] = 5
    third = await launch(cloud, request("c"), unavailable, clock)
    assert (third.instance_type, third.capacity_type) == ("c5.large", "spot")


def test_plans_steer_around_unavailable_offerings_until_the_ttl() -> None:
    """`catalog_now`: what the live provisioner and the simulator both plan on."""
    from provisioner.catalog import load_catalog

    catalog = load_catalog()
    it = catalog[0]
    lost = it.offerings[0]
    unavailable = UnavailableOfferings()
    unavailable.mark(Offering(it.name, lost.capacity_type, lost.zone, lost.price), 100.0)
    assert unavailable.marked(100.0) == {(it.name, lost.capacity_type, lost.zone)}
    now = {t.name: t for t in catalog_now(catalog, unavailable, 100.0)}
    assert [o.available for o in now[it.name].offerings] == [o is not lost for o in it.offerings]
    assert all(now[t.name] == t for t in catalog[1:])
    later = catalog_now(catalog, unavailable, 100.0 + UNAVAILABLE_TTL_S)
    assert later == list(catalog) and unavailable.marked(100.0 + UNAVAILABLE_TTL_S) == frozenset()


async def test_no_capacity_anywhere_names_the_nodeclaim_and_what_was_tried() -> None:
    clock = Clock()
    cloud = SimulatedProvider(clock, capacity={(o.instance_type, o.capacity_type, o.zone): 0 for o in OFFERS})
    with pytest.raises(CapacityError, match=r"NodeClaim gpu-1: no capacity .*InsufficientInstanceCapacity") as err:
        await launch(cloud, request("gpu-1"), UnavailableOfferings(), clock)
    assert set(err.value.tried) == set(OFFERS)


async def test_a_relaunch_adopts_the_instance_instead_of_launching_twice() -> None:
    clock = Clock()
    cloud = SimulatedProvider(clock)
    one = await launch(cloud, request("x"), UnavailableOfferings(), clock)
    again = await launch(cloud, request("x"), UnavailableOfferings(), clock)
    assert one == again and len(cloud.fleet_calls) == 1


def test_orphans_are_old_instances_without_a_nodeclaim() -> None:
    clock = Clock()
    cloud = SimulatedProvider(clock)
    import asyncio

    a = asyncio.run(launch(cloud, request("kept"), UnavailableOfferings(), clock))
    b = asyncio.run(launch(cloud, request("gone"), UnavailableOfferings(), clock))
    owned = list(cloud.instances.values())
    assert orphans(owned, {"kept"}, clock.t + 10) == []  # too young: the listing may be stale
    assert orphans(owned, {"kept"}, clock.t + 61) == [b]
    assert a not in orphans(owned, {"kept"}, clock.t + 61)


def test_fleet_errors_mark_offerings_as_aws_reports_them() -> None:
    offers = OFFERS[:3]
    ice = {"Instances": [], "Errors": [{
        "ErrorCode": "InsufficientInstanceCapacity", "ErrorMessage": "no m5.large in us-east-1a",
        "Lifecycle": "spot", "LaunchTemplateAndOverrides": {"Overrides": {
            "InstanceType": "m5.large", "AvailabilityZone": "us-east-1a", "SubnetId": "subnet-1"}}}]}
    result = fleet_outcome(ice, offers, "spot", {}, 0.0)
    assert result.instance is None and result.exhausted == (offers[0],)
    assert "InsufficientInstanceCapacity" in result.error
    limit = {"Errors": [{"ErrorCode": "MaxSpotInstanceCountExceeded", "ErrorMessage": "limit"}]}
    assert fleet_outcome(limit, offers, "spot", {}, 0.0).exhausted == tuple(offers)
    other = {"Errors": [{"ErrorCode": "InvalidAMIID.NotFound", "ErrorMessage": "gone"}]}
    assert fleet_outcome(other, offers, "spot", {}, 0.0).exhausted == ()


@pytest.fixture
def aws(moto_server: Server) -> dict[str, object]:
    url = f"http://127.0.0.1:{moto_server.port}"
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
    live = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] in ("pending", "running")]
    if live:  # the server is shared: instances other tests left behind are not this test's to own
        ec2.terminate_instances(InstanceIds=live)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tag = [{"Key": "karpenter.sh/discovery", "Value": "demo"}]
    subnets = {}
    for i, zone in enumerate(("us-east-1a", "us-east-1b")):
        sn = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[sn], Tags=tag)
        subnets[zone] = sn
    sg = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
    ec2.create_tags(Resources=[sg], Tags=tag)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=tag)
    return {"url": url, "subnets": subnets, "sg": sg, "ami": ami}


def nodeclass(**spec: object) -> EC2NodeClass:
    selector = [{"tags": {"karpenter.sh/discovery": "demo"}}]
    return EC2NodeClass.model_validate({"metadata": {"name": "default"}, "spec": {
        "subnetSelectorTerms": selector, "securityGroupSelectorTerms": selector, "amiSelectorTerms": selector,
        "role": "KarpenterNodeRole-demo", "tags": {"team": "ml"}, "userData": "#!/bin/bash\necho hi", **spec}})


async def test_aws_launch_tags_adopt_and_collect(aws: dict) -> None:  # type: ignore[type-arg]
    clock = Clock()
    ec2 = ec2_client("us-east-1", aws["url"])
    cloud = AWSProvider(ec2, "demo", lambda _: nodeclass(), clock)
    resolved = await cloud.resolve(nodeclass())
    assert dict(resolved.subnets) == aws["subnets"] and resolved.security_groups == (aws["sg"],)
    offers = [Offering("m5.large", "spot", "us-east-1b", 0.03), Offering("m5.large", "on-demand", "us-east-1a", 0.096)]
    first = await launch(cloud, request("claim-1", offers), UnavailableOfferings(), clock)
    assert (first.instance_type, first.zone, first.capacity_type) == ("m5.large", "us-east-1b", "spot")
    assert first.provider_id == f"aws:///us-east-1b/{first.id}"
    raw = ec2.describe_instances(InstanceIds=[first.id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
    assert tags[TAG_NODECLAIM] == "claim-1" and tags[TAG_CLUSTER] == "demo" and tags["team"] == "ml"
    assert tags["kubernetes.io/cluster/demo"] == "owned" and raw["SubnetId"] == aws["subnets"]["us-east-1b"]
    # the controller died after CreateFleet: a new provider finds the instance, launches nothing
    restarted = AWSProvider(ec2_client("us-east-1", aws["url"]), "demo", lambda _: nodeclass(), clock)
    again = await launch(restarted, request("claim-1", offers), UnavailableOfferings(), clock)
    assert again.id == first.id
    other = await launch(restarted, request("claim-2", offers), UnavailableOfferings(), clock)
    owned = {i.id for i in await restarted.list_owned()}
    assert owned == {first.id, other.id}
    stale = orphans(await restarted.list_owned(), {"claim-2"}, time.time() + 3600)  # launch times are real
    assert [i.id for i in stale] == [first.id]
    await restarted.terminate([first.id])
    assert {i.id for i in await restarted.list_owned()} == {other.id}


async def test_aws_selectors_that_select_nothing_are_named(aws: dict) -> None:  # type: ignore[type-arg]
    cloud = AWSProvider(ec2_client("us-east-1", aws["url"]), "demo", lambda _: nodeclass(), Clock())
    lonely = nodeclass(subnetSelectorTerms=[{"tags": {"karpenter.sh/discovery": "nobody"}}])
    with pytest.raises(LaunchError, match=r"EC2NodeClass default: spec\.subnetSelectorTerms select nothing"):
        await cloud.resolve(lonely)
    windows = nodeclass(amiSelectorTerms=[{"alias": "windows2022@latest"}])
    with pytest.raises(LaunchError, match=r"amiSelectorTerms\[0\]: alias 'windows2022@latest': family"):
        await cloud.resolve(windows)
    aliased = nodeclass(amiSelectorTerms=[{"alias": "al2023@latest"}])  # without an SSM client
    with pytest.raises(LaunchError, match=r"no SSM client to resolve /aws/service/eks/optimized-ami/1\.31/"):
        await cloud.resolve(aliased)


async def test_missing_credentials_are_a_launch_error_that_says_so(aws: dict, monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: object) -> None:  # type: ignore[type-arg]
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cloud = AWSProvider(ec2_client("us-east-1", aws["url"]), "demo", lambda _: nodeclass(), Clock())
    offer = Offering("m5.large", "on-demand", "us-east-1a", 0.096)
    with pytest.raises(LaunchError, match="EC2NodeClass default: AWS credentials missing"):
        await cloud.create_fleet(request("c", [offer]), "on-demand", [offer])


async def test_aws_prices_offerings_and_subnet_zones(aws: dict) -> None:  # type: ignore[type-arg]
    """Spot prices for every type (more than one 1,000-row page), offerings per zone from
    DescribeInstanceTypeOfferings, and the zones a node class can launch in (its subnets)."""
    from provisioner.catalog import load_catalog, restrict_zones, with_spot_prices

    cloud = AWSProvider(ec2_client("us-east-1", aws["url"]), "demo", lambda _: nodeclass(), Clock())
    catalog = load_catalog(("us-east-1a", "us-east-1b", "us-east-1c"))
    prices = await cloud.spot_prices([t.name for t in catalog])
    assert len(prices) > 1000 and all(p >= 0 for p in prices.values())
    priced = with_spot_prices(catalog, prices)
    m5 = next(t for t in priced if t.name == "m5.large")
    assert {o.zone for o in m5.offerings if o.capacity_type == "spot"} == {
        z for (t, z) in prices if t == "m5.large"} & {"us-east-1a", "us-east-1b", "us-east-1c"}
    zones_of = await cloud.type_zones()
    assert zones_of["m5.large"] and all(z.startswith("us-east-1") for z in zones_of["m5.large"])
    narrowed = restrict_zones(priced, {"m5.large": {"us-east-1a"}})
    assert [t.name for t in narrowed] == ["m5.large"] and {o.zone for o in narrowed[0].offerings} == {"us-east-1a"}
    assert await cloud.zones("default") == {"us-east-1a", "us-east-1b"}  # the fixture's subnets


def test_client_token_is_new_for_each_distinct_request() -> None:
    from provisioner.cloud.aws import client_token

    configs = [{"Overrides": [{"InstanceType": "m5.large", "SubnetId": "s-1"}]}]
    spot = client_token("demo", "claim-1", "spot", configs)
    assert spot == client_token("demo", "claim-1", "spot", configs)  # a retry is the same request
    assert spot != client_token("demo", "claim-1", "on-demand", configs)  # the on-demand fallback is not
    assert spot != client_token("demo", "claim-1", "spot", configs[:0])  # nor fewer offerings after ICE
    assert len(client_token("a" * 80, "b" * 80, "spot", configs)) <= 64
