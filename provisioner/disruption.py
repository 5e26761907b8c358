"""Which nodes consolidation removes or replaces, and when: one pure function that the
provisioning controller and the simulator both call, so the simulated Karpenter baseline and the
shipped provisioner follow the same rules with the same constants.

The rules are Karpenter v1's (https://karpenter.sh/docs/concepts/disruption/):
- methods in order: expired nodes (forceful), empty nodes (many at once), drifted nodes (one at
  a time, empty ones first, oldest drift first; replaced by as many new nodes as their pods need,
  whatever the price, within budgets for reason Drifted), then — only under
  `consolidationPolicy: WhenEmptyOrUnderutilized` — multi-node consolidation (the largest prefix
  of the candidates whose pods fit elsewhere or on one cheaper node), then single-node;
- `consolidateAfter` counts from the last pod bound to or removed from the node;
- budgets (default `nodes: 10%` of the NodePool) cap how many nodes are disrupted at once, the
  most restrictive active budget winning; nodes already being disrupted count against them;
- `karpenter.sh/do-not-disrupt` on the node or one of its pods keeps it from consolidation; from
  drift too, unless it is only on pods and the NodeClaim has a terminationGracePeriod; never from
  expiry (forceful);
- a replacement must be one node, cheaper than the nodes it replaces; replacing spot with spot is
  behind the `SpotToSpotConsolidation` feature gate, which defaults to off
  (https://karpenter.sh/docs/reference/settings/#feature-gates).
Capacity surge launched ahead of pods is kept `PROTECT_S` (live and simulated alike).

surge's own provisioner differs in three rules, on purpose. It right-sizes spot (`spot_min_saving`):
a spot node left mostly empty after a burst is replaced by one cheaper spot node when that saves
at least `SPOT_RESIZE_MIN_SAVING` of its price — Karpenter keeps it for good with the gate off.
It repacks a fragmented fleet (`repack_min_saving`, `repack_action`) one node at a time, within a
budget of one, where Karpenter's multi-node consolidation needs the budget for the whole set.
Make before break (surge only; Karpenter evicts): a consolidation, drift or expiry drain first
*hands over* the node's Deployment pods — the Deployment gets as many extra replicas as the node
runs, the node's pods get the lowest pod-deletion-cost, and once Ready pods elsewhere cover them
(or `HANDOVER_TIMEOUT_S` passed) the extra replicas are taken back, which deletes exactly the
node's pods. Evicting first would leave the work without those pods for a restart; under a lag
trigger that gap is read as demand, the HPA doubles, and the next consolidation drains again.
"""


from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.plan import Plan
from provisioner.provisioning import DO_NOT_DISRUPT, Disruption, NodeView, disruption_order, pool_sizes

PROTECT_S = 300.0  # capacity launched ahead of pods is kept this long (or until they arrive)
MAX_MULTI_NODE_CANDIDATES = 100  # Karpenter's multi-node consolidation looks at this many at most
CONSOLIDATION_INTERVAL_S = 10.0  # how often the disruption controller looks for work
SPOT_NOTICE_S = 120.0  # EC2's spot interruption warning comes this long before the reclaim
DRAIN_BEFORE_RECLAIM_S = 30.0  # pods' default terminationGracePeriodSeconds: drained by then at the latest
# surge replaces a spot node by a cheaper spot node only when that saves this share of its price: the
# node is right-sized after a burst (its pods use well under half of it), not walked down price tiers
# one drain at a time (each drain restarts the node's pods). Measured on the shared traces
# (docs/benchmarks-simulate.md): 0.5 replaced up to ×6 more often and cost more than 0.6; 0.7 and 0.8
# gave back less (crane 62.65 and 70.19 $ against 59.46 $).
SPOT_RESIZE_MIN_SAVING = 0.6
# surge repacks consolidatable nodes onto one new node when it costs at most (1 − this) of theirs:
# the set's saving must pay for the temporary extra node and one handover per node it empties.
# Measured on the shared traces (docs/benchmarks-simulate.md, "Repack"): 0.05 / 0.1 cost crane
# +25 / +30 %; 0.2 gave −7 … +10 % per trace, 0.24 and 0.3 milder; 0.24 is the highest that still
# repacks the ramp's leftovers of the constant-load test (a 24.8 % saving on spot).
REPACK_MIN_SAVING = 0.24
# ...or this share, when every node of the set has had no pod bound or removed for REPACK_CALM_S: a
# fleet that calm is a steady load (the constant-load test ends on 3 + 3 + 1 pods, 9.6 % dearer than
# one node for all 7), where a busy trace's sets change before a small saving pays for the move
REPACK_CALM_S = 1200.0
REPACK_CALM_MIN_SAVING = 0.05
# the live controller and the `surge` policy both read this, so they stay one decision code either
# way; tests/test_differential.py compares a repack live and simulated
REPACK_ON = True
# Karpenter's commandValidationDelay: an Empty / Underutilized command waits this long, then is re-validated
VALIDATION_S = 15.0


DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
DELETION_COST_EVERY_S = 60.0  # pods are re-ranked at most this often (annotation writes are not free)


def deletion_costs(nodes: Sequence[NodeView], now: float) -> dict[str, int]:
    """The pod-deletion-cost for the pods of each node: the node consolidation would take first
    (the same order, `disruption_cost`) gets the lowest, so a ReplicaSet scale-down deletes its
    pods first and empties it instead of thinning every node (https://kubernetes.io/docs/reference/
    labels-annotations-taints/#pod-deletion-cost). Karpenter does not write the annotation (it
    only reads it into a pod's eviction cost, pkg/utils/disruption; none of its feature gates,
    pkg/operator/options, ranks pods), so the keda-karpenter baseline has no ranking; surge ships
    it. Costs are negative: pods on these nodes go before unannotated pods elsewhere."""
    order = sorted(nodes, key=lambda n: (n.do_not_disrupt, disruption_cost(n, now), -n.price, n.name))
    return {n.name: i - len(order) for i, n in enumerate(order)}


HANDOVER = "surge.sh/handover"  # Deployment annotation: JSON {node: extra replicas} while handovers run
HANDOVER_TIMEOUT_S = 600.0  # replacements not Ready by then: the node's pods are evicted after all
HANDOVER_GRACE_S = 300.0  # an annotation entry counts until timeout + this (then its writer died)
HANDOVER_REASONS = ("Underutilized", "Drifted", "Expired")  # not SpotInterruption: it must drain by drain_at
HANDOVER_DELETION_COST = -(2**31)  # int32 minimum: below every rank `deletion_costs` writes
Workload = tuple[str, str, str]  # (namespace, kind, name)


@dataclass(frozen=True)
class Handover:
    """`extra` replicas of `workload` stand in for its pods on `node`, which drains once
    `handover_done`; `ready_before` is how many Ready pods the workload had elsewhere at the start."""

    node: str
    workload: Workload
    extra: int
    started_at: float
    ready_before: int


def hands_over(reason: str) -> bool:
    """Whether a drain for `reason` makes before it breaks. Spot interruptions do not: their
    replacement node is pre-spun already and the pods must be gone before the reclaim."""
    return reason.split(" ")[0] in HANDOVER_REASONS


