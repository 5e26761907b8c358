"""The shared decision code, rule by rule: consolidation (provisioner/disruption.py), provisioning
batches (BatchWindow), the operator's reaction path (engine/reaction.py) and the simulated
Kubernetes the simulator puts them in. Each test names the documentation it follows; the live
controllers and the simulator both call these functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from autoscaler.engine.reaction import LAG_WATCH_S, WAKE_COALESCE_S, next_due, on_change, watch_interval
from autoscaler.simulate.cluster import Cluster
from provisioner.disruption import (
    DRAIN_BEFORE_RECLAIM_S,
    PROTECT_S,
    REPACK_CALM_MIN_SAVING,
    REPACK_CALM_S,
    REPACK_MIN_SAVING,
    REPACK_ON,
    SPOT_NOTICE_S,
    SPOT_RESIZE_MIN_SAVING,
    deletion_costs,
    disruption_actions,
    drain_at,
    judge,
)
from provisioner.plan import Plan, PlannedNode
from provisioner.provisioning import (
    BATCH_IDLE_S,
    BATCH_MAX_S,
    RETRY_UNSCHEDULABLE_S,
    BatchWindow,
    Budget,
    Disruption,
    NodeView,
)

KARPENTER = "https://karpenter.sh/docs/concepts/disruption/"


def node(name: str, pods: int = 1, price: float = 1.0, changed: float = 0.0, capacity: str = "on-demand",
         pool: str = "default", dnd: bool = False, protected: float | None = None, created: float = 0.0,
         expire: float | None = 720 * 3600.0) -> NodeView:
    return NodeView(name, name, pool, price, pods, changed if pods == 0 else None, dnd, protected, created, expire,
                    capacity, changed)


def policy(kind: str = "WhenEmptyOrUnderutilized", after: float | None = 60.0, nodes: str = "100%") -> Disruption:
    return Disruption(kind, after, (Budget(nodes),))


def nowhere(_: Sequence[NodeView]) -> Plan | None:
    return None  # the pods fit nowhere and nothing can be launched for them


def fits(_: Sequence[NodeView]) -> Plan | None:
    return Plan([], 0.0, 0.0)  # the pods fit on the other nodes


def one_new(price: float, capacity: str = "on-demand") -> Plan:
    return Plan([PlannedNode("m5.large", capacity, "us-east-1a", price, ["p"], "default")], price, price)


def actions(nodes: Sequence[NodeView], pol: Disruption, plan_for: Callable[[Sequence[NodeView]], Plan | None] = fits,
            now: float = 1000.0, disrupting: int = 0,
            **kw: object) -> list[tuple[tuple[str, ...], str, str]]:
    out = disruption_actions(nodes, {"default": pol}, {"default": disrupting}, now, plan_for, **kw)  # type: ignore[arg-type]
    return [(tuple(n.name for n in a.nodes), a.reason, a.kind) for a in out]


# --- consolidation policy ------------------------------------------------------------------------

def test_when_empty_removes_only_empty_nodes() -> None:
    # KARPENTER#consolidation: "WhenEmpty: Karpenter will only consider nodes for consolidation that
    # contain no workload pods"
    nodes = [node("busy", pods=1), node("empty", pods=0)]
    assert actions(nodes, policy("WhenEmpty")) == [(("empty",), "Empty", "delete")]
    assert actions([node("busy", pods=1)], policy("WhenEmpty")) == []


def test_underutilized_nodes_are_deleted_when_their_pods_fit_elsewhere() -> None:
    # KARPENTER#consolidation: deletion when the pods can run on the free capacity of other nodes
    assert actions([node("a", pods=1, price=2.0)], policy()) == [(("a",), "Underutilized", "delete")]
    assert actions([node("a", pods=1)], policy(), plan_for=nowhere) == []


def test_multi_node_consolidation_takes_the_largest_prefix_before_single_nodes() -> None:
    # KARPENTER#consolidation: multi-node consolidation first, then single-node
    nodes = [node(f"n{i}", pods=i + 1) for i in range(4)]

    def first_three(chosen: Sequence[NodeView]) -> Plan | None:
        return Plan([], 0.0, 0.0) if {n.name for n in chosen} <= {"n0", "n1", "n2"} else None

    assert actions(nodes, policy(), plan_for=first_three) == [(("n0", "n1", "n2"), "Underutilized", "delete")]


def test_a_replacement_must_be_one_cheaper_node() -> None:
    # KARPENTER#consolidation: replace "with a cheaper node" (one)
    a = node("a", price=1.0)
    assert judge([a], one_new(0.4)) is not None and judge([a], one_new(0.4)).kind == "replace"  # type: ignore[union-attr]
    assert judge([a], one_new(1.0)) is None  # not cheaper
    two = Plan([*one_new(0.1).nodes, *one_new(0.1).nodes], 0.2, 0.2)
    assert judge([a], two) is None  # two nodes for one is not a consolidation


def test_spot_is_not_replaced_by_spot_unless_the_feature_gate_is_on() -> None:
    # https://karpenter.sh/docs/concepts/disruption/#spot-consolidation and
    # https://karpenter.sh/docs/reference/settings/#feature-gates: SpotToSpotConsolidation defaults to false
    spot = node("s", price=1.0, capacity="spot")
    assert judge([spot], one_new(0.3, "spot")) is None
    assert judge([spot], one_new(0.3, "spot"), spot_to_spot=True) is not None
    assert judge([spot], Plan([], 0.0, 0.0)) is not None  # deleting a spot node is always allowed
    on_demand = node("o", price=1.0)
    assert judge([on_demand], one_new(0.3, "spot")) is not None  # on-demand → cheaper spot is allowed
    # the simulated baseline calls the same function: no spot → spot replacement loop on a constant load
    assert actions([spot], policy(), plan_for=lambda _: one_new(0.3, "spot")) == []



def packed(price_per_pod: float, slots: int, capacity: str = "on-demand",
           single: float = 1.0) -> Callable[[Sequence[NodeView]], Plan | None]:
    """A cloud whose other nodes are full: the chosen nodes' pods need new nodes; one pod gets a
    node of its own at `single` $/h, more one holding up to `slots` pods at `price_per_pod` each."""
    def plan_for(chosen: Sequence[NodeView]) -> Plan | None:
        pods = sum(n.pods for n in chosen)
        if pods > slots:
            return Plan([PlannedNode("m6a.2xlarge", capacity, "us-east-1a", price_per_pod * slots, ["p"], "default")]
                        * 2, 0.0, 0.0)
        return one_new(single if pods <= 1 else price_per_pod * slots, capacity)
    return plan_for


def test_surge_repacks_a_fragmented_fleet_one_node_at_a_time_within_a_budget_of_one() -> None:
    # seven one-pod nodes at 1 $/h (a ramp's leftovers); one node for all seven costs 3.5 $/h. The
    # default budget (10 % of 7, rounded up: 1) rules out multi-node consolidation, no pod fits
    # elsewhere and no single node has a cheaper replacement: Karpenter (and the baseline) keep them
    fleet = [node(f"n{i}", price=1.0, created=float(i)) for i in range(7)]
    budget = policy(nodes="10%")
    cloud = packed(0.5, 7)
    assert actions(fleet, budget, plan_for=cloud) == []
    assert REPACK_MIN_SAVING < 0.5  # a half-price node is a clear saving
    [action] = disruption_actions(fleet, {"default": budget}, {"default": 0}, 1000.0, cloud,
                                  repack_min_saving=REPACK_MIN_SAVING)
    # surge replaces the first candidate only (the oldest: a shorter lifetime left) by the node for
    # all seven, protected while the next rounds' single-node deletes fill its room
    assert [n.name for n in action.nodes] == ["n0"] and action.kind == "replace"
    assert action.reason == "Underutilized" and action.protect_until == 1000.0 + PROTECT_S
    assert action.saving_per_hour == pytest.approx(7.0 - 3.5)
    # not while another disruption runs in the pool (the repack's own drain included)
    assert disruption_actions(fleet, {"default": budget}, {"default": 1}, 1000.0, cloud,
                              repack_min_saving=REPACK_MIN_SAVING) == []
    # not when the saving is below the margin: two nodes for one of the same total price
    assert disruption_actions(fleet, {"default": budget}, {"default": 0}, 1000.0, packed(1.0, 7),
                              repack_min_saving=REPACK_MIN_SAVING) == []


def test_a_repack_takes_the_largest_prefix_that_fits_one_node_and_never_its_protected_node() -> None:
    fleet = [node(f"n{i}", price=1.0, created=float(i)) for i in range(7)]
    [action] = disruption_actions(fleet, {"default": policy(nodes="10%")}, {"default": 0}, 1000.0, packed(0.5, 4),
                                  repack_min_saving=REPACK_MIN_SAVING)
    assert action.replacement is not None and action.saving_per_hour == pytest.approx(4.0 - 2.0)  # 4 of 7 fit
    # the repack's node (protected, 1 pod so far) and one old node: a single candidate, no repack
    new = node("new", price=2.0, protected=1000.0 + PROTECT_S, created=990.0)
    assert disruption_actions([new, fleet[1]], {"default": policy(nodes="10%")}, {"default": 0}, 1000.0,
                              packed(0.5, 4), repack_min_saving=REPACK_MIN_SAVING) == []
    # nodes whose pods changed within consolidateAfter are not candidates either
    fresh = [node(f"f{i}", price=1.0, changed=990.0) for i in range(7)]
    assert disruption_actions(fresh, {"default": policy(nodes="10%")}, {"default": 0}, 1000.0, packed(0.5, 4),
                              repack_min_saving=REPACK_MIN_SAVING) == []


def test_a_repack_may_replace_spot_with_spot_the_saving_is_the_whole_sets() -> None:
    fleet = [node(f"s{i}", price=0.3, capacity="spot") for i in range(5)]
    [action] = disruption_actions(fleet, {"default": policy(nodes="10%")}, {"default": 0}, 1000.0,
                                  packed(0.1, 5, "spot", 0.3), repack_min_saving=REPACK_MIN_SAVING)
    assert action.replacement is not None and action.replacement.new_nodes[0].capacity_type == "spot"
    assert action.saving_per_hour == pytest.approx(1.5 - 0.5)


def test_a_calm_fragmented_set_is_repacked_for_a_smaller_saving() -> None:
    # the constant-load test's end on on-demand: 1 + 3 + 3 pods on c6a.large + 2 × c6a.xlarge
    # (0.3825 $/h), where one m6a.2xlarge holds all 7 for 0.3456 $/h: 9.6 % less, under the margin
    # while the pods move, enough once the set has had no pod event for REPACK_CALM_S
    def fleet(changed: float) -> list[NodeView]:
        return [node("c6a-large", 1, 0.0765, changed), node("c6a-xl-1", 3, 0.153, changed),
                node("c6a-xl-2", 3, 0.153, changed)]

    def plan_for(chosen: Sequence[NodeView]) -> Plan | None:
        return one_new(0.3456) if sum(n.pods for n in chosen) == 7 else None  # the others' room is full

    now = 5000.0
    assert REPACK_CALM_MIN_SAVING < 1 - 0.3456 / 0.3825 < REPACK_MIN_SAVING
    for changed in (now - 600.0, now - REPACK_CALM_S + 1):  # pods moved within REPACK_CALM_S: kept
        assert disruption_actions(fleet(changed), {"default": policy(nodes="10%")}, {"default": 0}, now, plan_for,
                                  repack_min_saving=REPACK_MIN_SAVING) == []
    [action] = disruption_actions(fleet(now - REPACK_CALM_S), {"default": policy(nodes="10%")}, {"default": 0}, now,
                                  plan_for, repack_min_saving=REPACK_MIN_SAVING)
    assert [n.name for n in action.nodes] == ["c6a-large"] and action.kind == "replace"
    assert action.protect_until == now + PROTECT_S and action.saving_per_hour == pytest.approx(0.3825 - 0.3456)
    # one node of the set not calm (the others are): no lower margin
    mixed = fleet(now - REPACK_CALM_S)
    mixed[2] = node("c6a-xl-2", 3, 0.153, now - 60.0)
    assert disruption_actions(mixed, {"default": policy(nodes="10%")}, {"default": 0}, now, plan_for,
                              repack_min_saving=REPACK_MIN_SAVING) == []


def test_only_surge_repacks() -> None:
    from autoscaler.simulate.policy import KEDA_KARPENTER, SURGE, policy_named

    assert SURGE.repack_min_saving == (REPACK_MIN_SAVING if REPACK_ON else None)
    assert KEDA_KARPENTER.repack_min_saving is None and policy_named("surge-no-repack").repack_min_saving is None

def test_surge_right_sizes_a_mostly_empty_spot_node_but_does_not_walk_spot_prices_down() -> None:
    # surge's own rule (not Karpenter's: its gate is off, above): a spot node replaced by one cheaper
    # spot node only when that saves at least SPOT_RESIZE_MIN_SAVING of its price — a node left mostly
    # empty after a burst, which Karpenter keeps for good
    big = node("big", price=1.0, capacity="spot")
    surge = {"spot_to_spot": True, "spot_min_saving": SPOT_RESIZE_MIN_SAVING}
    assert SPOT_RESIZE_MIN_SAVING == 0.6
    small, half = one_new(0.2, "spot"), one_new(0.5, "spot")
    action = judge([big], small, **surge)  # type: ignore[arg-type]
    assert action is not None and action.kind == "replace" and action.saving_per_hour == pytest.approx(0.8)
    assert judge([big], half, **surge) is None  # type: ignore[arg-type]  # half the price: not worth a drain
    assert judge([big], one_new(0.41, "spot"), **surge) is None  # type: ignore[arg-type]  # just short of 60 %
    assert judge([big], half, spot_to_spot=True) is not None  # Karpenter's gate alone has no floor
    assert judge([big], small) is None  # and with the gate off nothing changes (the baseline)
    on_demand = node("o", price=1.0)
    assert judge([on_demand], half, **surge) is not None  # on-demand → cheaper spot: no floor
    # through the round: the single-node step replaces it; the baseline's call does not
    assert actions([big], policy(), plan_for=lambda _: small, **surge) == [(("big",), "Underutilized", "replace")]
    assert actions([big], policy(), plan_for=lambda _: half, **surge) == []
    assert actions([big], policy(), plan_for=lambda _: small) == []


def test_consolidate_after_counts_from_the_last_pod_change() -> None:
    # KARPENTER#consolidation: consolidateAfter "after a pod has been added or removed from the node"
    assert actions([node("a", changed=950.0)], policy(after=60.0), now=1000.0) == []
    assert actions([node("a", changed=940.0)], policy(after=60.0), now=1000.0) != []
    assert actions([node("e", pods=0, changed=990.0)], policy("WhenEmpty", after=60.0), now=1000.0) == []
    assert actions([node("a", changed=0.0)], policy(after=None)) == []  # consolidateAfter: Never


def test_budgets_default_to_ten_percent_and_count_nodes_already_disrupting() -> None:
    # KARPENTER#disruption-budgets: default budget nodes: 10%; "nodes being deleted" count against it
    empties = [node(f"e{i}", pods=0, changed=0.0) for i in range(20)]
    default = Disruption("WhenEmpty", 0.0)
    assert len(actions(empties, default)) == 2  # 10% of 20
    # the percentage is of every initialized node of the pool, those being disrupted included
    # (karpenter pkg/controllers/disruption/helpers.go BuildDisruptionBudgetMapping)
    assert len(actions(empties[:19], default, disrupting=1)) == 1  # 20 nodes: 2 allowed, 1 in use
    assert actions(empties[:18], default, disrupting=2) == []
    assert len(actions(empties, default, disrupting=1)) == 2  # 21 nodes: ceil(2.1) = 3 allowed, 1 in use
    assert len(actions(empties[:5], default)) == 1  # rounded up


def test_do_not_disrupt_and_protection_keep_a_node() -> None:
    # KARPENTER#pod-level-controls: karpenter.sh/do-not-disrupt blocks voluntary disruption
    assert actions([node("a", dnd=True)], policy()) == []
    assert actions([node("e", pods=0, dnd=True)], policy("WhenEmpty")) == []
    assert actions([node("e", pods=0, protected=2000.0)], policy("WhenEmpty"), now=1000.0) == []


def test_expired_nodes_go_even_past_the_budget() -> None:
    # KARPENTER#expiration: expiration is forceful; budgets do not block it
    old = [node(f"x{i}", created=0.0, expire=100.0) for i in range(3)]
    assert [r for _, r, _ in actions(old, policy(nodes="0"), now=1000.0)] == ["Expired"] * 3


def test_forecast_keep_vetoes_removals_but_not_replacements() -> None:
    nodes = [node("a")]
    assert actions(nodes, policy(), keep=lambda _: True) == []
    assert actions(nodes, policy(), plan_for=lambda _: one_new(0.2), keep=lambda _: True)[0][2] == "replace"


def test_pod_deletion_cost_ranks_the_node_consolidation_takes_first_lowest() -> None:
    # https://kubernetes.io/docs/reference/labels-annotations-taints/#pod-deletion-cost: lower goes first
    costs = deletion_costs([node("full", pods=8), node("light", pods=1), node("pinned", pods=1, dnd=True)], 0.0)
    assert costs["light"] < costs["full"] < costs["pinned"] < 0


def test_interrupted_nodes_drain_when_the_replacement_is_ready_or_before_the_reclaim() -> None:
    # https://karpenter.sh/docs/concepts/disruption/#interruption: a replacement starts on the warning;
    # the 2-minute notice bounds the wait
    assert drain_at(100.0, 150.0) == 150.0
    assert drain_at(100.0, None) == drain_at(100.0, 1e9) == 100.0 + SPOT_NOTICE_S - DRAIN_BEFORE_RECLAIM_S


# --- provisioning batches ------------------------------------------------------------------------

def test_batches_close_after_one_idle_second_or_ten_seconds() -> None:
    # https://karpenter.sh/docs/reference/settings/: BATCH_IDLE_DURATION 1s, BATCH_MAX_DURATION 10s
    assert (BATCH_IDLE_S, BATCH_MAX_S) == (1.0, 10.0)
    b = BatchWindow()
    assert not b.observe(0.0, True, True)
    assert not b.observe(0.5, True, True)
    assert b.observe(1.5, False, True)  # 1 s without new pods
    b = BatchWindow()
    assert not any(b.observe(t * 0.5, True, True) for t in range(20))  # new pods every 0.5 s …
    assert b.observe(10.0, True, True)  # … until 10 s after the batch opened
    assert not b.observe(11.0, False, True) and not b.observe(10.0 + RETRY_UNSCHEDULABLE_S - 1, False, True)
    b.observe(10.0 + RETRY_UNSCHEDULABLE_S, False, True)  # pods nothing was launched for: tried again
    assert b.observe(10.0 + RETRY_UNSCHEDULABLE_S + 1.0, False, True)
    assert not BatchWindow().observe(5.0, False, False)


# --- the operator's reaction path ----------------------------------------------------------------

def test_objects_are_due_every_polling_interval_without_bursting_when_behind() -> None:
    # https://keda.sh/docs/2.x/reference/scaledobject-spec/#pollinginterval (default 30 s)
    assert next_due(0.0, 30.0, 0.2, False) == 30.0
    assert next_due(0.0, 30.0, 95.0, False) == 95.0  # behind: start again from now
    assert next_due(0.0, 30.0, 0.2, True) == pytest.approx(0.2 + WAKE_COALESCE_S)  # a change came meanwhile
    assert on_change(30.0, 10.0) == pytest.approx(10.0 + WAKE_COALESCE_S)
    assert on_change(10.01, 10.0) == 10.01


def test_cheap_lag_triggers_are_watched_every_second_others_polled() -> None:
    assert watch_interval(["kafka"]) == LAG_WATCH_S
    assert watch_interval(["kafka", "aws-sqs-queue"]) == LAG_WATCH_S
    assert watch_interval(["kafka", "cpu"]) is None
    assert watch_interval(["kafka", "cron"]) == LAG_WATCH_S  # a cron read is the clock: no I/O
    assert watch_interval(["cron"]) is None  # no lag to watch
    assert watch_interval([]) is None
    assert next_due(0.0, 30.0, 0.2, False, LAG_WATCH_S) == 1.0


# --- the simulated Kubernetes --------------------------------------------------------------------

def _cluster(fills: list[tuple[int, int]]) -> Cluster:
    c = Cluster(pod_start_s=0.0)
    for slots, pods in fills:
        n = c.launch("m5.large", "on-demand", "a", "default", 1.0, 1.0, slots, 0.0, 0.0)
        c.unbound += pods
        c._start(n, pods, 0.0)
        c.unbound -= pods
    c.advance(0.0)
    return c


def test_replicaset_scale_down_takes_unscheduled_then_starting_then_doubled_up_pods() -> None:
    # https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#scaling-a-replicaset
    c = _cluster([(4, 1), (4, 3)])
    c.unbound = 1
    c.set_replicas(4, 10.0)  # 5 pods → 4: the Pending one goes
    assert c.unbound == 0 and [n.pods for n in c.nodes.values()] == [1, 3]
    c.set_replicas(3, 10.0)  # then the node holding more of the replicas loses one
    assert [n.pods for n in c.nodes.values()] == [1, 2]
    c.deletion_cost = {0: -2, 1: -1}  # unless the pod-deletion-cost says otherwise
    c.set_replicas(2, 10.0)
    assert [n.pods for n in c.nodes.values()] == [0, 2]


def test_scheduler_spreads_onto_the_least_allocated_ready_node() -> None:
    # https://kubernetes.io/docs/concepts/scheduling-eviction/resource-bin-packing/ (LeastAllocated default)
    c = _cluster([(4, 3), (4, 0)])
    c.unbound = 2
    c.schedule(1.0)
    assert sorted(n.pods for n in c.nodes.values()) == [2, 3]


def test_least_allocated_is_the_mean_of_the_cpu_and_memory_fractions_not_the_pod_count() -> None:
    # kube-scheduler's NodeResourcesFit scores LeastAllocated by the requested fraction of CPU and of
    # memory, weight 1 each (https://kubernetes.io/docs/reference/scheduling/config/#scheduling-plugins)
    c = Cluster(pod_start_s=0.0)
    small = c.launch("c6a.large", "on-demand", "a", "default", 1.0, 1.0, 4, 0.0, 0.0, score=(0.0, 0.2))
    big = c.launch("m6a.4xlarge", "on-demand", "a", "default", 1.0, 1.0, 4, 0.0, 0.0, score=(0.0, 0.05))
    for n, pods in ((small, 1), (big, 2)):
        c.unbound += pods
        c._start(n, pods, 0.0)
        c.unbound -= pods
    c.unbound = 1
    c.schedule(1.0)  # by pod count the small node (1 of 4) would win; by requested fractions the big one
    assert (small.pods, big.pods) == (1, 3)


def test_existing_nodes_take_no_more_pods_than_there_are() -> None:
    # found by the differential test: each existing node was offered all the pods at once, so a
    # consolidation over many nodes planned more pods than it moved (and _render ran out of names)
    from provisioner.catalog import load_catalog
    from provisioner.nodepool import NodePool
    from provisioner.plan import make_plan
    from provisioner.pods import PodGroup
    from provisioner.problem import ExistingNode
    from provisioner.resources import Resources

    pool = NodePool.model_validate({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "d"},
                                    "spec": {"template": {"spec": {"requirements": []}}}})
    group = PodGroup("g", 3, Resources(1000, 1024, 0, 1), pod_names=("a/1", "a/2", "a/3"))
    room = [ExistingNode(f"n{i}", {"karpenter.sh/nodepool": "d"}, Resources(8000, 16384, 0, 50)) for i in range(4)]
    plan = make_plan([group], [pool], load_catalog(("us-east-1a",)), room)
    assert sorted(p for n in plan.nodes for p in n.pods) == ["a/1", "a/2", "a/3"] and not plan.new_nodes
