"""Leader election with a coordination.k8s.io Lease that cannot split: at most one replica acts.

client-go's rules, which Kubernetes' own controllers (and KEDA and Karpenter through
controller-runtime) follow:

- A candidate takes the Lease only when it is free (no holder: released) or when its record has
  not changed for `lease_s` *as observed on the candidate's own clock* — never by comparing the
  holder's renewTime with its own wall clock, so clock skew cannot shorten a lease.
- Every write carries the Lease's resourceVersion, so two candidates racing for it cannot both
  win (the loser gets 409 Conflict).
- The leader renews every `retry_s`; if it has not renewed within `renew_deadline_s` of its
  last successful renewal (started), it stops leading. `renew_deadline_s < lease_s`, so it has
  stopped before anyone may take the Lease — provided each write it makes is bounded by
  `lease_s - renew_deadline_s` (the request timeout `api_client` sets) and checked with
  `leading()` just before it is sent (fencing).
- Stopping (SIGTERM) releases the Lease: the holder is cleared, so a standby takes over at its
  next retry instead of waiting out the lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.operator.kube import API_ERRORS, NotLeading

__all__ = ["LeaderElector", "LeaseTiming", "NotLeading"]

log = logging.getLogger("surge.leader")
JITTER = 1.2  # client-go's JitterFactor for the acquire loop


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults (and controller-runtime's): 15 s lease, 10 s renew deadline, 2 s retry."""

    lease_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_s > self.renew_deadline_s:
            raise ValueError(f"leaseDuration ({self.lease_s:g} s) must be greater than renewDeadline "
                             f"({self.renew_deadline_s:g} s)")
        if not self.renew_deadline_s > JITTER * self.retry_s:
            raise ValueError(f"renewDeadline ({self.renew_deadline_s:g} s) must be greater than retryPeriod × "
                             f"{JITTER} ({JITTER * self.retry_s:g} s)")
        if self.retry_s <= 0:
            raise ValueError(f"retryPeriod must be positive, got {self.retry_s:g}")

    @property
    def write_budget_s(self) -> float:
        """How long one API call may take: a write sent just before the renew deadline must have
        landed (or failed) before the Lease can be taken."""
        return self.lease_s - self.renew_deadline_s


class LeaderElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str,
                 timing: LeaseTiming | None = None, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timing = timing or LeaseTiming()
        self.clock, self.monotonic = clock, monotonic
        self.rng = rng or random.Random()
        self.is_leader = False
        self.renewed_at = -float("inf")  # monotonic start of the last successful acquire/renew
        self._observed: tuple[Any, ...] | None = None  # the Lease record as last seen
        self._observed_at = 0.0  # monotonic time it was first seen in that state

    # --- one attempt ----------------------------------------------------------------------------
    def _spec(self, transitions: int, acquired: datetime | None = None) -> client.V1LeaseSpec:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=round(self.timing.lease_s),
                                  acquire_time=acquired or now, renew_time=now, lease_transitions=transitions)

    def _observe(self, spec: client.V1LeaseSpec, at: float) -> None:
        record = (spec.holder_identity, spec.renew_time, spec.acquire_time, spec.lease_transitions,
                  spec.lease_duration_seconds)
        if record != self._observed:
            self._observed, self._observed_at = record, at

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards. API errors propagate."""
        started = self.monotonic()
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                                  spec=self._spec(0))
            try:
                created = await self.leases.create_namespaced_lease(self.namespace, body)
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            self._observe(created.spec if created is not None else body.spec, started)
            self.renewed_at = started
            return True
        spec = lease.spec or client.V1LeaseSpec()
        self._observe(spec, started)
        holder = spec.holder_identity or ""
        mine = holder == self.identity
        duration = spec.lease_duration_seconds or self.timing.lease_s
        if holder and not mine and started < self._observed_at + duration:
            return False  # held, and renewed within the last lease duration as far as we can see
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        lease.spec = self._spec(transitions, spec.acquire_time if mine else None)
        try:
            updated = await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first
                return False
            raise
        self._observe(updated.spec if updated is not None else lease.spec, started)
        self.renewed_at = started
        return True

    def leading(self) -> bool:
        """True while this replica may act: it leads and its last renewal is within the deadline."""
        return self.is_leader and self.monotonic() < self.renewed_at + self.timing.renew_deadline_s

    def fence(self) -> None:
        """Raise NotLeading unless `leading()`; called just before each write batch."""
        if not self.leading():
            raise NotLeading(f"{self.identity} is not (or may no longer be) the leader")

    async def release(self) -> bool:
        """Clear the holder so a standby takes over at once (client-go's ReleaseOnCancel)."""
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return False
            now = datetime.fromtimestamp(self.clock(), UTC)
            lease.spec = client.V1LeaseSpec(holder_identity="", lease_duration_seconds=1, acquire_time=now,
                                            renew_time=now, lease_transitions=lease.spec.lease_transitions)
            await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except API_ERRORS as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, str(exc) or type(exc).__name__)
            return False
        log.info("%s released the lease", self.identity)
        return True

    async def _attempt(self, limit_s: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), max(0.0, limit_s))
        except API_ERRORS as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, str(exc) or type(exc).__name__)
            return False

    # --- the loop ---------------------------------------------------------------------------------
    async def _acquire(self) -> None:
        while not await self._attempt(self.timing.renew_deadline_s):
            await asyncio.sleep(self.timing.retry_s * (1 + self.rng.random() * JITTER))

    async def _renew_until_lost(self) -> None:
        """Renew every retry period; return when a renewal did not succeed within the deadline."""
        while True:
            await asyncio.sleep(self.timing.retry_s)
            deadline = self.renewed_at + self.timing.renew_deadline_s
            while not await self._attempt(deadline - self.monotonic()):
                if self.monotonic() >= deadline:
                    return
                await asyncio.sleep(min(self.timing.retry_s, max(0.0, deadline - self.monotonic())))
                if self.monotonic() >= deadline:
                    return

    async def run(self, on_start: Callable[[], Awaitable[None]], on_stop: Callable[[], Awaitable[None]]) -> None:
        """Lead whenever possible, for ever; on cancellation stop acting, then release the Lease."""
        try:
            while True:
                await self._acquire()
                self.is_leader = True
                log.info("%s became leader", self.identity)
                await on_start()
                await self._renew_until_lost()
                self.is_leader = False
                log.warning("%s lost the lease (no renewal within %g s)", self.identity,
                            self.timing.renew_deadline_s)
                await on_stop()
        finally:
            if self.is_leader:
                self.is_leader = False
                await on_stop()
                await asyncio.shield(self.release())