def workload_of(pod: Mapping[str, Any]) -> Workload | None:
    """The Deployment a pod belongs to, when its pods can be handed over: owned by a ReplicaSet
    whose name is the Deployment's plus the pod's `pod-template-hash` (how the Deployment
    controller names them), running, not terminating, not do-not-disrupt, not a static pod.
    Bare pods, DaemonSet, StatefulSet and Job pods have no spare replica to start: None."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if annotations.get(DO_NOT_DISRUPT) == "true" or "kubernetes.io/config.mirror" in annotations:
        return None
    if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    digest = (meta.get("labels") or {}).get("pod-template-hash")
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == "ReplicaSet"), None)
    name = str((owner or {}).get("name", ""))
    if not digest or not name.endswith("-" + digest) or len(name) <= len(digest) + 1:
        return None
    return (str(meta.get("namespace") or "default"), "Deployment", name[: -len(digest) - 1])


def handover_extra(pods: Iterable[Mapping[str, Any]]) -> dict[Workload, int]:
    """Extra replicas per Deployment that stand in for a draining node's `pods`; pods of no
    Deployment (see `workload_of`) are evicted as usual."""
    out: dict[Workload, int] = {}
    for pod in pods:
        key = workload_of(pod)
        if key is not None:
            out[key] = out.get(key, 0) + 1
    return out


def handover_done(h: Handover, ready_elsewhere: int, now: float, wanted: int | None = None,
                  starting_elsewhere: int = 0) -> bool:
    """Ready pods off the node cover what it ran (as many as before plus the extra, or all the
    workload still wants without extras, when it scaled down meanwhile) and none of the workload's
    pods off the node is still starting (Pending or not Ready), or the time is up. Taking the
    extras back deletes the least useful pods — unassigned and not-Ready ones before any Ready one,
    whatever their pod-deletion-cost (kubernetes pkg/controller/controller_utils.go
    `ActivePodsWithRanks.Less`) — so while a scale-up's pods start elsewhere the take-back would
    delete them and the drain evict the node's Ready pods instead: a restart, which the handover
    exists to avoid."""
    if now - h.started_at >= HANDOVER_TIMEOUT_S:
        return True
    cover = h.ready_before + h.extra if wanted is None else min(h.ready_before + h.extra, wanted)
    return ready_elsewhere >= cover and starting_elsewhere <= 0


def handover_replicas(desired: int, extras: Iterable[int]) -> int:
    """What the target's replicas are while handovers run: the autoscaler's desired count plus
    every running handover's extra (even beyond maxReplicas: a drain does not shrink capacity)."""
    return desired + sum(max(0, e) for e in extras)


def parse_handover(text: str | None) -> dict[str, tuple[int, float]]:
    """The `surge.sh/handover` annotation: {node: {"extra": n, "until": epoch seconds}} as
    {node: (n, until)}; anything malformed reads as none (a broken annotation must not stop the
    operator; the provisioner's timeout ends the handover anyway)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    for node, entry in raw.items():
        extra, until = (entry.get("extra"), entry.get("until")) if isinstance(entry, dict) else (None, None)
        if isinstance(extra, int) and not isinstance(extra, bool) and extra > 0 \
                and isinstance(until, int | float) and not isinstance(until, bool):
            out[str(node)] = (extra, float(until))
    return out


def dump_handover(entries: Mapping[str, tuple[int, float]]) -> str | None:
    """The annotation's text for `entries` (None: remove it)."""
    if not entries:
        return None
    return json.dumps({n: {"extra": e, "until": round(u, 3)} for n, (e, u) in sorted(entries.items())})


def live_extras(entries: Mapping[str, tuple[int, float]], now: float) -> int:
    """The extra replicas of handovers still running at `now`. An entry outlives the handover's
    own timeout by `HANDOVER_GRACE_S` only when the provisioner that wrote it died: then it is
    ignored, and the operator's next write drops its replicas."""
    return sum(extra for extra, until in entries.values() if now < until)


def drain_at(noticed_at: float, replacement_ready_at: float | None) -> float:
    """When an interrupted node is drained: once its replacement is ready (make before break, as
    Karpenter pre-spins one on the warning), but early enough for its pods to stop gracefully
    before the reclaim (https://karpenter.sh/docs/concepts/disruption/#interruption)."""
    deadline = noticed_at + SPOT_NOTICE_S - DRAIN_BEFORE_RECLAIM_S
    return deadline if replacement_ready_at is None else min(replacement_ready_at, deadline)


@dataclass(frozen=True)
class Action:
    """Disrupt `nodes` for `reason`: Expired / Empty / Drifted / Underutilized. An action with a
    `replacement` launches that plan's new nodes first and drains the nodes once they are ready."""

    nodes: tuple[NodeView, ...]
    reason: str
    replacement: Plan | None = None
    saving_per_hour: float = 0.0
    # the replacement's new nodes are kept from consolidation until then (a repack's node, whose
    # room the next rounds fill, must not be consolidated or repacked itself meanwhile)
    protect_until: float | None = None

    @property
    def kind(self) -> str:
        return "replace" if self.replacement is not None and self.replacement.new_nodes else "delete"


