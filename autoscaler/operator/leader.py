"""Leader election with a coordination.k8s.io Lease: several operator replicas, one active.

The holder renews the Lease every `renew_s`; others take it over only once it is older than its
duration. Every write carries the Lease's resourceVersion, so two candidates racing for an
expired Lease cannot both win (the loser gets 409 Conflict).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("surge.leader")


class LeaderElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str, lease_s: int = 15,
                 renew_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_s, self.renew_s, self.clock = lease_s, renew_s, clock
        self.is_leader = False

    def _spec(self, transitions: int, acquired: datetime | None = None) -> client.V1LeaseSpec:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=self.lease_s,
                                  acquire_time=acquired or now, renew_time=now, lease_transitions=transitions)

    async def try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                                  spec=self._spec(0))
            try:
                await self.leases.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
        spec = lease.spec
        renewed = spec.renew_time.timestamp() if spec.renew_time else 0.0
        expired = renewed + (spec.lease_duration_seconds or self.lease_s) < self.clock()
        mine = spec.holder_identity == self.identity
        if not mine and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        lease.spec = self._spec(transitions, spec.acquire_time if mine else None)
        try:
            await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
            return True
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first
                return False
            raise

    async def run(self, on_start: Callable[[], Awaitable[None]], on_stop: Callable[[], Awaitable[None]]) -> None:
        try:
            while True:
                try:
                    leading = await self.try_acquire_or_renew()
                except (ApiException, OSError) as exc:
                    log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
                    leading = False
                if leading and not self.is_leader:
                    self.is_leader = True
                    log.info("%s became leader", self.identity)
                    await on_start()
                elif not leading and self.is_leader:
                    self.is_leader = False
                    log.warning("%s lost the lease", self.identity)
                    await on_stop()
                await asyncio.sleep(self.renew_s)
        finally:
            if self.is_leader:
                self.is_leader = False
                await on_stop()
