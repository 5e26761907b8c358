"""Instance types with allocatable resources and offerings, from the embedded AWS snapshot.

The snapshot (provisioner/data, from Karpenter's reference data) gives specs, on-demand prices
for us-east-1 and ENI limits. Allocatable is computed with Karpenter's overhead formulas
(AL2023): VM overhead 7.5 % of memory, kube-reserved CPU by bands and 11 MiB per pod + 255 MiB
memory, a 100 MiB eviction threshold, and the ENI-limited pod count. Spot prices are never
invented: spot offerings exist only where the caller supplies a price.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources as ir
from typing import Any

from provisioner.resources import Resources, amount

DEFAULT_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
EPHEMERAL_CAPACITY_MIB = 20 * 1024  # EC2NodeClass default root volume (AL2023); 17Gi allocatable
# extended resources Karpenter's AWS provider reports (allocatable), besides cpu / memory / pods / nvidia.com/gpu
EXTENDED = ("ephemeral-storage", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore", "amd.com/gpu",
            "vpc.amazonaws.com/efa", "habana.ai/gaudi")
ON_DEMAND, SPOT = "on-demand", "spot"


@dataclass(frozen=True)
class Offering:
    capacity_type: str
    zone: str
    price: float
    available: bool = True


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpu: int
    memory_mib: int
    architecture: str
    family: str
    category: str
    generation: int
    gpu_count: int
    gpu_name: str
    gpu_memory_mib: int
    max_pods: int
    allocatable: Resources
    labels: Mapping[str, str] = field(hash=False, compare=False)
    offerings: tuple[Offering, ...] = ()

    @property
    def capacity(self) -> Resources:
        """The node's capacity (before kube-reserved and eviction): what NodePool limits count."""
        return Resources(self.vcpu * 1000, self.memory_mib, self.allocatable.gpu, self.allocatable.pods,
                         tuple((k, EPHEMERAL_CAPACITY_MIB if k == "ephemeral-storage" else v)
                               for k, v in self.allocatable.extended))


def kube_reserved_cpu_m(vcpu: int) -> int:
    """Karpenter's CPU reservation bands, each truncated to whole millicores."""
    bands = [(1, 0.06), (1, 0.01), (2, 0.005)]
    reserved, remaining = 0, vcpu
    for cores, share in bands:
        take = min(cores, remaining)
        reserved += int(take * 1000 * share)
        remaining -= take
    reserved += int(max(0, remaining) * 1000 * 0.0025)
    return reserved


def allocatable(vcpu: int, memory_mib: int, architecture: str, max_pods: int, gpus: int = 0,
                extended: Mapping[str, int] | None = None) -> Resources:
    memory = memory_mib - (64 if architecture == "arm64" else 0)
    memory -= math.ceil(memory * 0.075)
    memory -= 11 * max_pods + 255  # kube-reserved memory
    memory -= 100  # eviction threshold
    ext = tuple(sorted((k, v) for k, v in (extended or {}).items() if v))
    return Resources(vcpu * 1000 - kube_reserved_cpu_m(vcpu), memory, gpus, max_pods, ext)


def _extended(row: Mapping[str, Any]) -> dict[str, int]:
    alloc = row.get("karpenter_allocatable") or {}
    return {k: amount(k, alloc[k]) for k in EXTENDED if k in alloc}


def _read(name: str) -> Any:
    return json.loads(ir.files("provisioner").joinpath("data", name).read_text())


@cache
def _raw_snapshot() -> tuple[list[dict[str, Any]], dict[str, float], dict[str, int]]:
    specs = _read("instance_type_specs.json")["instance_types"]
    prices = dict(_read("ondemand_prices_us-east-1.json")["prices"])
    limits = {k: v["eni_limited_max_pods"] for k, v in _read("vpc_limits.json")["limits"].items()}
    return specs, prices, limits


def load_catalog(
    zones: Iterable[str] = DEFAULT_ZONES,
    spot_prices: Mapping[tuple[str, str], float] | None = None,
) -> list[InstanceType]:
    """Every Linux instance type that has an on-demand price, offered in `zones`; spot offerings
    where `spot_prices[(type, zone)]` is given."""
    specs, prices, limits = _raw_snapshot()
    zones = tuple(zones)
    out = []
    for s in specs:
        name = s["instance_type"]
        if name not in prices or s.get("os", "linux") != "linux":
            continue
        max_pods = limits.get(name) or int(s["karpenter_allocatable"]["pods"])
        offerings = [Offering(ON_DEMAND, z, prices[name]) for z in zones]
        for z in zones:
            spot = (spot_prices or {}).get((name, z))
            if spot is not None:
                offerings.append(Offering(SPOT, z, spot))
        out.append(InstanceType(
            name=name, vcpu=s["vcpu"], memory_mib=s["memory_mib"], architecture=s["architecture"],
            family=s["family"], category=s["category"], generation=s["generation"] or 0,
            gpu_count=s["gpu_count"] or 0, gpu_name=s["gpu_name"] or "", gpu_memory_mib=s["gpu_memory_mib"] or 0,
            max_pods=max_pods,
            # the GPU resource pods ask for is nvidia.com/gpu; AMD GPUs are amd.com/gpu and do not count
            allocatable=allocatable(s["vcpu"], s["memory_mib"], s["architecture"], max_pods,
                                    (s["gpu_count"] or 0) if s.get("gpu_manufacturer") == "nvidia" else 0,
                                    _extended(s)),
            labels=dict(s["labels"]), offerings=tuple(offerings),
        ))
    return out


def with_spot_prices(catalog: Iterable[InstanceType], prices: Mapping[tuple[str, str], float]) -> list[InstanceType]:
    """The catalog with its spot offerings replaced by `prices[(type, zone)]` (zones a type has an
    offering in only; a type/zone without a price has no spot offering)."""
    out = []
    for it in catalog:
        zones = dict.fromkeys(o.zone for o in it.offerings)
        kept = [o for o in it.offerings if o.capacity_type != SPOT]
        spot = [Offering(SPOT, z, prices[(it.name, z)]) for z in zones if (it.name, z) in prices]
        out.append(replace(it, offerings=tuple(kept + spot)))
    return out


def restrict_zones(catalog: Iterable[InstanceType], zones_of: Mapping[str, Iterable[str]]) -> list[InstanceType]:
    """Offerings only in the zones each type is offered in (DescribeInstanceTypeOfferings); types
    missing from `zones_of` are dropped."""
    out = []
    for it in catalog:
        allowed = set(zones_of.get(it.name, ()))
        offerings = tuple(o for o in it.offerings if o.zone in allowed)
        if offerings:
            out.append(replace(it, offerings=offerings))
    return out


def snapshot_rows() -> list[dict[str, Any]]:
    """The raw spec rows (with Karpenter's own allocatable), for checking the formulas."""
    return _raw_snapshot()[0]


def eni_max_pods() -> dict[str, int]:
    return dict(_raw_snapshot()[2])
