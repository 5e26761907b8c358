"""The cloud-provider interface and the types that cross it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# Tags that tie an instance to surge's objects (Karpenter's names, so its tooling still reads them)
TAG_NODEPOOL = "karpenter.sh/nodepool"
TAG_NODECLAIM = "karpenter.sh/nodeclaim"
TAG_NODECLASS = "karpenter.k8s.aws/ec2nodeclass"
TAG_CLUSTER = "surge.sh/cluster"


@dataclass(frozen=True)
class Offering:
    """One way to get a node: instance type × capacity type × zone, at a price."""

    instance_type: str
    capacity_type: str  # "spot" | "on-demand"
    zone: str
    price: float
    architecture: str = "amd64"


@dataclass(frozen=True)
class LaunchRequest:
    """One NodeClaim to launch: the offerings it may use (any order) and what to tag it with."""

    nodeclaim: str
    nodepool: str
    nodeclass: str
    offerings: Sequence[Offering]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    id: str
    instance_type: str
    capacity_type: str
    zone: str
    state: str  # pending | running | shutting-down | terminated | stopping | stopped
    tags: Mapping[str, str]
    launched_at: float
    image_id: str = ""  # the AMI it runs (NodeClaim status.imageID; AMI drift compares it)

    @property
    def provider_id(self) -> str:
        """What the kubelet puts in Node.spec.providerID (how a Node is matched to its NodeClaim)."""
        return f"aws:///{self.zone}/{self.id}"

    @property
    def nodeclaim(self) -> str | None:
        return self.tags.get(TAG_NODECLAIM)


@dataclass(frozen=True)
class FleetResult:
    """What one fleet request gave: an instance, and the offerings that failed for lack of capacity."""

    instance: Instance | None
    exhausted: Sequence[Offering] = ()
    error: str = ""


class CapacityError(Exception):
    """No offering of the request could be launched; `tried` says which were attempted or skipped."""

    def __init__(self, nodeclaim: str, tried: Sequence[Offering], detail: str) -> None:
        self.nodeclaim, self.tried = nodeclaim, tuple(tried)
        names = ", ".join(f"{o.instance_type}/{o.capacity_type}/{o.zone}" for o in tried[:6])
        more = f" and {len(tried) - 6} more" if len(tried) > 6 else ""
        super().__init__(f"NodeClaim {nodeclaim}: no capacity ({detail}); tried {names or 'nothing'}{more}")


class LaunchError(Exception):
    """The cloud refused the request for a reason other than capacity (bad AMI, permissions…)."""


class CloudProvider(Protocol):
    async def create_fleet(self, request: LaunchRequest, capacity_type: str,
                           offerings: Sequence[Offering]) -> FleetResult:
        """One attempt with `offerings` (cheapest first, all of `capacity_type`)."""

    async def find(self, nodeclaim: str) -> Instance | None:
        """The live instance already launched for this NodeClaim, if any (idempotent launches)."""

    async def list_owned(self) -> list[Instance]:
        """Every live instance this cluster's surge launched (for garbage collection)."""

    async def terminate(self, instance_ids: Sequence[str]) -> None: ...
