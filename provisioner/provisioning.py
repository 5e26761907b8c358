"""The provisioning controller's decisions, without I/O or a clock: which pods wait for capacity,
when a batch is ready, what NodeClaims a plan becomes, which offerings a NodeClaim may launch on,
how far a NodeClaim's life has got, and which nodes may go.

Names and defaults are Karpenter's (karpenter.sh/v1): NodeClaim conditions Launched, Registered,
Initialized; the `karpenter.sh/unregistered` taint; launch timeout 5 min, registration 15 min;
batching 1 s idle / 10 s max; `karpenter.sh/do-not-disrupt`; consolidateAfter; budgets (10 %).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.catalog import InstanceType
from provisioner.cloud.base import Offering
from provisioner.nodepool import NodePool, RequirementSpec
from provisioner.plan import Plan, PlannedNode, make_plan
from provisioner.pods import PodGroup, PodSpecError, group_from_pod_spec, shape_key
from provisioner.problem import ExistingNode
from provisioner.requirements import WELL_KNOWN, Requirements, Taint
from provisioner.resources import Resources

UNREGISTERED_TAINT = {"key": "karpenter.sh/unregistered", "effect": "NoExecute"}
DISRUPTED_TAINT = {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
NOMINATED = "surge.sh/nominated-pods"  # annotation: the pods a NodeClaim was launched for
PROTECTED_UNTIL = "surge.sh/protected-until"  # annotation: capacity launched ahead of pods is kept
LAUNCH_TIMEOUT_S = 300.0
REGISTRATION_TIMEOUT_S = 900.0
BATCH_IDLE_S, BATCH_MAX_S = 1.0, 10.0
RETRY_UNSCHEDULABLE_S = 30.0  # pods no node could be planned for are planned again this often
MAX_INSTANCE_TYPES = 60
DISRUPTION_REASONS = ("Underutilized", "Empty", "Drifted")  # what a budget's `reasons` may name


@dataclass
class BatchWindow:
    """Karpenter's batching: a batch closes after 1 s without new pending pods, or 10 s after it opened."""

    idle_s: float = BATCH_IDLE_S
    max_s: float = BATCH_MAX_S
    opened: float | None = None
    last: float | None = None
    retry_at: float = math.inf

    def add(self, now: float) -> None:
        if self.opened is None:
            self.opened = now
        self.last = now

    def due(self, now: float) -> bool:
        if self.opened is None or self.last is None:
            return False
        return now - self.last >= self.idle_s or now - self.opened >= self.max_s

    def wait_s(self, now: float) -> float | None:
        if self.opened is None or self.last is None:
            return None
        return max(0.0, min(self.last + self.idle_s, self.opened + self.max_s) - now)

    def reset(self) -> None:
        self.opened = self.last = None

    def observe(self, now: float, new_pending: bool, pending: bool, seen_at: float | None = None) -> bool:
        """One look at the pending pods: new ones (seen at `seen_at`, default now) extend the
        batch; pods nothing could be launched for are tried again `RETRY_UNSCHEDULABLE_S` after
        the last batch. True when the batch is due: plan it now."""
        if new_pending:
            self.add(now if seen_at is None else seen_at)
        elif pending and now >= self.retry_at:
            self.add(now)
            self.retry_at = math.inf
        if not pending:
            self.reset()
            return False
        if not self.due(now):
            return False
        self.reset()
        self.retry_at = now + RETRY_UNSCHEDULABLE_S
        return True


@dataclass
class Reservation:
    """Pods the ScaledObject controller is adding (`prepare_for`), for which `claims` are already
    on their way: up to `count` of the workload's unbound pods are nominated to them."""

    namespace: str
    labels: Mapping[str, str]
    count: int
    claims: tuple[str, ...]
    until: float


