"""The simulator's cloud: instances in memory, with capacity pools that can run dry.

Same interface and launch policy as AWS, so tests and simulations exercise the real fallback
logic: a pool with no capacity answers like CreateFleet does (InsufficientInstanceCapacity for
that offering), and a launched instance carries the same tags.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from provisioner.cloud.base import (
    TAG_CLUSTER,
    TAG_NODECLAIM,
    TAG_NODEPOOL,
    FleetResult,
    Instance,
    LaunchRequest,
    Offering,
)


@dataclass
class SimulatedProvider:
    clock: Callable[[], float]
    cluster: str = "sim"
    # remaining instances per (type, capacity type, zone); absent means unlimited
    capacity: dict[tuple[str, str, str], int] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    fleet_calls: list[tuple[str, str, tuple[Offering, ...]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def create_fleet(self, request: LaunchRequest, capacity_type: str,
                           offerings: Sequence[Offering]) -> FleetResult:
        self.fleet_calls.append((request.nodeclaim, capacity_type, tuple(offerings)))
        exhausted = []
        for o in offerings:  # cheapest first, as the launch policy ordered them
            key = (o.instance_type, o.capacity_type, o.zone)
            left = self.capacity.get(key)
            if left is not None and left <= 0:
                exhausted.append(o)
                continue
            if left is not None:
                self.capacity[key] = left - 1
            tags = {**request.tags, TAG_CLUSTER: self.cluster, TAG_NODEPOOL: request.nodepool,
                    TAG_NODECLAIM: request.nodeclaim}
            instance = Instance(f"i-sim{next(self._ids):012x}", o.instance_type, capacity_type, o.zone, "running",
                                tags, self.clock())
            self.instances[instance.id] = instance
            return FleetResult(instance, tuple(exhausted))
        return FleetResult(None, tuple(exhausted), "InsufficientInstanceCapacity: no capacity in any offering")

    async def find(self, nodeclaim: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.nodeclaim == nodeclaim and i.state == "running"), None)

    async def list_owned(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.state == "running"]

    async def terminate(self, instance_ids: Sequence[str]) -> None:
        for iid in instance_ids:
            old = self.instances[iid]
            self.instances[iid] = Instance(old.id, old.instance_type, old.capacity_type, old.zone, "terminated",
                                           old.tags, old.launched_at)
