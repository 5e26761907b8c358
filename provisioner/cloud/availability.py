"""Offerings that recently failed for lack of capacity, kept out of launches for a while.

Karpenter marks an offering unavailable for 3 minutes after InsufficientInstanceCapacity; without
that memory every retry walks into the same empty pool. Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def available(self, offering: Offering, now: float) -> bool:
        until = self.until.get(self._key(offering))
        if until is None:
            return True
        if until <= now:
            del self.until[self._key(offering)]
            return True
        return False