def consolidatable(node: NodeView, policy: Disruption, now: float) -> bool:
    """Past consolidateAfter since its pods last changed, not protected, not do-not-disrupt."""
    if node.do_not_disrupt or policy.consolidate_after_s is None:
        return False
    if node.protected_until is not None and now < node.protected_until:
        return False
    since = node.pods_changed_at if node.pods_changed_at is not None else node.empty_since
    return since is None or now - since >= policy.consolidate_after_s


def disruption_cost(node: NodeView, now: float) -> float:
    """Karpenter's candidate order for consolidation, cheapest to disrupt first: the pods'
    rescheduling cost (1 per pod without priority or pod-deletion-cost) times the fraction of the
    node's lifetime left before expireAfter, so among equally full nodes the older goes first
    (kubernetes-sigs/karpenter pkg/utils/disruption/disruption.go ReschedulingCost ×
    LifetimeRemaining; consolidation.go sortCandidates)."""
    remaining = 1.0
    if node.expire_after_s:
        remaining = min(1.0, max(0.0, (node.expire_after_s - (now - node.created_at)) / node.expire_after_s))
    return node.pods * remaining


def judge(nodes: Sequence[NodeView], plan: Plan | None, spot_to_spot: bool = False,
          spot_min_saving: float = 0.0) -> Action | None:
    """Whether moving `nodes`' pods as `plan` says is a consolidation: delete when they all fit on
    the other nodes; replace when they need exactly one new node that costs less than `nodes` and
    is not spot-for-spot (unless the gate is on, and then only when it saves at least
    `spot_min_saving` of their price); otherwise nothing."""
    if plan is None or plan.unschedulable:
        return None
    price = sum(n.price for n in nodes)
    if not plan.new_nodes:
        return Action(tuple(nodes), "Underutilized", None, price)
    if len(plan.new_nodes) != 1:
        return None
    new = plan.new_nodes[0]
    if new.price_per_hour >= price:
        return None
    spot_for_spot = new.capacity_type == "spot" and all(n.capacity_type == "spot" for n in nodes)
    if spot_for_spot and (not spot_to_spot or price - new.price_per_hour < spot_min_saving * price):
        return None
    return Action(tuple(nodes), "Underutilized", plan, price - new.price_per_hour)


def drift_action(nodes: Sequence[NodeView], pools: Mapping[str, Disruption], disrupting: Mapping[str, int],
                 per_pool: Mapping[str, int], now: float,
                 plan_for: Callable[[Sequence[NodeView]], Plan | None]) -> Action | None:
    """Karpenter's drift method: one drifted node per round, empty ones first (their pods would
    otherwise move twice), then by how long they have been drifted; the first whose pods can all
    be placed (on other nodes and any number of new ones, at any price) within its pool's
    Drifted budget. do-not-disrupt on the node keeps it; on a pod, only while the NodeClaim has
    no terminationGracePeriod (with one, the drain waits for that pod until it is up: drift is an
    eventual disruption in Karpenter). consolidateAfter does not apply."""
    drifted = sorted((n for n in nodes if n.drifted_at is not None and not n.node_do_not_disrupt
                      and not (n.do_not_disrupt and n.termination_grace_s is None)),
                     key=lambda n: (n.pods > 0, n.drifted_at, n.name))
    for n in drifted:
        policy = pools.get(n.nodepool, Disruption())
        if policy.allowed(per_pool.get(n.nodepool, 0), disrupting.get(n.nodepool, 0), "Drifted", now) <= 0:
            continue
        plan = plan_for([n])
        if plan is None or plan.unschedulable:
            continue  # Karpenter: disruption blocked, its pods would not all schedule
        return Action((n,), "Drifted", plan if plan.new_nodes else None)
    return None


