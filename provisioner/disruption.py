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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from provisioner.plan import Plan
from provisioner.provisioning import Disruption, NodeView, disruption_order, pool_sizes

PROTECT_S = 300.0  # capacity launched ahead of pods is kept this long (or until they arrive)
MAX_MULTI_NODE_CANDIDATES = 100  # Karpenter's multi-node consolidation looks at this many at most
CONSOLIDATION_INTERVAL_S = 10.0  # how often the disruption controller looks for work
SPOT_NOTICE_S = 120.0  # EC2's spot interruption warning comes this long before the reclaim
DRAIN_BEFORE_RECLAIM_S = 30.0  # pods' default terminationGracePeriodSeconds: drained by then at the latest
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


def judge(nodes: Sequence[NodeView], plan: Plan | None, spot_to_spot: bool = False) -> Action | None:
    """Whether moving `nodes`' pods as `plan` says is a consolidation: delete when they all fit on
    the other nodes; replace when they need exactly one new node that costs less than `nodes` and
    is not spot-for-spot (unless the gate is on); otherwise nothing."""
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
    if not spot_to_spot and new.capacity_type == "spot" and all(n.capacity_type == "spot" for n in nodes):
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
                       spot_to_spot: bool = False) -> list[Action]:
    """This round's disruptions. `plan_for(nodes)` reschedules the nodes' pods onto the other nodes
    (and new ones where needed), None when some cannot be placed; `keep(nodes)` may veto removing
    capacity without a replacement (surge's forecast-aware consolidation). `nodes` are the
    initialized nodes not already being disrupted; `disrupting` counts those that are, per pool."""
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
        action = judge(chosen, plan_for(chosen), spot_to_spot and len(chosen) == 1)
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
    return []


def revalidate(action: Action, nodes: Sequence[NodeView], pools: Mapping[str, Disruption],
               disrupting: Mapping[str, int], now: float, plan_for: Callable[[Sequence[NodeView]], Plan | None],
               spot_to_spot: bool = False) -> Action | None:
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
    again = judge(kept, plan_for(kept), spot_to_spot and len(kept) == 1)
    if again is None or again.kind != action.kind:
        return None
    return Action(tuple(kept), action.reason, action.replacement, action.saving_per_hour)
