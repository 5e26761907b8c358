"""The AWS provider: EC2NodeClass selectors → subnets, security groups, AMIs; a launch template
per node class and AMI; one CreateFleet (type instant) per attempt; instances tagged so that they
can be found again by NodeClaim and collected when their NodeClaim is gone.

boto3 is synchronous: every call runs in a worker thread so the operator's loop never blocks.
Throttling is retried by botocore's adaptive mode (see `ec2_client`).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.cloud.ami import PUBLIC_ROOT, AliasError, alias_parameters
from provisioner.cloud.base import (
    TAG_CLUSTER,
    TAG_NODECLAIM,
    TAG_NODECLASS,
    TAG_NODEPOOL,
    FleetResult,
    Instance,
    LaunchError,
    LaunchRequest,
    Offering,
)
from provisioner.drift import nodeclass_drift, subnet_drift
from provisioner.nodeclass import AMISelectorTerm, EC2NodeClass, SelectorTerm

# CreateFleet error codes that mean "no capacity here now" (the offering is marked unavailable);
# the account-wide ones exhaust every offering of the capacity type.
CAPACITY_ERRORS = {"InsufficientInstanceCapacity", "UnfulfillableCapacity", "InsufficientFreeAddressesInSubnet",
                   "Unsupported", "SpotMaxPriceTooLow"}
ACCOUNT_LIMIT_ERRORS = {"MaxSpotInstanceCountExceeded", "VcpuLimitExceeded"}
RESOLVE_TTL_S = 60.0
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
EC2_ARCH = {"amd64": "x86_64", "arm64": "arm64"}


def ec2_client(region: str, endpoint_url: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    # a session of its own: credentials are resolved now, not shared with whatever made the default one
    return boto3.session.Session().client("ec2", region_name=region, endpoint_url=endpoint_url,
                                          config=Config(retries={"mode": "adaptive", "max_attempts": 10}))


def aws_problem(exc: BaseException) -> str:
    """What went wrong talking to AWS, in words that point at the fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return "AWS credentials missing (IRSA role annotation on the ServiceAccount, or the AWS_* environment)"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "AuthFailure"):
            return f"AWS denied the call ({code}): the IAM policy lacks it (see docs/iam-policy.json)"
        return f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
    if isinstance(exc, EndpointConnectionError):
        return f"AWS endpoint unreachable: {exc}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Resolved:
    """What a node class's selectors select now."""

    subnets: Mapping[str, str]  # zone → subnet id (the one with most free addresses)
    security_groups: tuple[str, ...]
    images: Mapping[str, str]  # architecture (amd64/arm64) → newest matching AMI id
    all_subnets: frozenset[str] = frozenset()  # every subnet the terms select (subnet drift)


def _filters(term: SelectorTerm, name_filter: str) -> dict[str, Any]:
    if term.id:
        return {"ids": [term.id]}
    filters = [{"Name": f"tag:{k}", "Values": [v]} if v != "*" else {"Name": "tag-key", "Values": [k]}
               for k, v in term.tags.items()]
    if term.name:
        filters.append({"Name": name_filter, "Values": [term.name]})
    return {"filters": filters}