def disruption_actions(nodes: Sequence[NodeView], pools: Mapping[str, Disruption], disrupting: Mapping[str, int],
                       now: float, plan_for: Callable[[Sequence[NodeView]], Plan | None],
                       keep: Callable[[Sequence[NodeView]], bool] = lambda _: False,
                       spot_to_spot: bool = False, spot_min_saving: float = 0.0,
                       repack_min_saving: float | None = None) -> list[Action]:
    """This round's disruptions. `plan_for(nodes)` reschedules the nodes' pods onto the other nodes
    (and new ones where needed), None when some cannot be placed; `keep(nodes)` may veto removing
    capacity without a replacement (surge's forecast-aware consolidation). `nodes` are the
    initialized nodes not already being disrupted; `disrupting` counts those that are, per pool.
    `spot_to_spot` is Karpenter's gate (single-node only); `spot_min_saving` the share of the
    node's price a spot-for-spot replacement must save (surge: `SPOT_RESIZE_MIN_SAVING`);
    `repack_min_saving`, when not None, lets `repack_action` run last (surge: `REPACK_MIN_SAVING`)."""
    picks = [(n, why) for n, why in disruption_order(nodes, pools, disrupting, now)
             if why == "Expired" or not keep([n])]
    if picks:
        return [Action((n,), why) for n, why in picks]
    per_pool = pool_sizes(nodes, disrupting)
    drift = drift_action(nodes, pools, disrupting, per_pool, now, plan_for)
    if drift is not None:
        return [drift]
    room = {name: pools.get(name, Disruption()).allowed(count, disrupting.get(name, 0), "Underutilized", now)
            for name, count in per_pool.items()}
    candidates = []
    for n in sorted(nodes, key=lambda n: (disruption_cost(n, now), -n.price, n.name)):
        policy = pools.get(n.nodepool, Disruption())
        if n.pods == 0 or policy.policy != "WhenEmptyOrUnderutilized" or not consolidatable(n, policy, now):
            continue
        if room.get(n.nodepool, 0) <= 0:
            continue
        room[n.nodepool] -= 1
        candidates.append(n)
    candidates = candidates[:MAX_MULTI_NODE_CANDIDATES]

    def attempt(chosen: Sequence[NodeView]) -> Action | None:
        # spot-to-spot, where enabled, is single-node only (as Karpenter's gate)
        action = judge(chosen, plan_for(chosen), spot_to_spot and len(chosen) == 1, spot_min_saving)
        if action is None or (action.kind == "delete" and keep(chosen)):
            return None
        return action

    # multi-node: the largest prefix (binary search, as Karpenter) of at least two nodes
    best: Action | None = None
    lo, hi = 2, len(candidates)
    while lo <= hi:
        mid = (lo + hi) // 2
        action = attempt(candidates[:mid])
        if action is not None:
            best, lo = action, mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return [best]
    for n in candidates:  # single-node: the first that works
        action = attempt([n])
        if action is not None:
            return [action]
    if repack_min_saving is not None:
        repack = repack_action(nodes, pools, disrupting, per_pool, now, plan_for, repack_min_saving)
        if repack is not None:
            return [repack]
    return []


