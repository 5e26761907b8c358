"""How a NodeClaim becomes an instance, whatever the cloud: the launch policy.

1. If an instance tagged with this NodeClaim already runs (the controller died between launching
   and recording it), adopt it: no second launch.
2. Spot first when the NodeClaim allows it (cheaper), on-demand otherwise or when no spot
   offering is left; within a capacity type, offerings cheapest first, at most 60 (CreateFleet's
   override limit), skipping those marked unavailable.
3. Offerings that fail for lack of capacity are marked unavailable for 3 minutes and the next
   attempt goes without them, falling back from spot to on-demand.
"""

from __future__ import annotations

from collections.abc import Callable

from provisioner.cloud.availability import UnavailableOfferings
from provisioner.cloud.base import CapacityError, CloudProvider, Instance, LaunchRequest, Offering

MAX_OVERRIDES = 60
CAPACITY_ORDER = ("spot", "on-demand")


async def launch(provider: CloudProvider, request: LaunchRequest, unavailable: UnavailableOfferings,
                 clock: Callable[[], float]) -> Instance:
    existing = await provider.find(request.nodeclaim)
    if existing is not None:
        return existing
    tried: list[Offering] = []
    errors: list[str] = []
    for capacity_type in CAPACITY_ORDER:
        while True:
            now = clock()
            candidates = sorted((o for o in request.offerings if o.capacity_type == capacity_type
                                 and unavailable.available(o, now)),
                                key=lambda o: (o.price, o.instance_type, o.zone))[:MAX_OVERRIDES]
            if not candidates:
                break
            result = await provider.create_fleet(request, capacity_type, candidates)
            for o in result.exhausted:  # a fleet may launch one offering after others ran dry
                unavailable.mark(o, clock())
            if result.instance is not None:
                return result.instance
            tried.extend(candidates)
            if result.error:
                errors.append(result.error)
            if not result.exhausted:
                break  # failed, but not for capacity: another round would fail the same way
    skipped = [o for o in request.offerings if o not in tried]
    detail = "; ".join(dict.fromkeys(errors)) or "every allowed offering is marked unavailable"
    raise CapacityError(request.nodeclaim, tried + skipped, detail)


def orphans(owned: list[Instance], nodeclaims: set[str], now: float, grace_s: float = 60.0) -> list[Instance]:
    """Instances surge launched whose NodeClaim is gone, older than `grace_s` (a NodeClaim is
    created before its launch, so only a stale listing could show a young instance without one)."""
    return [i for i in owned if i.state not in ("shutting-down", "terminated")
            and (i.nodeclaim is None or i.nodeclaim not in nodeclaims) and now - i.launched_at > grace_s]