def fleet_outcome(response: Mapping[str, Any], offerings: Sequence[Offering], capacity_type: str,
                  tags: Mapping[str, str], now: float) -> FleetResult:
    """Read a CreateFleet (instant) response: the instance launched, or which offerings ran out."""
    for group in response.get("Instances") or []:
        ids = group.get("InstanceIds") or []
        if ids:
            zone = ((group.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}).get("AvailabilityZone")
            chosen = next((o for o in offerings if o.instance_type == group.get("InstanceType")
                           and (zone is None or o.zone == zone)), offerings[0])
            return FleetResult(Instance(ids[0], group.get("InstanceType", chosen.instance_type),
                                        group.get("Lifecycle", capacity_type), zone or chosen.zone, "pending",
                                        dict(tags), now))
    exhausted: list[Offering] = []
    messages = []
    for err in response.get("Errors") or []:
        code = err.get("ErrorCode", "")
        messages.append(f"{code}: {err.get('ErrorMessage', '')}".strip())
        if code in ACCOUNT_LIMIT_ERRORS:
            exhausted.extend(offerings)
        elif code in CAPACITY_ERRORS:
            ov = (err.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
            itype, zone = ov.get("InstanceType"), ov.get("AvailabilityZone")
            exhausted.extend(o for o in offerings if o.instance_type == itype and (zone is None or o.zone == zone))
    return FleetResult(None, tuple(dict.fromkeys(exhausted)), "; ".join(messages) or "no instance launched")


def client_token(cluster: str, nodeclaim: str, capacity_type: str, configs: Sequence[Mapping[str, Any]]) -> str:
    """CreateFleet's idempotency token: the same request retried gets the same token (EC2 returns the
    first launch), a different request for the same NodeClaim (spot → on-demand, fewer offerings after
    capacity errors) a new one — EC2 rejects a reused token with other parameters
    (IdempotentParameterMismatch). After a crash the first request's instance is found by its
    NodeClaim tag and adopted before any new request is made."""
    digest = hashlib.sha256(json.dumps([capacity_type, configs], sort_keys=True).encode()).hexdigest()[:16]
    return f"{cluster}-{nodeclaim}"[:47] + "-" + digest


class AWSProvider:
    def __init__(self, ec2: Any, cluster: str, nodeclasses: Callable[[str], EC2NodeClass],
                 clock: Callable[[], float], ssm: Any = None, kubernetes_version: str = "1.31",
                 ssm_root: str = PUBLIC_ROOT) -> None:
        self.ec2, self.cluster, self.nodeclasses, self.clock = ec2, cluster, nodeclasses, clock
        # amiSelectorTerms aliases and ssmParameter terms read SSM; the alias paths name the cluster's version
        self.ssm, self.kubernetes_version, self.ssm_root = ssm, kubernetes_version, ssm_root
        self._templates: set[str] = set()
        self._resolved: dict[str, tuple[float, Resolved]] = {}
        self._subnet_cache: tuple[float, dict[str, str]] | None = None
        self._resolve_lock = asyncio.Lock()
        self._template_lock = asyncio.Lock()

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.ec2, method), **kwargs)

    # --- selectors ----------------------------------------------------------------------------------
    async def resolve(self, nodeclass: EC2NodeClass) -> Resolved:
        """Selectors resolved at most once a minute per node class (a burst of launches shares one
        lookup; a new subnet or AMI is picked up within the minute)."""
        key = nodeclass.model_dump_json(include={"spec"})
        cached = self._resolved.get(key)
        now = self.clock()
        if cached is not None and now - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        async with self._resolve_lock:
            cached = self._resolved.get(key)
            if cached is not None and now - cached[0] < RESOLVE_TTL_S:
                return cached[1]
            resolved = await self._resolve(nodeclass)
            self._resolved[key] = (now, resolved)
            return resolved

    async def _resolve(self, nodeclass: EC2NodeClass) -> Resolved:
        spec = nodeclass.spec
        name = nodeclass.metadata.get("name", "")
        subnets: dict[str, tuple[int, str]] = {}
        selected: set[str] = set()
        for term in spec.subnet_selector_terms:
            f = _filters(term, "tag:Name")
            kwargs = {"SubnetIds": f["ids"]} if "ids" in f else {"Filters": f["filters"]}
            for sn in (await self._call("describe_subnets", **kwargs))["Subnets"]:
                selected.add(sn["SubnetId"])
                free = int(sn.get("AvailableIpAddressCount", 0))
                if free > subnets.get(sn["AvailabilityZone"], (-1, ""))[0]:
                    subnets[sn["AvailabilityZone"]] = (free, sn["SubnetId"])
        groups: list[str] = []
        for term in spec.security_group_selector_terms:
            f = _filters(term, "group-name")
            kwargs = {"GroupIds": f["ids"]} if "ids" in f else {"Filters": f["filters"]}
            groups += [g["GroupId"] for g in (await self._call("describe_security_groups", **kwargs))["SecurityGroups"]]
        images: dict[str, tuple[str, str]] = {}
        for i, term in enumerate(spec.ami_selector_terms):
            if term.alias or term.ssm_parameter:
                kwargs = {"ImageIds": await self._ssm_images(name, i, term)}
            else:
                f = _filters(term, "name")
                kwargs = {"ImageIds": f["ids"]} if "ids" in f else {"Filters": f["filters"]}
            if term.owner:
                kwargs["Owners"] = [term.owner]
            for img in (await self._call("describe_images", **kwargs))["Images"]:
                arch = "arm64" if img.get("Architecture") == "arm64" else "amd64"
                created = img.get("CreationDate", "")
                if created >= images.get(arch, ("", ""))[0]:
                    images[arch] = (created, img["ImageId"])
        missing = [field for field, found in (("subnetSelectorTerms", subnets),
                                               ("securityGroupSelectorTerms", groups),
                                               ("amiSelectorTerms", images)) if not found]
        if missing:
            raise LaunchError(f"EC2NodeClass {name}: spec.{missing[0]} select nothing")
        return Resolved({z: s for z, (_, s) in subnets.items()}, tuple(dict.fromkeys(groups)),
                        {a: i for a, (_, i) in images.items()}, frozenset(selected))

    async def _ssm_images(self, name: str, index: int, term: AMISelectorTerm) -> list[str]:
        """The AMI ids an alias (through AWS's public SSM parameters) or an ssmParameter term names now."""
        where = f"EC2NodeClass {name}: spec.amiSelectorTerms[{index}]"
        try:
            names = [term.ssm_parameter] if term.ssm_parameter else \
                alias_parameters(str(term.alias), self.kubernetes_version, self.ssm_root)
        except AliasError as exc:
            raise LaunchError(f"{where}: {exc}") from None
        if self.ssm is None:
            raise LaunchError(f"{where}: no SSM client to resolve {names[0]}")
        ids = []
        for parameter in names:
            try:
                ids.append(str((await self._call_ssm(parameter))["Parameter"]["Value"]))
            except Exception as exc:  # an architecture without a release is skipped; all missing is an error
                if "ParameterNotFound" not in str(exc):
                    raise LaunchError(f"{where}: reading {parameter}: {aws_problem(exc)}") from exc
        if not ids:
            raise LaunchError(f"{where}: SSM parameter {' / '.join(names)} not found")
        return ids

    async def _call_ssm(self, parameter: str) -> Any:
        return await asyncio.to_thread(self.ssm.get_parameter, Name=parameter)

    async def is_drifted(self, claim: Mapping[str, Any]) -> str | None:
        """NodeClassDrift or AMIDrift for a launched NodeClaim (Karpenter's AWS drift reasons),
        against the node class's selectors resolved now (at most RESOLVE_TTL_S old)."""
        nodeclass = self.nodeclasses(str(((claim.get("spec") or {}).get("nodeClassRef") or {}).get("name", "default")))
        if nodeclass is None:
            return None
        try:
            resolved: Resolved | None = await self.resolve(nodeclass)
        except LaunchError:
            resolved = None  # nothing resolves now: no evidence of drift (the launch path reports it)
        reason = nodeclass_drift(claim, nodeclass, resolved.images.values() if resolved else None)
        if reason is not None or resolved is None:
            return reason
        instance_id = str((claim.get("status") or {}).get("providerID") or "").rsplit("/", 1)[-1]
        return subnet_drift((await self._subnets()).get(instance_id, ""), resolved.all_subnets)

    async def _subnets(self) -> Mapping[str, str]:
        """The subnet of every live instance of the cluster: one listing shared by all drift
        checks, at most RESOLVE_TTL_S old."""
        now = self.clock()
        if self._subnet_cache is not None and now - self._subnet_cache[0] < RESOLVE_TTL_S:
            return self._subnet_cache[1]
        pages = await asyncio.to_thread(lambda: list(self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": f"tag:{TAG_CLUSTER}", "Values": [self.cluster]},
                     {"Name": "instance-state-name", "Values": LIVE_STATES}])))
        found = {i["InstanceId"]: i.get("SubnetId", "") for page in pages for r in page["Reservations"]
                 for i in r["Instances"]}
        self._subnet_cache = (now, found)
        return found

    async def _launch_template(self, nodeclass: EC2NodeClass, resolved: Resolved, arch: str) -> str:
        spec = nodeclass.spec
        data: dict[str, Any] = {"ImageId": resolved.images[arch], "SecurityGroupIds": list(resolved.security_groups)}
        if spec.user_data:
            data["UserData"] = base64.b64encode(spec.user_data.encode()).decode()
        if spec.instance_profile:
            data["IamInstanceProfile"] = {"Name": spec.instance_profile}
        mo = spec.metadata_options
        if mo is not None:
            data["MetadataOptions"] = {"HttpEndpoint": mo.http_endpoint, "HttpTokens": mo.http_tokens,
                                       "HttpPutResponseHopLimit": mo.http_put_response_hop_limit,
                                       "HttpProtocolIpv6": mo.http_protocol_i_pv6}
        mappings = []
        for bdm in spec.block_device_mappings:
            ebs = {k: v for k, v in {
                "VolumeSize": int(bdm.ebs.volume_size.rstrip("Gi")) if bdm.ebs and bdm.ebs.volume_size else None,
                "VolumeType": bdm.ebs.volume_type if bdm.ebs else None,
                "Iops": bdm.ebs.iops if bdm.ebs else None, "Encrypted": bdm.ebs.encrypted if bdm.ebs else None,
                "KmsKeyId": bdm.ebs.kms_key_id if bdm.ebs else None,
                "DeleteOnTermination": bdm.ebs.delete_on_termination if bdm.ebs else None}.items() if v is not None}
            mappings.append({"DeviceName": bdm.device_name or "/dev/xvda", "Ebs": ebs})
        if mappings:
            data["BlockDeviceMappings"] = mappings
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
        name = f"surge-{self.cluster}-{nodeclass.metadata.get('name', '')}-{digest}"
        async with self._template_lock:  # concurrent launches would race to create the same one
            if name in self._templates:
                return name
            try:
                await self._call("describe_launch_templates", LaunchTemplateNames=[name])
            except Exception as exc:  # botocore ClientError: not found → create it
                if "NotFound" not in str(exc):
                    raise
                try:
                    await self._call("create_launch_template", LaunchTemplateName=name, LaunchTemplateData=data,
                                     TagSpecifications=[{"ResourceType": "launch-template",
                                                         "Tags": [{"Key": TAG_CLUSTER, "Value": self.cluster}]}])
                except Exception as exc2:  # another replica made it first: same content, same name
                    if "AlreadyExists" not in str(exc2):
                        raise
            self._templates.add(name)
            return name

    # --- the interface ------------------------------------------------------------------------------
    async def create_fleet(self, request: LaunchRequest, capacity_type: str,
                           offerings: Sequence[Offering]) -> FleetResult:
        nodeclass = self.nodeclasses(request.nodeclass)
        try:
            resolved = await self.resolve(nodeclass)
        except LaunchError:
            raise
        except Exception as exc:  # credentials missing or denied, endpoint unreachable: said, not retried hot
            raise LaunchError(f"EC2NodeClass {request.nodeclass}: {aws_problem(exc)}") from exc
        usable = [o for o in offerings if o.zone in resolved.subnets and o.architecture in resolved.images]
        if not usable:
            return FleetResult(None, tuple(offerings), "no subnet or AMI for any of these offerings")
        configs = []
        for arch in dict.fromkeys(o.architecture for o in usable):
            template = await self._launch_template(nodeclass, resolved, arch)
            configs.append({"LaunchTemplateSpecification": {"LaunchTemplateName": template, "Version": "$Latest"},
                            "Overrides": [{"InstanceType": o.instance_type, "SubnetId": resolved.subnets[o.zone],
                                           "AvailabilityZone": o.zone}
                                          for o in usable if o.architecture == arch]})
        tags = {**nodeclass.spec.tags, **request.tags, TAG_CLUSTER: self.cluster,
                f"kubernetes.io/cluster/{self.cluster}": "owned", TAG_NODEPOOL: request.nodepool,
                TAG_NODECLAIM: request.nodeclaim, TAG_NODECLASS: request.nodeclass,
                "karpenter.sh/capacity-type": capacity_type, "Name": f"{request.nodepool}/{request.nodeclaim}"}
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        kwargs: dict[str, Any] = {
            "Type": "instant",
            "ClientToken": client_token(self.cluster, request.nodeclaim, capacity_type, configs),
            "LaunchTemplateConfigs": configs,
            "TargetCapacitySpecification": {"TotalTargetCapacity": 1, "DefaultTargetCapacityType": capacity_type},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tag_list},
                                  {"ResourceType": "volume", "Tags": tag_list}],
        }
        if capacity_type == "spot":
            kwargs["SpotOptions"] = {"AllocationStrategy": "price-capacity-optimized"}
        else:
            kwargs["OnDemandOptions"] = {"AllocationStrategy": "lowest-price"}
        try:
            response = await self._call("create_fleet", **kwargs)
        except Exception as exc:
            raise LaunchError(f"NodeClaim {request.nodeclaim}: CreateFleet failed: {aws_problem(exc)}") from exc
        result = fleet_outcome(response, usable, capacity_type, tags, self.clock())
        if result.instance is not None:  # the AMI its launch template named: what AMI drift compares
            arch = next((o.architecture for o in usable if o.instance_type == result.instance.instance_type), "amd64")
            result = dataclasses.replace(result, instance=dataclasses.replace(
                result.instance, image_id=resolved.images.get(arch, "")))
        return result

    def _instance(self, raw: Mapping[str, Any]) -> Instance:
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags") or []}
        capacity = raw.get("InstanceLifecycle") or tags.get("karpenter.sh/capacity-type") or "on-demand"
        launched: Any = raw.get("LaunchTime")
        return Instance(raw["InstanceId"], raw["InstanceType"], "spot" if capacity == "spot" else "on-demand",
                        (raw.get("Placement") or {}).get("AvailabilityZone", ""), raw["State"]["Name"], tags,
                        launched.timestamp() if launched is not None else self.clock(), raw.get("ImageId", ""))

    async def _describe(self, filters: list[dict[str, Any]]) -> list[Instance]:
        out = []
        pages = await asyncio.to_thread(
            lambda: list(self.ec2.get_paginator("describe_instances").paginate(Filters=filters)))
        for page in pages:
            for reservation in page["Reservations"]:
                out += [self._instance(i) for i in reservation["Instances"]]
        return out

    async def find(self, nodeclaim: str) -> Instance | None:
        found = await self._describe([{"Name": f"tag:{TAG_CLUSTER}", "Values": [self.cluster]},
                                      {"Name": f"tag:{TAG_NODECLAIM}", "Values": [nodeclaim]},
                                      {"Name": "instance-state-name", "Values": LIVE_STATES}])
        return found[0] if found else None

    async def list_owned(self) -> list[Instance]:
        return await self._describe([{"Name": f"tag:{TAG_CLUSTER}", "Values": [self.cluster]},
                                     {"Name": "instance-state-name", "Values": LIVE_STATES}])

    async def terminate(self, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            await self._call("terminate_instances", InstanceIds=list(instance_ids))

    async def spot_prices(self, instance_types: Sequence[str]) -> dict[tuple[str, str], float]:
        """Current Linux spot price per (type, zone) from DescribeSpotPriceHistory: StartTime now
        returns the price in force now for each (type, zone), as Karpenter asks; every page."""
        from provisioner.cloud.spot import latest_spot_prices, spot_price_history

        now = self.clock()
        return await asyncio.to_thread(lambda: latest_spot_prices(spot_price_history(self.ec2, instance_types, now)))

    async def type_zones(self) -> dict[str, set[str]]:
        """Zones each instance type is offered in (DescribeInstanceTypeOfferings, every page)."""
        def pages() -> list[Any]:
            paginator = self.ec2.get_paginator("describe_instance_type_offerings")
            return list(paginator.paginate(LocationType="availability-zone"))

        out: dict[str, set[str]] = {}
        for page in await asyncio.to_thread(pages):
            for row in page["InstanceTypeOfferings"]:
                out.setdefault(row["InstanceType"], set()).add(row["Location"])
        return out

    async def zones(self, nodeclass: str) -> set[str]:
        """Zones the EC2NodeClass has subnets in: the only zones a launch can use."""
        return set((await self.resolve(self.nodeclasses(nodeclass))).subnets)