def repack_action(nodes: Sequence[NodeView], pools: Mapping[str, Disruption], disrupting: Mapping[str, int],
                  per_pool: Mapping[str, int], now: float, plan_for: Callable[[Sequence[NodeView]], Plan | None],
                  min_saving: float) -> Action | None:
    """surge's way out of a fragmented fleet (say five one-pod nodes a ramp left behind) that
    consolidation cannot fix: deleting any one node needs room no other node has, no single node
    has a cheaper replacement, and replacing the set at once needs a budget of the set's size
    (Karpenter's multi-node consolidation; the default 10 % of five nodes allows one).

    In the first pool with no disruption running, within its Underutilized budget: the largest
    prefix (at least two, in consolidation's candidate order; every size is tried, largest first,
    as a smaller set may miss a cheaper type a larger one reaches) of its consolidatable nodes
    whose pods all fit on the other nodes' room plus ONE new node costing at most
    (1 − `min_saving`) of the prefix's price — (1 − `REPACK_CALM_MIN_SAVING`) when every node of
    the prefix has been calm (no pod event) for `REPACK_CALM_S`. Only the prefix's first node is replaced by that
    node (one disruption); the new node is protected for `PROTECT_S`, so the next rounds'
    ordinary single-node deletes move the other nodes' pods onto its room instead of
    consolidating or repacking it. Spot for spot is allowed: the saving is the whole set's. None
    when no prefix qualifies."""
    by_pool: dict[str, list[NodeView]] = {}
    for n in sorted(nodes, key=lambda n: (disruption_cost(n, now), -n.price, n.name)):
        policy = pools.get(n.nodepool, Disruption())
        if n.pods > 0 and policy.policy == "WhenEmptyOrUnderutilized" and consolidatable(n, policy, now):
            by_pool.setdefault(n.nodepool, []).append(n)
    for pool, found in sorted(by_pool.items()):
        policy = pools.get(pool, Disruption())
        if disrupting.get(pool, 0) > 0 or policy.allowed(per_pool.get(pool, 0), 0, "Underutilized", now) <= 0:
            continue
        candidates = found[:MAX_MULTI_NODE_CANDIDATES]
        for size in range(len(candidates), 1, -1):
            price = sum(n.price for n in candidates[:size])
            plan = plan_for(candidates[:size])
            if plan is None or plan.unschedulable or len(plan.new_nodes) != 1:
                continue
            new = plan.new_nodes[0].price_per_hour
            need = min_saving if not all(calm_at(n) <= now for n in candidates[:size]) \
                else min(min_saving, REPACK_CALM_MIN_SAVING)
            if new <= (1 - need) * price:
                return Action((candidates[0],), "Underutilized", plan, price - new, now + PROTECT_S)
    return None


def calm_at(node: NodeView) -> float:
    """When the node counts as calm for repack: `REPACK_CALM_S` after its last pod was bound or
    removed (after its creation, if none)."""
    since = node.pods_changed_at if node.pods_changed_at is not None else node.created_at
    return since + REPACK_CALM_S


def revalidate(action: Action, nodes: Sequence[NodeView], pools: Mapping[str, Disruption],
               disrupting: Mapping[str, int], now: float, plan_for: Callable[[Sequence[NodeView]], Plan | None],
               spot_to_spot: bool = False, spot_min_saving: float = 0.0) -> Action | None:
    """Karpenter's validation of a consolidation command `VALIDATION_S` after it was computed
    (kubernetes-sigs/karpenter pkg/controllers/disruption/validation.go): what still holds of
    `action` on the cluster as it is now (`nodes`: initialized, not being disrupted), or None.
    - Empty (EmptinessValidator): the candidates still empty, consolidatable and within budget go
      ahead, the others drop out;
    - Underutilized (ConsolidationValidator): every candidate must still be one (consolidatable:
      no pod bound or removed within consolidateAfter, not do-not-disrupt) and within budget, and
      re-simulating must give the same decision — a delete still needs no new node, a replacement
      still exactly one cheaper node; else the whole command is dropped;
    - Expired / Drifted are not validated (returned as they are)."""
    if action.reason not in ("Empty", "Underutilized"):
        return action
    now_by_name = {n.name: n for n in nodes}
    per_pool = pool_sizes(nodes, disrupting)
    room = {name: pools.get(name, Disruption()).allowed(count, disrupting.get(name, 0), action.reason, now)
            for name, count in per_pool.items()}
    kept = []
    for old in action.nodes:
        n = now_by_name.get(old.name)
        still = (n is not None and room.get(n.nodepool, 0) > 0
                 and consolidatable(n, pools.get(n.nodepool, Disruption()), now)
                 and (n.pods == 0 or action.reason != "Empty"))
        if n is not None and still:
            room[n.nodepool] -= 1
            kept.append(n)
        elif action.reason == "Underutilized":
            return None
    if not kept:
        return None
    if action.reason == "Empty":
        return Action(tuple(kept), "Empty")
    again = judge(kept, plan_for(kept), spot_to_spot and len(kept) == 1, spot_min_saving)
    if again is None or again.kind != action.kind:
        return None
    return Action(tuple(kept), action.reason, action.replacement, action.saving_per_hour)