def reservation_holds(r: Reservation, usable: Mapping[str, bool], now: float) -> bool:
    """Whether a reservation still stands: Karpenter does not plan a pod nominated to an in-flight
    NodeClaim again until the pod binds or the claim fails. It holds while one of its claims
    exists and is not yet usable (`usable[name]`: Initialized; a missing name: failed or
    deleted), at most until `r.until` (PROTECT_S after it was made)."""
    return now < r.until and any(name in usable and not usable[name] for name in r.claims)


def reserved_pods(pods: Mapping[str, Mapping[str, Any]], reservations: Sequence[Reservation],
                  taken: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    """The pods the standing reservations cover: for each, up to `count` of the matching pods
    that are still unbound (a bound pod waits for nothing), oldest first, each pod once and none
    already in `taken` (nominated to a NodeClaim)."""
    unbound = sorted((k for k, p in pods.items() if k not in taken and _waiting(p)),
                     key=lambda k: (str((pods[k].get("metadata") or {}).get("creationTimestamp") or ""), k))
    out: set[str] = set()
    for r in reservations:
        matching = [k for k in unbound if k not in out and k.startswith(r.namespace + "/")
                    and all(((pods[k].get("metadata") or {}).get("labels") or {}).get(a) == b
                            for a, b in r.labels.items())]
        out.update(matching[:r.count])
    return out


def _waiting(pod: Mapping[str, Any]) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return not (pod.get("spec") or {}).get("nodeName") and not meta.get("deletionTimestamp") \
        and status.get("phase") in (None, "Pending")


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def owned_by_daemonset(pod: Mapping[str, Any]) -> bool:
    """DaemonSet pods come with every node: they neither need capacity nor keep a node busy."""
    return any(o.get("kind") == "DaemonSet" for o in (pod.get("metadata") or {}).get("ownerReferences") or [])


def is_provisionable(pod: Mapping[str, Any]) -> bool:
    """Pending because nothing fits (PodScheduled=False, Unschedulable), not a DaemonSet's pod,
    not bound, not being deleted."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("nodeName") or meta.get("deletionTimestamp") or status.get("phase") not in (None, "Pending"):
        return False
    if owned_by_daemonset(pod):
        return False
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
               for c in status.get("conditions") or [])


def pod_event(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, now: float) -> tuple[str, float] | None:
    """The node whose pods a pod's watch event changed, and when — Karpenter's
    `nodeclaim.podevents` controller, which sets a NodeClaim's `lastPodEventTime`
    (consolidateAfter counts from it): a pod bound to the node counts from its PodScheduled
    transition (so a restart's initial list does not reset the clock), a pod going terminal,
    terminating or away counts now. DaemonSet pods do not count."""
    def node_of(pod: Mapping[str, Any] | None) -> str | None:
        if pod is None or owned_by_daemonset(pod):
            return None
        return (pod.get("spec") or {}).get("nodeName") or None

    def leaving(pod: Mapping[str, Any] | None) -> bool:
        return pod is None or bool((pod.get("metadata") or {}).get("deletionTimestamp")) \
            or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    before, after = node_of(old), node_of(new)
    if after is not None and not leaving(new) and (before != after or leaving(old)):
        conditions = ((new or {}).get("status") or {}).get("conditions") or []
        scheduled = next((c.get("lastTransitionTime") for c in conditions if isinstance(c, dict)
                          and c.get("type") == "PodScheduled" and c.get("status") == "True"), None)
        return after, _timestamp(scheduled, now)
    if before is not None and not leaving(old) and (leaving(new) or after != before):
        return before, now
    return None


def _timestamp(text: Any, default: float) -> float:
    if not text:
        return default
    from datetime import UTC, datetime

    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return default


def pending_groups(pods: Iterable[Mapping[str, Any]], exclude: set[str] = frozenset()) -> list[PodGroup]:  # type: ignore[assignment]
    """Provisionable pods grouped by identical scheduling needs (one group per distinct spec)."""
    return groups_of(p for p in pods if pod_key(p) not in exclude and is_provisionable(p))


def groups_of(pods: Iterable[Mapping[str, Any]]) -> list[PodGroup]:
    """Pods grouped by identical scheduling needs, named by their namespace/name keys."""
    by_shape: dict[str, tuple[Mapping[str, Any], Mapping[str, str], str, list[str]]] = {}
    for pod in pods:
        key = pod_key(pod)
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        namespace = str(meta.get("namespace") or "default")
        shape = shape_key(namespace, spec, labels)
        by_shape.setdefault(shape, (spec, labels, namespace, []))[3].append(key)
    groups = []
    for shape, (spec, labels, namespace, names) in by_shape.items():
        try:
            g = group_from_pod_spec(f"pods-{shape[:8]}", len(names), spec, labels, namespace)
        except PodSpecError:
            continue  # a pod Kubernetes admitted but surge cannot read stays pending (the controller reports it)
        groups.append(dataclasses.replace(g, pod_names=tuple(names)))
    return groups


def requirements_by_pod(groups: Iterable[PodGroup]) -> dict[str, tuple[Requirements, ...]]:
    """Each pod's node requirements (its group's OR-ed terms), by pod key, for `nodeclaims_for`."""
    return {name: g.requirements for g in groups for name in g.names()}


def daemonset_overhead_of(pods: Iterable[Mapping[str, Any]]) -> Resources:
    """What DaemonSets add to every new node, from the DaemonSet pods running now: one pod's
    requests per DaemonSet (by owner uid). DaemonSets without a running pod yet are not counted."""
    per_owner: dict[str, Resources] = {}
    for pod in pods:
        for o in (pod.get("metadata") or {}).get("ownerReferences") or []:
            if o.get("kind") == "DaemonSet":
                key = str(o.get("uid") or o.get("name"))
                if key not in per_owner:
                    try:
                        per_owner[key] = pod_requests(pod)
                    except PodSpecError:
                        continue
    return sum(per_owner.values(), Resources())


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    return group_from_pod_spec("p", 1, pod.get("spec") or {}, {}).requests


def existing_capacity(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> list[ExistingNode]:
    """Free room on Ready, schedulable nodes: allocatable minus the requests of pods bound there,
    every resource (extended ones too). A pod or node whose quantities do not parse is skipped
    (the API server admitted it; it must not stop planning)."""
    used: dict[str, Resources] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            try:
                used[node] = used.get(node, Resources()) + pod_requests(pod)
            except PodSpecError:
                continue
    out = []
    for node in nodes:
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        if spec.get("unschedulable"):
            continue
        raw = (node.get("status") or {}).get("allocatable") or {}
        try:
            alloc = Resources.from_requests(raw, pods=int(str(raw.get("pods", 110))))
        except ValueError:
            continue
        left = (alloc - used.get(meta.get("name", ""), Resources())).amounts()
        free = Resources.from_amounts({k: max(0, v) for k, v in left.items()}, max(0, left["pods"]))
        taints = tuple(Taint(t["key"], t.get("value", ""), t["effect"]) for t in spec.get("taints") or []
                       if t["key"] != UNREGISTERED_TAINT["key"])
        out.append(ExistingNode(meta.get("name", ""), meta.get("labels") or {}, free, taints))
    return out


def _fits(it: InstanceType, need: Resources) -> bool:
    return need.fits_in(it.allocatable)


def _allowed_types(reqs: Requirements, pool: NodePool, capacity_types: Sequence[str], zone: str,
                   catalog: Sequence[InstanceType]) -> list[tuple[float, InstanceType]]:
    """Types `reqs` (NodePool ∩ the node's pods) allow in this zone, with their cheapest offering
    among the capacity types, cheapest first (ties by name)."""
    allowed = []
    for it in catalog:
        prices = [o.price for o in it.offerings if o.capacity_type in capacity_types and o.zone == zone and o.available]
        if not prices:
            continue
        labels = {**it.labels, **pool.spec.template.metadata.labels, "karpenter.sh/nodepool": pool.name,
                  "topology.kubernetes.io/zone": zone}
        # keys the type's labels define (custom NodePool keys become node labels, not type filters)
        checked = (k for k in reqs.by_key if k != CAPACITY_TYPE and (k in labels or k in WELL_KNOWN))
        if any(not reqs.by_key[k].allows(labels.get(k)) for k in checked):
            continue
        allowed.append((min(prices), it))
    return sorted(allowed, key=lambda pair: (pair[0], pair[1].name))


def flexible_types(node: PlannedNode, need: Resources, allowed: Sequence[tuple[float, InstanceType]],
                   min_values: Sequence[tuple[str, int]] = ()) -> list[str]:
    """The planned type first, then every allowed type that also holds the node's pods, cheapest
    first, at most 60 (CreateFleet's override limit) — as Karpenter orders a NodeClaim's options:
    by price, truncated, but never below a NodePool `minValues` (types that add a missing value of
    a minValues key are kept ahead of the truncation)."""
    fitting = [it for _, it in allowed if it.name != node.instance_type and _fits(it, need)]
    names = [node.instance_type, *[it.name for it in fitting]]
    if len(names) <= MAX_INSTANCE_TYPES:
        return names
    chosen = names[:MAX_INSTANCE_TYPES]
    by_name = {it.name: it for _, it in allowed}
    for key, n in min_values:
        def value(t: str, key: str = key) -> str | None:
            return by_name[t].labels.get(key) if t in by_name else None

        have = {value(t) for t in chosen}
        for it in fitting:
            if len(have) >= n:
                break
            v = it.labels.get(key)
            if v in have or it.name in chosen:
                continue
            # drop the most expensive option whose value another option already covers
            for i in range(len(chosen) - 1, 0, -1):
                if sum(1 for t in chosen if value(t) == value(chosen[i])) > 1:
                    chosen[i] = it.name
                    have.add(v)
                    break
    rank = {t: i for i, t in enumerate(names)}
    return [chosen[0], *sorted(chosen[1:], key=rank.__getitem__)]


CAPACITY_TYPE = "karpenter.sh/capacity-type"
PINNED = ("node.kubernetes.io/instance-type", CAPACITY_TYPE, "topology.kubernetes.io/zone")


def _node_requirements(pool: NodePool, pod_reqs: Iterable[tuple[Requirements, ...]],
                       labels: Mapping[str, str]) -> Requirements:
    """NodePool ∩ every pod's requirements (of a pod's OR-ed terms, the first the planned node meets)."""
    merged = pool.requirements()
    for terms in pod_reqs:
        term = next((t for t in terms if t.first_violation(labels) is None), terms[0] if terms else Requirements())
        merged = merged.intersect(term)
    return merged


def _as_terms(reqs: Requirements, skip: Iterable[str]) -> list[dict[str, Any]]:
    """Requirements back as NodeSelectorRequirements (In / NotIn / Exists / DoesNotExist / Gt / Lt)."""
    out: list[dict[str, Any]] = []
    for key, vs in sorted(reqs.by_key.items()):
        if key in skip or key == "karpenter.sh/nodepool":
            continue
        if vs.include is not None:
            out.append({"key": key, "operator": "In", "values": sorted(v for v in vs.include if vs.allows(v))})
        elif vs.must_not_exist:
            out.append({"key": key, "operator": "DoesNotExist"})
        else:
            if vs.exclude:
                out.append({"key": key, "operator": "NotIn", "values": sorted(vs.exclude)})
            if vs.gt is not None:
                out.append({"key": key, "operator": "Gt", "values": [f"{vs.gt:g}"]})
            if vs.lt is not None:
                out.append({"key": key, "operator": "Lt", "values": [f"{vs.lt:g}"]})
            if vs.must_exist and not vs.exclude and vs.gt is None and vs.lt is None:
                out.append({"key": key, "operator": "Exists"})
    return out


def nodeclaims_for(plan: Plan, pools: Mapping[str, NodePool], catalog: Sequence[InstanceType],
                   requests_of: Mapping[str, Resources], names: Iterable[str],
                   protect_until: float | None = None,
                   requirements_of: Mapping[str, tuple[Requirements, ...]] | None = None) -> list[dict[str, Any]]:
    """One NodeClaim manifest per new node of the plan, nominating the pods planned onto it.

    Its requirements are the NodePool's intersected with every pod's (an amd64 pod's claim lists
    only amd64 types); its instance types the planned one then every other that holds the pods,
    cheapest first; its capacity types spot then on-demand when both the pool and the pods allow
    on-demand (the fallback after spot runs out of capacity)."""
    claims = []
    for node, name in zip(plan.new_nodes, names, strict=False):
        pool = pools[node.nodepool]
        need = sum((requests_of.get(p, Resources(pods=1)) for p in node.pods), Resources())
        reqs = _node_requirements(pool, ((requirements_of or {}).get(p, ()) for p in node.pods), node.labels)
        capacity = [node.capacity_type]
        if node.capacity_type == "spot" and _allows(reqs, "on-demand"):
            capacity.append("on-demand")
        types = flexible_types(node, need, _allowed_types(reqs, pool, capacity, node.zone, catalog),
                               pool.min_values())
        template = pool.spec.template
        annotations = {NOMINATED: json.dumps(node.pods)}
        if protect_until is not None:
            annotations[PROTECTED_UNTIL] = str(int(protect_until))
        min_values = dict(pool.min_values())
        terms = _as_terms(reqs, PINNED)
        for t in terms:
            if t["key"] in min_values:
                t["minValues"] = min_values[t["key"]]
        claims.append({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": name, "labels": {**template.metadata.labels, "karpenter.sh/nodepool": pool.name},
                         "annotations": annotations},
            "spec": {
                "nodeClassRef": template.spec.node_class_ref or {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                                  "name": "default"},
                "requirements": [*terms,
                                 {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types},
                                 {"key": CAPACITY_TYPE, "operator": "In", "values": capacity},
                                 {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [node.zone]}],
                "resources": {"requests": _quantities(need)},
                "taints": [t.model_dump(by_alias=True) for t in template.spec.taints],
                "startupTaints": [t.model_dump(by_alias=True) for t in template.spec.startup_taints],
                **({"expireAfter": template.spec.expire_after} if template.spec.expire_after else {}),
                **({"terminationGracePeriod": template.spec.termination_grace_period}
                   if template.spec.termination_grace_period else {}),
            },
        })
    return claims


def _quantities(need: Resources) -> dict[str, str]:
    """Requests as Kubernetes quantities (cpu in m, memory and storage in Mi, the rest whole)."""
    unit = {"cpu": "m", "memory": "Mi", "ephemeral-storage": "Mi"}
    return {k: f"{v}{unit.get(k, '')}" for k, v in need.amounts().items() if v or k in ("cpu", "memory", "pods")}


def _allows(reqs: Requirements, capacity_type: str) -> bool:
    """Whether the capacity-type requirement (only that key) admits `capacity_type`."""
    vs = reqs.by_key.get(CAPACITY_TYPE)
    return vs is None or vs.allows(capacity_type)


def _requirement(claim: Mapping[str, Any], key: str) -> list[str] | None:
    for r in (claim.get("spec") or {}).get("requirements") or []:
        if r.get("key") == key and r.get("operator") == "In":
            return list(r.get("values") or [])
    return None


def offerings_for(claim: Mapping[str, Any], catalog: Sequence[InstanceType]) -> list[Offering]:
    """Every offering the NodeClaim's requirements allow (the launch policy orders and filters)."""
    types = _requirement(claim, "node.kubernetes.io/instance-type")
    capacity = _requirement(claim, "karpenter.sh/capacity-type") or ["on-demand"]
    zones = _requirement(claim, "topology.kubernetes.io/zone")
    by_name = {it.name: it for it in catalog}
    out = []
    for name in types or list(by_name):
        it = by_name.get(name)
        if it is None:
            continue
        for o in it.offerings:
            if o.capacity_type in capacity and (zones is None or o.zone in zones) and o.available:
                out.append(Offering(it.name, o.capacity_type, o.zone, o.price, it.architecture))
    return out


# --- NodeClaim lifecycle -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimStep:
    """What to do next for one NodeClaim."""

    action: str  # launch | wait | register | initialize | delete | none
    reason: str = ""
    conditions: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # type → (status, reason)


def _cond(claim: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (claim.get("status") or {}).get("conditions") or [])


def node_ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def claim_step(claim: Mapping[str, Any], node: Mapping[str, Any] | None, created_at: float, launched_at: float | None,
               now: float) -> ClaimStep:
    """Launched → Registered → Initialized, with Karpenter's timeouts."""
    status = claim.get("status") or {}
    if not status.get("providerID"):
        if now - created_at > LAUNCH_TIMEOUT_S:
            return ClaimStep("delete", "LaunchTimeout: no instance within 5 minutes")
        return ClaimStep("launch")
    if node is None:
        if launched_at is not None and now - launched_at > REGISTRATION_TIMEOUT_S:
            return ClaimStep("delete", "RegistrationTimeout: no Node within 15 minutes of launch")
        return ClaimStep("wait", "waiting for the Node to register")
    taints = (node.get("spec") or {}).get("taints") or []
    if not _cond(claim, "Registered") or any(t.get("key") == UNREGISTERED_TAINT["key"] for t in taints):
        return ClaimStep("register", conditions={"Registered": ("True", "Registered")})
    startup = {(t.get("key"), t.get("effect")) for t in (claim.get("spec") or {}).get("startupTaints") or []}
    still_starting = any((t.get("key"), t.get("effect")) in startup for t in taints)
    if not _cond(claim, "Initialized") and node_ready(node) and not still_starting:
        return ClaimStep("initialize", conditions={"Initialized": ("True", "Initialized")})
    return ClaimStep("none")


# --- disruption --------------------------------------------------------------------------------------

def parse_duration(text: str | None, default: float | None) -> float | None:
    """Karpenter durations: "30s", "5m", "720h", "1h30m", or "Never" (None)."""
    if text is None:
        return default
    if text == "Never":
        return None
    total, number = 0.0, ""
    units = {"s": 1, "m": 60, "h": 3600}
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 720h or Never")
    if number:
        raise ValueError(f"invalid duration {text!r}: a number needs a unit (s, m, h)")
    return total


@dataclass(frozen=True)
class Budget:
    """One disruption budget: at most `nodes` (a count or a percentage of the pool) disrupted at
    once, while its cron `schedule` (UTC) fired within the last `duration`, for `reasons` (all if none)."""

    nodes: str = "10%"
    schedule: str | None = None
    duration_s: float | None = None
    reasons: tuple[str, ...] | None = None

    def active(self, now: float, reason: str) -> bool:
        if self.reasons is not None and reason not in self.reasons:
            return False
        if self.schedule is None:
            return True
        from datetime import UTC, datetime

        from croniter import croniter

        start = datetime.fromtimestamp(now - (self.duration_s or 0.0), UTC)
        return float(croniter(self.schedule, start).get_next(float)) <= now

    def limit(self, pool_nodes: int) -> int:
        if self.nodes.endswith("%"):
            return math.ceil(pool_nodes * float(self.nodes[:-1]) / 100)
        return int(self.nodes)


@dataclass(frozen=True)
class Disruption:
    policy: str = "WhenEmptyOrUnderutilized"
    consolidate_after_s: float | None = 0.0
    budgets: tuple[Budget, ...] = (Budget(),)

    @classmethod
    def of(cls, pool: NodePool) -> Disruption:
        d = pool.spec.disruption or {}
        from croniter import croniter

        for i, b in enumerate(d.get("budgets") or []):
            if b.get("schedule") and not croniter.is_valid(b["schedule"]):
                raise ValueError(f"spec.disruption.budgets[{i}].schedule: {b['schedule']!r} is not a cron expression")
            if b.get("schedule") and not b.get("duration"):
                raise ValueError(f"spec.disruption.budgets[{i}].duration: required with a schedule")
            if b.get("duration") and not b.get("schedule"):
                raise ValueError(f"spec.disruption.budgets[{i}].schedule: required with a duration")
            if not re.fullmatch(r"(100|[0-9]{1,2})%|[0-9]+", str(b.get("nodes", "10%"))):
                raise ValueError(f"spec.disruption.budgets[{i}].nodes: {b.get('nodes')!r}: expected a count "
                                 "or a percentage (0%-100%)")
            unknown = [r for r in b.get("reasons") or [] if r not in DISRUPTION_REASONS]
            if unknown:
                raise ValueError(f"spec.disruption.budgets[{i}].reasons: {unknown[0]!r}: expected one of "
                                 + ", ".join(DISRUPTION_REASONS))
        budgets = tuple(Budget(str(b.get("nodes", "10%")), b.get("schedule"),
                               parse_duration(b.get("duration"), None) if b.get("schedule") else None,
                               tuple(b["reasons"]) if b.get("reasons") else None)
                        for b in d.get("budgets") or [{"nodes": "10%"}])
        try:
            after = parse_duration(d.get("consolidateAfter"), 0.0)
        except ValueError as exc:
            raise ValueError(f"spec.disruption.consolidateAfter: {exc}") from None
        return cls(d.get("consolidationPolicy", "WhenEmptyOrUnderutilized"), after, budgets)

    def allowed(self, pool_nodes: int, disrupting: int, reason: str = "Empty", now: float = 0.0) -> int:
        """How many more of the pool's nodes may be disrupted now for `reason`: the most
        restrictive active budget decides; with none active, nothing limits it."""
        limits = [b.limit(pool_nodes) for b in self.budgets if b.active(now, reason)]
        return max(0, min(limits) - disrupting) if limits else pool_nodes


@dataclass(frozen=True)
class NodeView:
    """What disruption needs to know about one of surge's nodes."""

    name: str
    claim: str
    nodepool: str
    price: float
    pods: int  # non-DaemonSet pods bound to it
    empty_since: float | None
    do_not_disrupt: bool
    protected_until: float | None
    created_at: float
    expire_after_s: float | None
    capacity_type: str = "on-demand"
    pods_changed_at: float | None = None  # a pod was last bound to or removed from it (consolidateAfter)
    drifted_at: float | None = None  # when its NodeClaim became Drifted (None: not drifted)
    node_do_not_disrupt: bool = False  # the annotation is on the Node or NodeClaim itself, not only on pods
    termination_grace_s: float | None = None  # the NodeClaim's terminationGracePeriod


def pool_sizes(nodes: Sequence[NodeView], disrupting: Mapping[str, int]) -> dict[str, int]:
    """Initialized nodes per pool, those being disrupted included: what a budget's percentage is
    of (Karpenter counts them in the total and subtracts them from what is allowed)."""
    sizes = dict(disrupting)
    for n in nodes:
        sizes[n.nodepool] = sizes.get(n.nodepool, 0) + 1
    return sizes


def disruption_order(nodes: Sequence[NodeView], pools: Mapping[str, Disruption], disrupting: Mapping[str, int],
                     now: float) -> list[tuple[NodeView, str]]:
    """Nodes to remove now, each with why: expired ones (forceful: neither budgets nor
    do-not-disrupt hold them — the drain waits for do-not-disrupt pods until terminationGracePeriod,
    as Karpenter v1), then empty ones past consolidateAfter (most expensive first), within each
    pool's budget. Protected and do-not-disrupt nodes are not emptied."""
    per_pool = pool_sizes(nodes, disrupting)
    picks: list[tuple[NodeView, str]] = []
    taken: dict[str, int] = dict(disrupting)
    expired = [n for n in nodes if n.expire_after_s is not None and now - n.created_at >= n.expire_after_s]
    empty = sorted((n for n in nodes if n.pods == 0 and n.empty_since is not None and n not in expired),
                   key=lambda n: -n.price)
    for n, why in [(n, "Expired") for n in expired] + [(n, "Empty") for n in empty]:
        policy = pools.get(n.nodepool, Disruption())
        if n.do_not_disrupt and why != "Expired":
            continue
        if why == "Empty":
            since = n.empty_since if n.empty_since is not None else now
            if policy.consolidate_after_s is None or now - since < policy.consolidate_after_s:
                continue
            if n.protected_until is not None and now < n.protected_until:
                continue
        # expiration is forceful in Karpenter v1: budgets do not hold it back
        if why != "Expired" and policy.allowed(per_pool[n.nodepool], taken.get(n.nodepool, 0), why, now) <= 0:
            continue
        taken[n.nodepool] = taken.get(n.nodepool, 0) + 1
        picks.append((n, why))
    return picks


def requirements_of(claim: Mapping[str, Any]) -> Requirements:
    return Requirements.from_terms((claim.get("spec") or {}).get("requirements") or [])


@dataclass(frozen=True)
class Move:
    """A consolidation of one underutilized node: delete it (its pods fit on the others) or
    replace it with one cheaper node."""

    action: str  # delete | replace
    plan: Plan
    saving_per_hour: float


def consolidation_move(pods: Sequence[Mapping[str, Any]], others: Sequence[ExistingNode], pools: Sequence[NodePool],
                       catalog: Sequence[InstanceType], price: float) -> Move | None:
    """Simulate rescheduling the node's pods first: onto the free room of the other nodes (delete),
    else onto one new node that costs less than this one (replace); otherwise leave it."""
    groups = groups_of(pods)
    if not groups:
        return Move("delete", Plan([], 0.0, 0.0), price)
    plan = make_plan(groups, pools, catalog, others)
    if plan.unschedulable:
        return None
    if not plan.new_nodes:
        return Move("delete", plan, price)
    if len(plan.new_nodes) == 1 and plan.new_nodes[0].price_per_hour < price:
        return Move("replace", plan, price - plan.new_nodes[0].price_per_hour)
    return None


def covers(free: Resources, demand: Resources) -> bool:
    """Whether free room (summed over nodes) is enough for the forecast demand, resource by resource.
    A fluid check: it ignores how the room is split between nodes, so it errs toward removing."""
    return free.cpu_m >= demand.cpu_m and free.memory_mib >= demand.memory_mib and free.gpu >= demand.gpu


def total(resources: Iterable[Resources]) -> Resources:
    return sum(resources, Resources())


def pool_in_zones(pool: NodePool, zones: Iterable[str]) -> NodePool:
    """The pool with a zone requirement narrowed to `zones` (e.g. where its subnets are)."""
    extra = RequirementSpec(key="topology.kubernetes.io/zone", operator="In", values=sorted(zones) or ["none"])
    spec = pool.spec.template.spec.model_copy(update={"requirements": [*pool.spec.template.spec.requirements, extra]})
    template = pool.spec.template.model_copy(update={"spec": spec})
    return pool.model_copy(update={"spec": pool.spec.model_copy(update={"template": template})})


def with_remaining_limits(pool: NodePool, used: Resources) -> NodePool:
    """The pool with its limits lowered by what its nodes already hold (Karpenter's limits count
    every node of the pool, not only the ones about to be launched)."""
    limit = pool.limit()
    if limit is None:
        return pool
    left = {"cpu": f"{max(0, limit.cpu_m - used.cpu_m)}m", "memory": f"{max(0, limit.memory_mib - used.memory_mib)}Mi",
            "nvidia.com/gpu": str(max(0, limit.gpu - used.gpu))}
    limits = {k: v for k, v in left.items() if k in pool.spec.limits}
    return pool.model_copy(update={"spec": pool.spec.model_copy(update={"limits": limits})})
