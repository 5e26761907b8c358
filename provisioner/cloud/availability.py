"""Offerings that recently failed for lack of capacity, kept out of launches for a while.

Karpenter marks an offering unavailable for 3 minutes after InsufficientInstanceCapacity; without
that memory every retry walks into the same empty pool. Pure: the clock is passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from provisioner.catalog import InstanceType
from provisioner.cloud.base import Offering

UNAVAILABLE_TTL_S = 180.0


@dataclass
class UnavailableOfferings:
    ttl_s: float = UNAVAILABLE_TTL_S
    until: dict[tuple[str, str, str], float] = field(default_factory=dict)

    @staticmethod
    def _key(o: Offering) -> tuple[str, str, str]:
        return (o.instance_type, o.capacity_type, o.zone)

    def mark(self, offering: Offering, now: float) -> None:
        self.until[self._key(offering)] = now + self.ttl_s

    def marked(self, now: float) -> frozenset[tuple[str, str, str]]:
        """(type, capacity type, zone) of the offerings unavailable now."""
        return frozenset(k for k, until in self.until.items() if until > now)

    def available(self, offering: Offering, now: float) -> bool:
        until = self.until.get(self._key(offering))
        if until is None:
            return True
        if until <= now:
            del self.until[self._key(offering)]
            return True
        return False


def catalog_now(catalog: Iterable[InstanceType], unavailable: UnavailableOfferings, now: float) -> list[InstanceType]:
    """The catalog with the offerings marked unavailable (out of capacity, or just reclaimed by a
    spot interruption) flagged so, so a plan steers around them, not only the launch. The live
    provisioner and the simulator plan on this."""
    out = []
    for it in catalog:
        offerings = tuple(o if unavailable.available(Offering(it.name, o.capacity_type, o.zone, o.price), now)
                          else dataclasses.replace(o, available=False) for o in it.offerings)
        out.append(it if offerings == it.offerings else dataclasses.replace(it, offerings=offerings))
    return out
