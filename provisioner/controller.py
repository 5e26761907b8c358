"""The provisioning controller: pending pods → NodeClaims → instances → Nodes, and back.

It follows pods, Nodes, NodeClaims, NodePools and EC2NodeClasses through watches and acts in
four loops: provisioning (batch pending pods, plan with the packer, create NodeClaims and launch
them), lifecycle (Launched → Registered → Initialized, timeouts), garbage collection (instances
without NodeClaims, NodeClaims without instances) and disruption (empty or expired nodes, within
budgets, drained through the Eviction API). Spot interruption warnings from SQS launch a
replacement first, then drain. The decisions are `provisioner/provisioning.py`'s; the cloud is
any `CloudProvider`.

`prepare_for()` is how the ScaledObject controller hands over the pods it is about to add: nodes
for them are planned and launched at once, without waiting for the pods to go Pending and for a
batch window, and kept from consolidation for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from provisioner.catalog import InstanceType, with_spot_prices
from provisioner.cloud.availability import UnavailableOfferings, catalog_now
from provisioner.cloud.base import CapacityError, CloudProvider, Instance, LaunchError, LaunchRequest, Offering
from provisioner.cloud.launch import launch, orphans
from provisioner.disruption import (
    DELETION_COST,
    DELETION_COST_EVERY_S,
    HANDOVER,
    HANDOVER_DELETION_COST,
    HANDOVER_GRACE_S,
    HANDOVER_TIMEOUT_S,
    PROTECT_S,
    REPACK_MIN_SAVING,
    REPACK_ON,
    SPOT_RESIZE_MIN_SAVING,
    Action,
    Handover,
    Workload,
    deletion_costs,
    disruption_actions,
    drain_at,
    dump_handover,
    handover_done,
    handover_extra,
    hands_over,
    live_extras,
    parse_handover,
    workload_of,
)
from provisioner.drift import STAMPS, drift_conditions, drifted_since, launched, nodepool_drift, restamp, stamps
from provisioner.interruption import Interruption
from provisioner.kube import ProvisionerKube
from provisioner.metrics import ProvisionerMetrics
from provisioner.nodeclass import EC2NodeClass
from provisioner.nodepool import NodePool
from provisioner.plan import Plan, make_plan
from provisioner.pods import PodGroup, group_from_pod_spec
from provisioner.problem import ExistingNode
from provisioner.provisioning import (
    DISRUPTED_TAINT,
    DO_NOT_DISRUPT,
    NOMINATED,
    PROTECTED_UNTIL,
    REGISTRATION_TIMEOUT_S,
    UNREGISTERED_TAINT,
    BatchWindow,
    Disruption,
    NodeView,
    Reservation,
    claim_step,
    covers,
    daemonset_overhead_of,
    existing_capacity,
    groups_of,
    nodeclaims_for,
    offerings_for,
    owned_by_daemonset,
    parse_duration,
    pending_groups,
    pod_event,
    pod_key,
    pod_requests,
    pool_in_zones,
    requirements_by_pod,
    reservation_holds,
    reserved_pods,
    total,
    with_remaining_limits,
)
from provisioner.requirements import Taint
from provisioner.resources import Resources

log = logging.getLogger("surge.provisioner")
HANDOVER_SETTLE_S = 30.0  # after a handover, the ReplicaSet's own deletions get this long before evictions
SPOT_REFRESH_S = 12 * 3600.0  # spot prices read again (all pages) as often as Karpenter's pricing controller


def _ts(text: str | None, default: float) -> float:
    if not text:
        return default
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProvisioningController:
    def __init__(self, kube: ProvisionerKube, cloud: CloudProvider, catalog: list[InstanceType],
                 clock: Callable[[], float] = time.time, gc_interval_s: float = 60.0,
                 disruption_interval_s: float = 10.0, tick_s: float = 1.0,
                 interruptions: Callable[[], Any] | None = None, metrics: ProvisionerMetrics | None = None) -> None:
        self.kube, self.cloud, self.catalog, self.clock = kube, cloud, catalog, clock
        self.spot_refresh_at = clock() + SPOT_REFRESH_S  # the catalog came with fresh prices
        self.metrics = metrics or ProvisionerMetrics()
        self.pool_objs: dict[str, dict[str, Any]] = {}
        self.pool_problems: dict[str, tuple[str, str]] = {}  # pool → (reason, message) while it cannot launch
        self.gc_interval_s, self.disruption_interval_s, self.tick_s = gc_interval_s, disruption_interval_s, tick_s
        self.interruptions = interruptions
        self.pods: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, NodePool] = {}
        self.nodeclasses: dict[str, dict[str, Any]] = {}
        self.batch = BatchWindow()
        self.seen_pending: set[str] = set()
        self.kick = asyncio.Event()
        self.launching: dict[str, asyncio.Task[None]] = {}
        self.disrupting: dict[str, asyncio.Task[None]] = {}
        self.unavailable = UnavailableOfferings()
        self.launched_at: dict[str, float] = {}
        self.pods_changed_at: dict[str, float] = {}  # node → its last pod event (`pod_event`)
        self.forecasts: dict[tuple[str, str, str], tuple[int, float]] = {}  # target → (replicas, until)
        self.templates: dict[tuple[str, str, str], tuple[Mapping[str, str], Resources]] = {}
        self.reservations: list[Reservation] = []
        self.nodeclass_errors: dict[str, tuple[float, str]] = {}
        self.synced: set[str] = set()
        self.ranked_at = -math.inf  # pods' deletion costs were last written then
        self.ranks: dict[str, int] = {}  # node → the deletion cost its pods got at the last ranking
        self.ranking: set[asyncio.Task[None]] = set()  # costs being written onto newly bound pods
        self.nominated_extra: dict[str, dict[str, Resources]] = {}  # in-flight claim → pods planned onto its room

    # --- following the API --------------------------------------------------------------------------
    async def run(self) -> None:
        follows = [("nodes", self.kube.watch_nodes, self.nodes, _name),
                   ("nodeclaims", self.kube.watch_nodeclaims, self.claims, _name),
                   ("ec2nodeclasses", self.kube.watch_nodeclasses, self.nodeclasses, _name)]
        tasks = [asyncio.create_task(self._follow("pods", self.kube.watch_pods, self.pods, pod_key,
                                                  self._pod_event))]
        tasks += [asyncio.create_task(self._follow(*f)) for f in follows]
        tasks.append(asyncio.create_task(self._follow_pools()))
        tasks += [asyncio.create_task(c) for c in (self._provision_loop(), self._lifecycle_loop(), self._gc_loop(),
                                                   self._disruption_loop())]
        if self.interruptions is not None:
            tasks.append(asyncio.create_task(self._interruption_loop()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in [*tasks, *self.launching.values(), *self.disrupting.values(), *self.ranking]:
                t.cancel()
            await asyncio.gather(*tasks, *self.launching.values(), *self.disrupting.values(), *self.ranking,
                                 return_exceptions=True)

    async def _follow(self, what: str, stream: Callable[[], AsyncIterator[dict[str, Any]]],
                      cache: dict[str, dict[str, Any]], key: Callable[[Mapping[str, Any]], str],
                      changed: Callable[[dict[str, Any] | None, dict[str, Any] | None], None] | None = None) -> None:
        while True:
            try:
                async for event in stream():
                    obj = event["object"]
                    if event["type"] == "SYNCED":
                        self.synced.add(what)
                        self.kick.set()
                        continue
                    old = cache.get(key(obj))
                    if event["type"] == "DELETED":
                        cache.pop(key(obj), None)
                    else:
                        cache[key(obj)] = obj
                    if changed is not None:
                        try:
                            changed(old, None if event["type"] == "DELETED" else obj)
                        except Exception as exc:  # one odd object must not stop the watch
                            log.warning("%s %s: %s", what, key(obj), exc)
                    self.synced.add(what)
                    self.kick.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s watch ended: %s", what, exc)
                await asyncio.sleep(1)

    def _pod_event(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """A pod bound to or leaving a node restarts that node's consolidateAfter (`pod_event`); a
        ReplicaSet pod bound to a ranked node gets that node's deletion cost at once, so a
        scale-down before the next ranking still empties the node consolidation would take first."""
        event = pod_event(old, new, self.clock())
        if event is None:
            return
        node, at = event
        self.pods_changed_at[node] = max(at, self.pods_changed_at.get(node, at))
        if new is not None and (new.get("spec") or {}).get("nodeName") == node and node in self.ranks:
            task = asyncio.create_task(self._rank_pod(new, self.ranks[node]))
            self.ranking.add(task)
            task.add_done_callback(self.ranking.discard)

    async def _follow_pools(self) -> None:
        while True:
            try:
                async for event in self.kube.watch_nodepools():
                    obj = event["object"]
                    if event["type"] == "SYNCED":
                        self.synced.add("nodepools")
                        continue
                    name = _name(obj)
                    if event["type"] == "DELETED":
                        self.pools.pop(name, None)
                        continue
                    self.pool_objs[name] = obj
                    try:
                        pool = NodePool.model_validate(obj)
                        Disruption.of(pool)  # durations and budget schedules parse
                        self.pools[name] = pool
                        if not self._pool_matches_any_type(pool):
                            self.pool_problems[name] = ("NoInstanceTypes", "spec.template.spec.requirements match "
                                                        "no instance type in the catalog")
                        elif self.pool_problems.get(name, ("",))[0] in ("NoInstanceTypes", "InvalidNodePool"):
                            del self.pool_problems[name]  # fixed by this edit (launch failures clear on launch)
                        await self._pool_status(name)
                    except ValidationError as exc:  # a broken NodePool is skipped and said so
                        self.pools.pop(name, None)
                        first = exc.errors()[0]
                        problem = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
                        self.pool_problems[name] = ("InvalidNodePool", problem)
                        await self._event(obj, "InvalidNodePool", f"NodePool {name}: {problem}", warning=True)
                        await self._pool_status(name)
                    except ValueError as exc:
                        self.pools.pop(name, None)
                        self.pool_problems[name] = ("InvalidNodePool", str(exc))
                        await self._event(obj, "InvalidNodePool", f"NodePool {name}: {exc}", warning=True)
                        await self._pool_status(name)
                    self.synced.add("nodepools")
                    self.kick.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("nodepools watch ended: %s", exc)
                await asyncio.sleep(1)

    def _pool_matches_any_type(self, pool: NodePool) -> bool:
        reqs = pool.requirements()
        return any(reqs.first_violation({**it.labels, "karpenter.sh/nodepool": pool.name,
                                         "karpenter.sh/capacity-type": o.capacity_type,
                                         "topology.kubernetes.io/zone": o.zone}) is None
                   for it in self.catalog for o in it.offerings)

    async def _pool_status(self, name: str) -> None:
        """Ready with what surge does not act on in the message (never silently ignored), or
        Ready=False naming why the pool cannot launch (invalid, no type, its node class failing)."""
        obj = self.pool_objs.get(name)
        if obj is None:
            return
        problem = self.pool_problems.get(name)
        self.metrics.nodepool_ready.labels(name).set(0 if problem else 1)
        if problem is not None:
            ready = _cond("Ready", "False", problem[0], self.clock()) | {"message": problem[1]}
        else:
            pool = self.pools.get(name)
            unsupported = pool.unsupported_fields() if pool is not None else []
            ready = _cond("Ready", "True", "Ready", self.clock()) | {
                "message": "not acted on by surge: " + "; ".join(unsupported) if unsupported else ""}
        previous = [c for c in ((obj.get("status") or {}).get("conditions") or []) if c.get("type") == "Ready"]
        if previous and all(previous[0].get(k) == ready[k] for k in ("status", "reason", "message")):
            return  # unchanged: no write (and no watch event back)
        try:
            await self.kube.patch_nodepool_status(_name(obj), {"conditions": [ready]})
        except ApiException as exc:
            log.warning("could not write NodePool %s status: %s", _name(obj), exc)

    # --- provisioning --------------------------------------------------------------------------------
    def _nominated(self) -> set[str]:
        """Pods already provided for: nominated to NodeClaims that are not yet usable, and those
        covered by reservations from the ScaledObject controller."""
        out: set[str] = set()
        for name, claim in self.claims.items():
            if not _condition(claim, "Initialized"):
                out.update(json.loads(((claim.get("metadata") or {}).get("annotations") or {}).get(NOMINATED, "[]")))
                out.update(self.nominated_extra.get(name, {}))
        usable = {name: _condition(claim, "Initialized") for name, claim in self.claims.items()}
        now = self.clock()
        self.reservations = [r for r in self.reservations if reservation_holds(r, usable, now)]
        return out | reserved_pods(self.pods, self.reservations, out)

    async def _provision_loop(self) -> None:
        while True:
            now = self.clock()
            await self.refresh_spot_prices(now)
            if {"pods", "nodes", "nodeclaims", "nodepools"} <= self.synced:
                groups = pending_groups(self.pods.values(), self._nominated())
                pending = {n for g in groups for n in g.names()}
                due = self.batch.observe(now, bool(pending - self.seen_pending), bool(pending))
                self.seen_pending = pending
                if due:
                    try:
                        await self.provision(groups)
                    except Exception:  # one failed batch must not stop provisioning
                        log.exception("provisioning %d pending pod(s) failed", len(pending))
            wait = self.batch.wait_s(self.clock())
            self.kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), wait if wait is not None else self.tick_s)

    async def provision(self, groups: list[PodGroup], protect_until: float | None = None,
                        requests: Mapping[str, Resources] | None = None) -> list[str]:
        """Plan `groups` against the free room of existing nodes and create NodeClaims for the new
        nodes; returns their names. Pods that fit nowhere get a Warning event."""
        now = self.clock()
        usage = self._pool_usage()
        pools = [with_remaining_limits(p, usage.get(p.name, Resources())) for p in self.pools.values()
                 if self._nodeclass_ok(p, now)]
        if not pools:
            log.warning("no usable NodePool for %d pending pods", sum(g.count for g in groups))
            return []
        pools = [await self._within_subnets(p) for p in pools]
        overhead = daemonset_overhead_of(self.pods.values())  # every new node runs the DaemonSets too
        plan = make_plan(groups, pools, self._catalog_now(now),
                         existing_capacity(self.nodes.values(), self.pods.values()) + self._inflight_capacity(),
                         overhead)
        if requests is None:
            requests = {k: pod_requests(self.pods[k]) for g in groups for k in g.names() if k in self.pods}
        for n in plan.nodes:  # pods planned onto an in-flight NodeClaim's room wait for it (nominated)
            if n.existing in self.claims:
                self.nominated_extra.setdefault(n.existing, {}).update(
                    {k: requests.get(k, Resources(pods=1)) for k in n.pods})
        names = [f"{n.nodepool}-{uuid.uuid4().hex[:5]}" for n in plan.new_nodes]
        created: list[str] = []

        async def create(claim: dict[str, Any]) -> None:
            try:
                body = await self.kube.create_nodeclaim(claim)
            except ApiException as exc:
                log.warning("could not create NodeClaim %s: %s", _name(claim), exc)
                return
            self.claims[_name(body)] = body
            created.append(_name(body))
            self._start_launch(body)  # each launches as soon as its NodeClaim exists

        await asyncio.gather(*(create(self._stamped(c)) for c in nodeclaims_for(
            plan, {p.name: p for p in pools}, self.catalog, requests, names, protect_until,
            requirements_by_pod(groups))))
        self.metrics.unprovisionable.set(len(plan.unschedulable))
        for item in plan.unschedulable:
            pod = self.pods.get(item["pod"])
            if pod is not None:
                await self._event(pod, "FailedProvisioning", f"no node can be launched for this pod: {item['reason']}",
                                  warning=True)
        if created:
            log.info("planned %d node(s) for %d pod(s) in %.2f s: %s", len(created), sum(g.count for g in groups),
                     plan.solve_seconds, ", ".join(f"{n.instance_type}/{n.capacity_type}" for n in plan.new_nodes[:10]))
        return created

    def _inflight_capacity(self) -> list[ExistingNode]:
        """Room left on NodeClaims that have no Node yet: what they were launched for is in their
        `spec.resources.requests`; the rest takes new pods instead of another launch (Karpenter's
        scheduler counts in-flight NodeClaims the same way)."""
        by_name = {t.name: t for t in self.catalog}
        out = []
        for name, claim in self.claims.items():
            meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
            if (claim.get("status") or {}).get("nodeName") in self.nodes or meta.get("deletionTimestamp") \
                    or name in self.disrupting:
                continue
            labels = dict(meta.get("labels") or {})
            for r in spec.get("requirements") or []:
                if r.get("operator") == "In" and r.get("values"):
                    labels.setdefault(r["key"], r["values"][0])
            it = by_name.get(labels.get("node.kubernetes.io/instance-type", ""))
            if it is None:
                continue
            requests = (spec.get("resources") or {}).get("requests") or {}
            asked = Resources.from_requests(requests, pods=int(requests.get("pods", 0)))
            extra = self.nominated_extra.get(name, {})
            for key in [k for k in extra if k in self.pods and (self.pods[k].get("spec") or {}).get("nodeName")]:
                del extra[key]  # bound somewhere already: no longer waiting for this claim
            asked = sum(extra.values(), asked)
            a = it.allocatable
            free = Resources(max(0, a.cpu_m - asked.cpu_m), max(0, a.memory_mib - asked.memory_mib),
                             max(0, a.gpu - asked.gpu), max(0, a.pods - asked.pods))
            taints = tuple(Taint(t["key"], t.get("value", ""), t["effect"]) for t in spec.get("taints") or [])
            out.append(ExistingNode(name, {**it.labels, **labels}, free, taints))
        return out

    async def prepare_for(self, namespace: str, kind: str, name: str, adding: int,
                          protect_s: float = PROTECT_S) -> list[str]:
        """Pods and nodes together: the ScaledObject controller is adding `adding` replicas to
        `kind/name`; plan and launch nodes for them now, before they exist, protected from
        consolidation for `protect_s` (the operator passes `engine.follow.ahead_protection_s`: as
        long as its engine holds those replicas at least)."""
        if adding <= 0 or not {"nodes", "nodepools"} <= self.synced:
            return []
        template = await self.kube.pod_template(namespace, kind, name)
        if not template:
            return []
        labels = (template.get("metadata") or {}).get("labels") or {}
        keys = tuple(f"{namespace}/{name}-ahead-{i}" for i in range(adding))
        g = group_from_pod_spec(f"{name}-ahead", adding, template.get("spec") or {}, labels, namespace)
        group = dataclasses.replace(g, pod_names=keys)
        until = self.clock() + protect_s
        claims = await self.provision([group], protect_until=until, requests={k: g.requests for k in keys})
        if claims:
            self.reservations.append(Reservation(namespace, labels, adding, tuple(claims), until))
        return claims

    async def _within_subnets(self, pool: NodePool) -> NodePool:
        """The pool restricted to the zones its EC2NodeClass has subnets in (a plan never picks a
        zone the launch cannot use). Providers without subnets (simulated) leave it unchanged."""
        zones_of = getattr(self.cloud, "zones", None)
        if zones_of is None:
            return pool
        nodeclass = str((pool.spec.template.spec.node_class_ref or {}).get("name", "default"))
        try:
            zones = await zones_of(nodeclass)
        except Exception as exc:  # resolving failed: the launch reports it on the NodePool
            log.debug("zones of EC2NodeClass %s unknown: %s", nodeclass, exc)
            return pool
        if zones is None:
            return pool
        return pool_in_zones(pool, zones)

    async def refresh_spot_prices(self, now: float) -> bool:
        """Spot prices again from the cloud every SPOT_REFRESH_S (all pages); False when not due."""
        fetch = getattr(self.cloud, "spot_prices", None)
        if fetch is None or now < self.spot_refresh_at:
            return False
        self.spot_refresh_at = now + SPOT_REFRESH_S
        try:
            prices = await fetch(sorted({t.name for t in self.catalog}))
        except Exception as exc:  # keep the last prices; try again at the next refresh
            log.warning("spot prices not refreshed: %s", exc)
            return False
        self.catalog = with_spot_prices(self.catalog, prices)
        return True

    def _pool_usage(self) -> dict[str, Resources]:
        """Capacity of every NodeClaim per pool: the launched type, or the planned (first) one."""
        by_name = {t.name: t for t in self.catalog}
        usage: dict[str, Resources] = {}
        for claim in self.claims.values():
            labels = (claim.get("metadata") or {}).get("labels") or {}
            types = next((r.get("values") or [] for r in (claim.get("spec") or {}).get("requirements") or []
                          if r.get("key") == "node.kubernetes.io/instance-type"), [])
            it = by_name.get(labels.get("node.kubernetes.io/instance-type") or (types[0] if types else ""))
            if it is None:
                continue
            pool = labels.get("karpenter.sh/nodepool", "")
            usage[pool] = usage.get(pool, Resources()) + Resources(it.vcpu * 1000, it.memory_mib, it.gpu_count, 0)
        return usage

    def _catalog_now(self, now: float) -> list[InstanceType]:
        return catalog_now(self.catalog, self.unavailable, now)

    async def note_forecast(self, namespace: str, kind: str, name: str, replicas: int, horizon_s: float) -> None:
        """A reliable forecast says `kind/name` needs `replicas` within `horizon_s`: until then,
        consolidation does not remove capacity those pods would need."""
        key = (namespace, kind, name)
        if key not in self.templates:
            template = await self.kube.pod_template(namespace, kind, name)
            if not template:
                return
            labels = (template.get("metadata") or {}).get("labels") or {}
            self.templates[key] = (labels, group_from_pod_spec(name, 1, template.get("spec") or {}, labels).requests)
        self.forecasts[key] = (replicas, self.clock() + horizon_s)

    def _forecast_demand(self, now: float) -> Resources:
        """What forecast replicas beyond the running ones will ask for, summed over workloads."""
        demand = Resources()
        for key, (replicas, until) in list(self.forecasts.items()):
            if now >= until:
                del self.forecasts[key]
                continue
            labels, requests = self.templates[key]
            running = sum(1 for k, p in self.pods.items() if k.startswith(key[0] + "/")
                          and all(((p.get("metadata") or {}).get("labels") or {}).get(a) == b
                                  for a, b in labels.items()))
            if replicas > running:
                demand = demand + requests.times(replicas - running)
        return demand

    def _kept_for_forecast(self, node_names: Sequence[str], now: float) -> bool:
        """Whether removing these nodes would leave less free room than the forecast needs."""
        demand = self._forecast_demand(now)
        if demand == Resources():
            return False
        leaving = self._leaving()
        rest = [n for n in self.nodes.values() if _name(n) not in node_names and _name(n) not in leaving]
        return not covers(total(e.free for e in existing_capacity(rest, self.pods.values())), demand)

    async def _mark_pools(self, nodeclass: str, problem: tuple[str, str] | None) -> None:
        """Launch failures of a node class show on the NodePools that use it, until one succeeds."""
        for name, pool in self.pools.items():
            if str((pool.spec.template.spec.node_class_ref or {}).get("name", "default")) != nodeclass:
                continue
            current = self.pool_problems.get(name)
            if problem is not None and current is None:
                self.pool_problems[name] = problem
            elif problem is None and current is not None and current[0] == "LaunchFailed":
                del self.pool_problems[name]
            else:
                continue
            await self._pool_status(name)

    def _nodeclass_ok(self, pool: NodePool, now: float) -> bool:
        ref = pool.spec.template.spec.node_class_ref or {}
        err = self.nodeclass_errors.get(str(ref.get("name", "default")))
        return err is None or err[0] <= now

    # --- launching -----------------------------------------------------------------------------------
    def _start_launch(self, claim: dict[str, Any]) -> None:
        name = _name(claim)
        if name not in self.launching:
            task = asyncio.create_task(self._launch(claim))
            self.launching[name] = task
            task.add_done_callback(lambda _: self.launching.pop(name, None))

    async def _launch(self, claim: dict[str, Any]) -> None:
        name = _name(claim)
        labels = (claim.get("metadata") or {}).get("labels") or {}
        nodeclass = str(((claim.get("spec") or {}).get("nodeClassRef") or {}).get("name", "default"))
        request = LaunchRequest(name, labels.get("karpenter.sh/nodepool", ""), nodeclass,
                                offerings_for(claim, self.catalog))
        try:
            instance = await launch(self.cloud, request, self.unavailable, self.clock)
        except CapacityError as exc:
            self.metrics.launch_failures.labels(request.nodepool, "InsufficientCapacity").inc()
            await self._event(claim, "InsufficientCapacity", str(exc), warning=True)
            await self._forget_claim(name)  # its pods are planned again, without the exhausted offerings
            return
        except LaunchError as exc:
            self.nodeclass_errors[nodeclass] = (self.clock() + 60.0, str(exc))
            self.metrics.launch_failures.labels(request.nodepool, "LaunchFailed").inc()
            await self._event(claim, "LaunchFailed", str(exc), warning=True)
            await self._mark_pools(nodeclass, ("LaunchFailed", str(exc)))
            await self._forget_claim(name)
            return
        except Exception as exc:  # throttled past retries, network: the lifecycle loop tries again
            self.metrics.launch_failures.labels(request.nodepool, "Error").inc()
            await self._event(claim, "LaunchFailed", f"{type(exc).__name__}: {exc} (will retry)", warning=True)
            return
        self.metrics.launched.labels(request.nodepool, instance.capacity_type).inc()
        await self._mark_pools(nodeclass, None)
        self.launched_at[name] = self.clock()
        it = next((t for t in self.catalog if t.name == instance.instance_type), None)
        capacity = {} if it is None else {"cpu": str(it.vcpu), "memory": f"{it.memory_mib}Mi", "pods": str(it.max_pods),
                                          **({"nvidia.com/gpu": str(it.gpu_count)} if it.gpu_count else {})}
        allocatable = {} if it is None else {"cpu": f"{it.allocatable.cpu_m}m",
                                             "memory": f"{it.allocatable.memory_mib}Mi",
                                             "pods": str(it.allocatable.pods)}
        status = {"providerID": instance.provider_id, "capacity": capacity, "allocatable": allocatable,
                  "conditions": [_cond("Launched", "True", "Launched", self.clock())],
                  **({"imageID": instance.image_id} if instance.image_id else {})}
        try:
            await self.kube.patch_nodeclaim(name, {"metadata": {"labels": {
                "node.kubernetes.io/instance-type": instance.instance_type,
                "karpenter.sh/capacity-type": instance.capacity_type,
                "topology.kubernetes.io/zone": instance.zone}}})
            await self.kube.patch_nodeclaim_status(name, status)
        except ApiException as exc:
            if exc.status == 404:  # deleted meanwhile: the instance is an orphan now
                await self.cloud.terminate([instance.id])
                return
            raise
        claim.setdefault("status", {}).update(status)
        await self._event(claim, "Launched", f"launched {instance.instance_type} ({instance.capacity_type}, "
                                             f"{instance.zone}) as {instance.id}")

    # --- lifecycle -----------------------------------------------------------------------------------
    async def _lifecycle_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            if "nodeclaims" not in self.synced:
                continue
            by_provider = {(n.get("spec") or {}).get("providerID"): n for n in self.nodes.values()}
            now = self.clock()
            for name, claim in list(self.claims.items()):
                if (claim.get("metadata") or {}).get("deletionTimestamp") or name in self.disrupting:
                    continue
                node = by_provider.get((claim.get("status") or {}).get("providerID"))
                created = _ts((claim.get("metadata") or {}).get("creationTimestamp"), now)
                step = claim_step(claim, node, created, self.launched_at.get(name, created), now)
                try:
                    await self._act(name, claim, node, step.action, step.reason)
                except Exception as exc:  # the next tick tries again; the other NodeClaims go on
                    log.warning("NodeClaim %s: %s failed: %s", name, step.action, exc)

    async def _act(self, name: str, claim: dict[str, Any], node: dict[str, Any] | None, action: str,
                   reason: str) -> None:
        now = self.clock()
        if action == "launch":
            self._start_launch(claim)
        elif action == "delete":
            await self._event(claim, "NodeClaimFailed", reason, warning=True)
            await self._terminate_claim(name)
        elif action == "register" and node is not None:
            labels = {**((claim.get("metadata") or {}).get("labels") or {}), "karpenter.sh/nodeclaim": name,
                      "karpenter.sh/registered": "true"}
            taints = [t for t in (node.get("spec") or {}).get("taints") or []
                      if t.get("key") != UNREGISTERED_TAINT["key"]]
            await self.kube.patch_node(_name(node), {"metadata": {"labels": labels}, "spec": {"taints": taints}})
            await self.kube.patch_nodeclaim_status(name, {"nodeName": _name(node), "conditions": _conditions(
                claim, "Registered", now)})
            claim.setdefault("status", {})["conditions"] = _conditions(claim, "Registered", now)
        elif action == "initialize":
            await self.kube.patch_nodeclaim_status(name, {"conditions": _conditions(claim, "Initialized", now)})
            claim.setdefault("status", {})["conditions"] = _conditions(claim, "Initialized", now)

    # --- garbage collection --------------------------------------------------------------------------
    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self.gc_interval_s)
            if "nodeclaims" in self.synced:
                with contextlib.suppress(Exception):
                    await self.collect_garbage()

    async def collect_garbage(self) -> None:
        """Terminate instances whose NodeClaim is gone; delete NodeClaims whose instance is gone."""
        now = self.clock()
        owned = await self.cloud.list_owned()
        stray = orphans(owned, set(self.claims) | set(self.launching), now)
        if stray:
            log.warning("terminating %d instance(s) without a NodeClaim: %s", len(stray), [i.id for i in stray])
            await self.cloud.terminate([i.id for i in stray])
        alive = {i.provider_id for i in owned}
        for name, claim in list(self.claims.items()):
            provider_id = (claim.get("status") or {}).get("providerID")
            if provider_id and provider_id not in alive and now - self.launched_at.get(name, 0.0) > 60.0:
                await self._event(claim, "InstanceGone", f"instance {provider_id} no longer exists", warning=True)
                await self._terminate_claim(name)

    # --- disruption ----------------------------------------------------------------------------------
    def _views(self, now: float) -> list[NodeView]:
        pods_on: dict[str, list[dict[str, Any]]] = {}
        for pod in self.pods.values():
            node = (pod.get("spec") or {}).get("nodeName")
            if node and not owned_by_daemonset(pod) and \
                    (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                pods_on.setdefault(node, []).append(pod)
        views = []
        leaving = self._leaving()
        for name, claim in self.claims.items():
            node_name = (claim.get("status") or {}).get("nodeName")
            if not node_name or node_name not in self.nodes or not _condition(claim, "Initialized"):
                continue
            meta = claim.get("metadata") or {}
            labels = meta.get("labels") or {}
            pods = pods_on.get(node_name, [])
            # consolidateAfter counts from the last pod event on the node, else from its initialization
            changed = self.pods_changed_at.get(node_name, _since(claim, "Initialized", now))
            # pods launched for and not yet bound elsewhere: unbound ones, and those still on a node
            # being drained (a replacement is initialized a moment before its drain starts)
            waiting = [k for k in json.loads((meta.get("annotations") or {}).get(NOMINATED, "[]"))
                       if k in self.pods and (self.pods[k].get("spec") or {}).get("nodeName") in {None, "", *leaving}]
            node_meta = self.nodes[node_name].get("metadata") or {}
            pinned = "true" in ((node_meta.get("annotations") or {}).get(DO_NOT_DISRUPT),
                                (meta.get("annotations") or {}).get(DO_NOT_DISRUPT))
            # a node nominated for pods is no disruption candidate (Karpenter skips nominated nodes)
            dnd = pinned or bool(waiting) or any(_pinned(p) for p in pods)
            protected = (meta.get("annotations") or {}).get(PROTECTED_UNTIL)
            views.append(NodeView(node_name, name, labels.get("karpenter.sh/nodepool", ""), self._price(labels),
                                  len(pods) + len(waiting), None if pods or waiting else changed, dnd,
                                  float(protected) if protected else None,
                                  _ts(meta.get("creationTimestamp"), now),
                                  parse_duration((claim.get("spec") or {}).get("expireAfter"), 720 * 3600.0),
                                  labels.get("karpenter.sh/capacity-type", "on-demand"),
                                  changed,
                                  _ts(drifted_since(claim), now) if drifted_since(claim) is not None else None,
                                  pinned, parse_duration((claim.get("spec") or {}).get("terminationGracePeriod"),
                                                         None)))
        return views

    def _workload_pods(self, node_name: str) -> list[dict[str, Any]]:
        """The pods bound to a node that drains move (DaemonSet pods stay with the node)."""
        return [p for p in self.pods.values()
                if (p.get("spec") or {}).get("nodeName") == node_name and not owned_by_daemonset(p)]

    def _leaving(self) -> set[str | None]:
        """Nodes being drained: not room for anything else."""
        return {(self.claims.get(c, {}).get("status") or {}).get("nodeName") for c in self.disrupting}

    def _price(self, labels: Mapping[str, str]) -> float:
        it = next((t for t in self.catalog if t.name == labels.get("node.kubernetes.io/instance-type")), None)
        if it is None:
            return 0.0
        prices = [o.price for o in it.offerings if o.capacity_type == labels.get("karpenter.sh/capacity-type")
                  and o.zone == labels.get("topology.kubernetes.io/zone")]
        return min(prices) if prices else 0.0

    async def _disruption_loop(self) -> None:
        while True:
            await asyncio.sleep(self.disruption_interval_s)
            if {"pods", "nodes", "nodeclaims", "nodepools"} <= self.synced:
                try:
                    await self.disrupt_once()
                except Exception as exc:  # the next round tries again
                    log.warning("disruption round failed: %s", exc)

    async def disrupt_once(self) -> list[tuple[str, str]]:
        """One round of `provisioner.disruption`'s decisions (the simulator makes the same ones)."""
        now = self.clock()
        await self.mark_drift(now)
        views = self._views(now)
        busy: dict[str, int] = {}
        for name in self.disrupting:
            pool = ((self.claims.get(name, {}).get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool")
            if pool:
                busy[pool] = busy.get(pool, 0) + 1
        policies = {n: Disruption.of(p) for n, p in self.pools.items()}
        candidates = [v for v in views if v.claim not in self.disrupting]
        if now >= self.ranked_at + DELETION_COST_EVERY_S:
            self.ranked_at = now
            await self._rank_pods(candidates)
        actions = disruption_actions(candidates, policies, busy, now, lambda nodes: self._plan_moving(nodes, now),
                                     keep=lambda nodes: self._kept_for_forecast([v.name for v in nodes], now),
                                     spot_to_spot=True, spot_min_saving=SPOT_RESIZE_MIN_SAVING,
                                     repack_min_saving=REPACK_MIN_SAVING if REPACK_ON else None)
        done = []
        for action in actions:
            why = action.reason
            if action.reason == "Underutilized":
                kind = "replace: repack" if action.protect_until is not None else action.kind
                why = f"Underutilized ({kind}, saves ${action.saving_per_hour:.3f}/h)"
            if action.kind == "replace":
                [first, *rest] = action.nodes
                task = asyncio.create_task(self._replace(action, why))
                self._track_disruption(first.claim, task)
                for view in rest:
                    self._track_disruption(view.claim, task)
            else:
                for view in action.nodes:
                    self._start_disruption(view.claim, why)
            done += [(v.name, why) for v in action.nodes]
        return done

    async def _rank_pods(self, views: Sequence[NodeView]) -> None:
        """Write `deletion_costs` onto the ReplicaSet pods of each node (only where it changed)."""
        self.ranks = deletion_costs(views, self.clock())
        for node, cost in self.ranks.items():
            for pod in self._workload_pods(node):
                await self._rank_pod(pod, cost)

    async def _rank_pod(self, pod: Mapping[str, Any], cost: int) -> None:
        meta = pod.get("metadata") or {}
        if not any(o.get("kind") == "ReplicaSet" for o in meta.get("ownerReferences") or []):
            return
        if (meta.get("annotations") or {}).get(DELETION_COST) == str(cost) or meta.get("deletionTimestamp"):
            return
        try:
            await self.kube.patch_pod(meta.get("namespace", ""), meta.get("name", ""),
                                      {"metadata": {"annotations": {DELETION_COST: str(cost)}}})
        except ApiException as exc:  # a hint only: scale-down still works without it
            log.info("could not rank pod %s: %s", pod_key(pod), exc)

    def _nodeclass_of(self, pool: NodePool) -> EC2NodeClass | None:
        obj = self.nodeclasses.get(str((pool.spec.template.spec.node_class_ref or {}).get("name", "default")))
        try:
            return EC2NodeClass.model_validate(obj) if obj is not None else None
        except ValidationError:
            return None

    def _stamped(self, claim: dict[str, Any]) -> dict[str, Any]:
        """A new NodeClaim with the hashes of the NodePool and EC2NodeClass it is made from."""
        pool = self.pools.get(((claim.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool", ""))
        if pool is not None:
            claim["metadata"]["annotations"] = {**claim["metadata"].get("annotations", {}),
                                                **stamps(pool, self._nodeclass_of(pool))}
        return claim

    async def mark_drift(self, now: float) -> None:
        """Set or clear the Drifted condition of every launched NodeClaim (`provisioner.drift`'s
        rules, then the cloud provider's), and re-stamp claims carrying another hash version."""
        by_name = {t.name: t for t in self.catalog}
        for name, claim in list(self.claims.items()):
            meta = claim.get("metadata") or {}
            pool = self.pools.get((meta.get("labels") or {}).get("karpenter.sh/nodepool", ""))
            if pool is None or meta.get("deletionTimestamp") or name in self.disrupting:
                continue
            reason = None
            if launched(claim):
                it = by_name.get((meta.get("labels") or {}).get("node.kubernetes.io/instance-type", ""))
                reason = nodepool_drift(claim, pool, it.labels if it is not None else {})
                check = getattr(self.cloud, "is_drifted", None)
                if reason is None and check is not None:
                    try:
                        reason = await check(claim)
                    except Exception as exc:  # no verdict this round; the next one asks again
                        log.warning("drift check of NodeClaim %s failed: %s", name, exc)
                        continue
            try:
                fresh = restamp(meta.get("annotations") or {}, pool, self._nodeclass_of(pool)) if reason is None else {}
                if fresh:
                    await self.kube.patch_nodeclaim(name, {"metadata": {"annotations": fresh}})
                    meta.setdefault("annotations", {}).update(fresh)
                conditions = drift_conditions(claim, reason, _iso(now))
                if conditions is not None:
                    await self.kube.patch_nodeclaim_status(name, {"conditions": conditions})
                    claim.setdefault("status", {})["conditions"] = conditions
                    if reason is not None:
                        await self._event(claim, "Drifted", f"NodeClaim {name} drifted: {reason}")
            except ApiException as exc:
                log.warning("could not record drift of NodeClaim %s: %s", name, exc)

    def _plan_moving(self, views: Sequence[NodeView], now: float) -> Plan | None:
        """Where the nodes' pods would go: the free room of the other nodes, then new nodes."""
        names = {v.name for v in views}
        pods = [p for n in names for p in self._workload_pods(n)]
        if not pods:
            return Plan([], 0.0, 0.0)
        leaving = self._leaving()
        others = [n for n in self.nodes.values() if _name(n) not in names and _name(n) not in leaving]
        pools = [self.pools[v.nodepool] for v in views if v.nodepool in self.pools]
        if not pools:
            return None
        unique = list({p.name: p for p in pools}.values())
        return make_plan(groups_of(pods), unique, self._catalog_now(now), existing_capacity(others, self.pods.values()))

    async def _replace(self, action: Action, why: str) -> None:
        """Launch the replacements first; drain the old nodes only once every one is initialized."""
        assert action.replacement is not None
        pools = {n.nodepool: self.pools[n.nodepool] for n in action.replacement.new_nodes}
        names = [f"{n.nodepool}-{uuid.uuid4().hex[:5]}" for n in action.replacement.new_nodes]
        # a repack's node is sized for pods of nodes it does not replace yet: every planned pod counts
        planned = {k for n in action.replacement.new_nodes for k in n.pods}
        pods = [p for v in action.nodes for p in self._workload_pods(v.name)]
        pods += [p for k, p in self.pods.items() if k in planned]
        requests = {pod_key(p): pod_requests(p) for p in pods}
        # taint the old nodes first, as Karpenter does before it pre-spins replacements
        # (https://karpenter.sh/docs/concepts/disruption/#disruption-controller): a pod bound there
        # while the replacement boots would only be moved again by the drain
        for v in action.nodes:
            await self._cordon(v.name, True)
        try:
            for claim in nodeclaims_for(action.replacement, pools, self.catalog, requests, names,
                                        protect_until=action.protect_until):
                body = await self.kube.create_nodeclaim(self._stamped(claim))
                self.claims[_name(body)] = body
                self._start_launch(body)
            deadline = self.clock() + REGISTRATION_TIMEOUT_S
            while self.clock() < deadline:
                if any(name not in self.claims for name in names):
                    break  # a replacement failed: keep the old nodes
                if all(_condition(self.claims[name], "Initialized") for name in names):
                    await asyncio.gather(*(self._drain_and_delete(v.claim, why) for v in action.nodes))
                    return
                await asyncio.sleep(self.tick_s)
        except ApiException as exc:
            log.warning("replacing %s failed: %s", [v.name for v in action.nodes], exc)
        for v in action.nodes:  # no replacement: the old nodes take pods again (Karpenter un-taints them)
            await self._cordon(v.name, False)

    async def _cordon(self, node_name: str, on: bool) -> None:
        """Add (`on`) or remove the disruption taint (`karpenter.sh/disrupted:NoSchedule`) on a
        node; `unschedulable` is the drain's, a user's cordon is kept. A node gone or a failed write
        is left as it is (the drain or the next round deals with it)."""
        node = self.nodes.get(node_name)
        if node is None:
            return
        try:
            await self.kube.patch_node(node_name, {"spec": {"taints": _disrupted_taint(node, on)}})
        except ApiException as exc:
            log.warning("could not %s node %s: %s", "taint" if on else "un-taint", node_name, exc)

    async def _drain_and_delete(self, claim_name: str, why: str) -> None:
        """Cordon (taint), evict every pod through the Eviction API (PDBs decide the pace), then
        terminate the instance and delete the Node and the NodeClaim."""
        claim = self.claims.get(claim_name) or {}
        node_name = (claim.get("status") or {}).get("nodeName")
        await self._event(claim, "DisruptionTerminating", f"{why}: draining and removing node {node_name}")
        pool = ((claim.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool", "")
        self.metrics.disrupted.labels(pool, why.split(" ")[0]).inc()
        if node_name and node_name in self.nodes:
            node = self.nodes[node_name]
            await self.kube.patch_node(node_name, {"spec": {"unschedulable": True,
                                                            "taints": _disrupted_taint(node, True)}})
            grace = parse_duration((claim.get("spec") or {}).get("terminationGracePeriod"), None)
            started = self.clock()  # terminationGracePeriod counts from the drain's start, handover included
            if hands_over(why):
                await self._hand_over(claim, node_name)
            # do-not-disrupt pods are not evicted but waited for (until terminationGracePeriod), as
            # Karpenter's drain does; a reclaimed spot instance will not wait, so neither does its drain
            hold = not why.startswith("SpotInterruption")
            while True:
                left = self._workload_pods(node_name)
                if not left:
                    break
                overdue = grace is not None and self.clock() - started >= grace
                for pod in left:
                    meta = pod.get("metadata") or {}
                    if overdue:  # terminationGracePeriod is up: budgets no longer hold the node
                        await self.kube.delete_pod(meta.get("namespace", ""), meta.get("name", ""))
                        self.pods.pop(pod_key(pod), None)
                    elif hold and _pinned(pod):
                        continue
                    elif await self.kube.evict(meta.get("namespace", ""), meta.get("name", "")):
                        self.pods.pop(pod_key(pod), None)
                await asyncio.sleep(self.tick_s)
        await self._terminate_claim(claim_name)

    # --- make before break ---------------------------------------------------------------------------
    async def _hand_over(self, claim: Mapping[str, Any], node_name: str) -> None:
        """Before the drain evicts anything: each Deployment with pods on the node gets as many
        extra replicas (recorded in its `surge.sh/handover` annotation, so the operator writes
        desired + extra meanwhile), the node's pods get the lowest pod-deletion-cost; once Ready
        pods elsewhere cover them (`handover_done`) the extras are taken back, which deletes the
        node's pods. A Deployment whose write fails keeps today's drain: its pods are evicted."""
        running: list[Handover] = []
        ended: dict[Workload, int] = {}  # → the replicas the end wrote
        for (ns, kind, name), extra in handover_extra(self._workload_pods(node_name)).items():
            await self._mark_pods(node_name, (ns, kind, name), HANDOVER_DELETION_COST + 1)
            ready = self._ready_pods((ns, kind, name), node_name)
            if await self._handover_write(claim, (ns, kind, name), node_name, extra) is not None:
                running.append(Handover(node_name, (ns, kind, name), extra, self.clock(), ready))
        while running:
            await asyncio.sleep(self.tick_s)
            for h in list(running):
                ns, _, name = h.workload
                try:
                    dep = await self.kube.read_deployment(ns, name)
                except ApiException as exc:  # gone: nothing to take back; its pods are evicted below
                    log.info("handover of %s/%s: %s", ns, name, exc.reason or exc.status)
                    running.remove(h)
                    continue
                meta, spec = dep.get("metadata") or {}, dep.get("spec") or {}
                wanted = int(spec.get("replicas") or 0) - live_extras(parse_handover(
                    (meta.get("annotations") or {}).get(HANDOVER)), self.clock())
                if handover_done(h, self._ready_pods(h.workload, node_name), self.clock(), max(0, wanted),
                                 self._starting_pods(h.workload, node_name)):
                    running.remove(h)
                    # lowest of all now, below other nodes still handing over: theirs stay
                    await self._mark_pods(node_name, h.workload, HANDOVER_DELETION_COST)
                    replicas = await self._handover_write(claim, h.workload, node_name, 0)
                    if replicas is not None:
                        ended[h.workload] = replicas
        # the ReplicaSet controller deletes the node's pods (lowest cost) on its own; evicting them
        # while it still has more pods than replicas could make it delete a pod elsewhere instead.
        # Done once it has as many as the end wrote, or once none is left on the node: a later
        # write (another node's handover starting, the operator scaling up) may raise the count
        # for good, and an empty node must not be billed for HANDOVER_SETTLE_S meanwhile
        for _ in range(math.ceil(HANDOVER_SETTLE_S / self.tick_s)):
            counts = {w: sum(1 for p in self.pods.values() if workload_of(p) == w) for w in ended}
            on_node = {workload_of(p) for p in self._workload_pods(node_name)}
            if all(counts[w] <= r or w not in on_node for w, r in ended.items()):
                break
            await asyncio.sleep(self.tick_s)

    async def _mark_pods(self, node_name: str, workload: Workload, cost: int) -> None:
        """The pod-deletion-cost of the workload's pods on the node (a hint: the timeout evicts)."""
        for pod in self._workload_pods(node_name):
            if workload_of(pod) == workload:
                meta = pod.get("metadata") or {}
                with contextlib.suppress(ApiException):
                    await self.kube.patch_pod(workload[0], meta.get("name", ""),
                                              {"metadata": {"annotations": {DELETION_COST: str(cost)}}})

    def _ready_pods(self, workload: Workload, off_node: str) -> int:
        """Ready pods of the Deployment on nodes that are not being drained, from the pod cache
        (pods on another node handing over are leaving too: they cover nothing)."""
        leaving = self._leaving() | {off_node, None}
        return sum(1 for p in self.pods.values() if (p.get("spec") or {}).get("nodeName") not in leaving
                   and _condition(p, "Ready") and workload_of(p) == workload)

    def _starting_pods(self, workload: Workload, off_node: str) -> int:
        """Pods of the Deployment not Ready yet and not on a node being drained: unbound (Pending)
        ones and those starting on other nodes — the ReplicaSet deletes these first on a scale-down."""
        leaving = self._leaving() | {off_node}
        return sum(1 for p in self.pods.values() if (p.get("spec") or {}).get("nodeName") not in leaving
                   and not _condition(p, "Ready") and workload_of(p) == workload)

    async def _handover_write(self, claim: Mapping[str, Any], workload: Workload, node_name: str,
                              extra: int) -> int | None:
        """Start (`extra` > 0) or end (0) the node's handover for one Deployment: replicas and the
        annotation in one patch, guarded by resourceVersion (retried when the operator wrote
        meanwhile). Returns the replicas written; None, with a Warning event, when it cannot be."""
        ns, _, name = workload
        for _ in range(5):
            try:
                dep = await self.kube.read_deployment(ns, name)
                meta, spec = dep.get("metadata") or {}, dep.get("spec") or {}
                entries = parse_handover((meta.get("annotations") or {}).get(HANDOVER))
                replicas = int(spec.get("replicas") or 0)
                if extra > 0:
                    replicas += extra - entries.get(node_name, (0, 0.0))[0]
                    entries[node_name] = (extra, self.clock() + HANDOVER_TIMEOUT_S + HANDOVER_GRACE_S)
                elif node_name in entries:
                    replicas = max(0, replicas - entries.pop(node_name)[0])
                else:
                    return replicas  # already taken back (or never recorded): nothing to undo
                await self.kube.patch_deployment(ns, name, {
                    "metadata": {"resourceVersion": meta.get("resourceVersion"),
                                 "annotations": {HANDOVER: dump_handover(entries)}},
                    "spec": {"replicas": replicas}})
                return replicas
            except ApiException as exc:
                if exc.status == 409:
                    continue  # the operator scaled it meanwhile: read again
                problem = f"{exc.status} {exc.reason or ''}".strip()
                break
        else:
            problem = "kept conflicting"
        action = "start" if extra > 0 else "end"
        await self._event(claim, "HandoverFailed", f"could not {action} the handover of Deployment {ns}/{name} "
                                                   f"on node {node_name} ({problem}): its pods are evicted instead",
                          warning=True)
        return None

    # --- interruptions -------------------------------------------------------------------------------
    async def _interruption_loop(self) -> None:
        assert self.interruptions is not None
        while True:
            try:
                events: list[Interruption] = await self.interruptions()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading the interruption queue failed: %s", exc)
                await asyncio.sleep(5)
                continue
            for event in events:
                await self.handle_interruption(event)
            if not events:
                await asyncio.sleep(self.tick_s)

    async def handle_interruption(self, event: Interruption) -> str | None:
        """A spot warning or rebalance recommendation: launch the replacement first, then drain.
        The instance stopping or terminating: remove its node and NodeClaim now."""
        suffix = "/" + event.instance_id
        claim_name = next((n for n, c in self.claims.items()
                           if str((c.get("status") or {}).get("providerID", "")).endswith(suffix)), None)
        if claim_name is None or claim_name in self.disrupting:
            return None
        claim = self.claims[claim_name]
        if event.kind == "state-change":
            await self._event(claim, "InstanceTerminating", f"{event.instance_id} is {event.detail}", warning=True)
            await self._terminate_claim(claim_name)
            return None
        labels = (claim.get("metadata") or {}).get("labels") or {}
        lost = Offering(labels.get("node.kubernetes.io/instance-type", ""),
                        labels.get("karpenter.sh/capacity-type", ""),
                        labels.get("topology.kubernetes.io/zone", ""), 0.0)
        self.unavailable.mark(lost, self.clock())  # spot pools reclaimed now are a poor choice for a while
        node_name = (claim.get("status") or {}).get("nodeName")
        moving = [k for k, p in self.pods.items() if node_name and (p.get("spec") or {}).get("nodeName") == node_name]
        old = (claim.get("metadata") or {}).get("annotations") or {}
        stamped = {k: v for k, v in old.items() if k in STAMPS}  # made from the same template as the old one
        replacement = {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
                       "metadata": {"name": f"{labels.get('karpenter.sh/nodepool', 'np')}-{uuid.uuid4().hex[:5]}",
                                    "labels": {k: v for k, v in labels.items() if k == "karpenter.sh/nodepool"},
                                    "annotations": {NOMINATED: json.dumps(moving), **stamped}},
                       "spec": claim.get("spec") or {}}
        body = await self.kube.create_nodeclaim(replacement)
        self.claims[_name(body)] = body
        await self._event(claim, "SpotInterrupted", f"{event.kind} for {event.instance_id}: replacement "
                                                    f"{_name(body)} launching before the drain", warning=True)
        self._start_launch(body)
        self._track_disruption(claim_name, asyncio.create_task(
            self._drain_when_replaced(claim_name, _name(body), self.clock())))
        return _name(body)

    async def _drain_when_replaced(self, claim_name: str, replacement: str, noticed_at: float) -> None:
        """Drain the interrupted node once its replacement is initialized, or by `drain_at`'s deadline."""
        while True:
            now = self.clock()
            ready = _condition(self.claims.get(replacement, {}), "Initialized")
            if now >= drain_at(noticed_at, now if ready else None):
                break
            await asyncio.sleep(self.tick_s)
        await self._drain_and_delete(claim_name, "SpotInterruption")

    def _start_disruption(self, claim: str, why: str) -> None:
        self._track_disruption(claim, asyncio.create_task(self._drain_and_delete(claim, why)))

    def _track_disruption(self, claim: str, task: asyncio.Task[None]) -> None:
        self.disrupting[claim] = task
        task.add_done_callback(lambda _: self.disrupting.pop(claim, None))

    # --- helpers -------------------------------------------------------------------------------------
    async def _terminate_claim(self, name: str) -> None:
        claim = self.claims.get(name) or {}
        provider_id = str((claim.get("status") or {}).get("providerID") or "")
        instance_id = provider_id.rsplit("/", 1)[-1] if provider_id else None
        if instance_id is None:
            found: Instance | None = await self.cloud.find(name)
            instance_id = found.id if found else None
        if instance_id:
            await self.cloud.terminate([instance_id])
        node_name = (claim.get("status") or {}).get("nodeName")
        if node_name:
            await self.kube.delete_node(node_name)
            self.nodes.pop(node_name, None)
            self.pods_changed_at.pop(node_name, None)
        await self._forget_claim(name)

    async def _forget_claim(self, name: str) -> None:
        self.seen_pending = set()  # its nominated pods are pending again: plan them in the next batch
        await self.kube.delete_nodeclaim(name)
        self.claims.pop(name, None)
        self.nominated_extra.pop(name, None)
        self.launched_at.pop(name, None)

    async def _event(self, obj: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
        log.log(logging.WARNING if warning else logging.INFO, "%s %s: %s", reason, _name(obj), message)
        try:
            await self.kube.event(dict(obj), reason, message, warning)
        except (ApiException, ValueError) as exc:  # an event is a courtesy: never the reason a loop stops
            log.warning("could not record event %s: %s", reason, exc)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _pinned(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(DO_NOT_DISRUPT) == "true"


def _disrupted_taint(node: Mapping[str, Any], on: bool) -> list[dict[str, Any]]:
    """The node's taints with the disruption taint added once (`on`) or removed; others kept."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != DISRUPTED_TAINT["key"]]
    return [*taints, DISRUPTED_TAINT] if on else taints


def _condition(obj: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _since(obj: Mapping[str, Any], kind: str, default: float) -> float:
    """When the condition last turned True (default: unknown)."""
    return next((_ts(c.get("lastTransitionTime"), default) for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == kind and c.get("status") == "True"), default)


def _cond(kind: str, status: str, reason: str, now: float) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": _iso(now)}


def _conditions(claim: Mapping[str, Any], kind: str, now: float) -> list[dict[str, str]]:
    keep = [c for c in (claim.get("status") or {}).get("conditions") or [] if c.get("type") != kind]
    return [*keep, _cond(kind, "True", kind, now)]
