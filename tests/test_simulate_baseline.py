"""The keda-karpenter baseline's world rules, one test each, citing what they follow.

The simulator models Kubernetes itself (ReplicaSet, scheduler) and runs the shared decision code
for KEDA's executor, the HPA and Karpenter's disruption; these tests pin the Kubernetes rules the
baseline's churn depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from autoscaler.simulate.cluster import Cluster, Node
from autoscaler.simulate.inputs import build_setup
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import PolicyResult, simulate
from provisioner.disruption import VALIDATION_S, Action, disruption_actions, disruption_cost, revalidate
from provisioner.plan import Plan
from provisioner.provisioning import Disruption, NodeView
from tests.test_simulate import files, flat, run, step_trace


def cluster_with(*nodes: tuple[float, list[float]], now: float, pod_start_s: float = 10.0) -> Cluster:
    """Nodes as (ready_at, ready times of their pods); a pod ready after `now` is still starting."""
    c = Cluster(pod_start_s)
    for ready_at, pods in nodes:
        n = c.launch("m", "on-demand", "z", "p", 1.0, 1.0, 10, now=ready_at - 40, boot_s=40)
        for t in pods:
            c._start(n, 1, t - pod_start_s)
        c.advance(now)
    return c


def counts(c: Cluster) -> list[int]:
    return [c.nodes[i].pods for i in sorted(c.nodes)]


def test_replicaset_scale_down_follows_kubernetes_pod_ranking() -> None:
    # kubernetes pkg/controller/controller_utils.go ActivePodsWithRanks.Less, ranks from
    # pkg/controller/replicaset/replica_set.go getPodsRankedByRelatedPodsOnSameNode:
    # unassigned < assigned; not ready < ready; higher rank (pods on the same node) first; then
    # the more recently ready first, in log2 buckets of age (LogarithmicScaleDown).
    now = 10_000.0
    c = cluster_with(
        (0.0, [9_000.0, 9_000.0]),        # node 0: old node, its 2 pods moved here recently
        (5_000.0, [5_100.0, 5_100.0]),    # node 1: newer node, 2 pods ready long ago
        (1_000.0, [2_000.0] * 3),         # node 2: 3 pods (highest rank), old
        (now + 30, [now + 70]),           # node 3: still booting, 1 pod nominated (no nodeName yet)
        (0.0, [9_990.0, now + 5]),        # node 4: one ready, one starting (not ready)
        now=now)
    assert counts(c) == [2, 2, 3, 1, 2]
    c._delete(1, now)
    assert counts(c) == [2, 2, 3, 0, 2], "the nominated pod is unassigned: deleted first"
    c._delete(1, now)
    assert counts(c) == [2, 2, 3, 0, 1], "then the pod that is not ready yet"
    c._delete(3, now)
    assert counts(c) == [2, 2, 0, 0, 1], "then the 3 pods doubled up on node 2 (rank 3)"
    c._delete(2, now)
    # rank 2 on nodes 0 and 1: node 0's pods became ready 1000 s ago, node 1's 4900 s ago —
    # different log2 buckets, so the more recently ready (on the OLDER node) go first
    assert counts(c) == [0, 2, 0, 0, 1]
    assert c.ready_pods == sum(n.ready for n in c.nodes.values()) == 3


def test_replicaset_ties_in_the_same_age_bucket_do_not_follow_node_age() -> None:
    # Same rank, ready times in the same log2 bucket: Kubernetes compares UIDs (pseudo-random),
    # so neither the node's age nor its id decides; the order is stable run to run.
    now = 10_000.0
    outcomes = []
    for _ in range(2):
        c = cluster_with((0.0, [9_000.0]), (5_000.0, [9_001.0]), now=now)
        c._delete(1, now)
        outcomes.append(counts(c))
    assert sorted(outcomes[0]) == [0, 1] and outcomes[0] == outcomes[1]


def test_node_ready_count_is_its_ready_pods() -> None:
    n = Node(0, "m", "on-demand", "z", "p", 1.0, 1.0, 4, 0.0, 0.0, ready_times=[1.0, 2.0], starting=[5.0])
    assert (n.ready, n.pods, n.free) == (2, 3, 1)


# --- Karpenter's command validation ------------------------------------------------------------

def view(name: str, pods: int, changed: float, price: float = 1.0, pool: str = "p") -> NodeView:
    return NodeView(name, name, pool, price, pods, changed if pods == 0 else None, False, None, 0.0, None,
                    "on-demand", changed)


def test_karpenter_revalidates_a_command_after_15_seconds_and_drops_what_changed() -> None:
    # kubernetes-sigs/karpenter pkg/controllers/disruption/consolidation.go commandValidationDelay = 15 s;
    # validation.go: emptiness keeps the candidates still empty and consolidatable; consolidation
    # drops the whole command if a candidate is no longer consolidatable (a pod event within
    # consolidateAfter) or the re-simulation gives another decision
    assert VALIDATION_S == 15.0
    pools = {"p": Disruption(consolidate_after_s=60.0)}
    now = 1000.0
    empty = Action((view("a", 0, 900.0), view("b", 0, 900.0)), "Empty")
    fits: Callable[[Sequence[NodeView]], Plan | None] = lambda _: Plan([], 0.0, 0.0)  # noqa: E731
    # "b" got a pod during the wait: only "a" is still removed
    still = revalidate(empty, [view("a", 0, 900.0), view("b", 1, now - 5)], pools, {}, now, fits)
    assert still is not None and [n.name for n in still.nodes] == ["a"]
    # gone altogether (drained by another path): nothing
    assert revalidate(empty, [], pools, {}, now, fits) is None

    under = Action((view("c", 3, 800.0),), "Underutilized", None, 1.0)
    others = [view("d", 2, 800.0)]
    assert revalidate(under, [view("c", 3, 800.0), *others], pools, {}, now, fits) is not None
    # a pod was bound to "c" 5 s ago: not consolidatable any more, the command is dropped
    assert revalidate(under, [view("c", 4, now - 5), *others], pools, {}, now, fits) is None
    # the pods no longer fit on the other nodes (the re-simulation needs a node): a delete is dropped
    needs_node: Callable[[Sequence[NodeView]], Plan | None] = lambda _: None  # noqa: E731
    assert revalidate(under, [view("c", 3, 800.0), *others], pools, {}, now, needs_node) is None
    # the budget filled up meanwhile (default 10 % of 3 nodes = 1, and 1 is already being disrupted)
    assert revalidate(under, [view("c", 3, 800.0), *others], pools, {"p": 1}, now, fits) is None
    # expiry and drift are not validated
    expired = Action((view("e", 1, 0.0),), "Expired")
    assert revalidate(expired, [], pools, {}, now, fits) is expired


def test_keda_karpenter_removes_an_empty_node_15_seconds_after_deciding_to(tmp_path: Path) -> None:
    # the node empties when KEDA scales to zero; consolidateAfter 1m (the test NodePool) makes it
    # an emptiness candidate, Karpenter's disruption loop (every 10 s) finds it and acts 15 s later;
    # surge's live provisioner has no validation wait (surge-no-handover: the same emptiness rules; with
    # handover, the burst the interpolated step edge brings leaves several nodes emptying at different times)
    trace = step_trace(minutes_after=20)
    ends = {}
    for policy in ("keda-karpenter", "surge-no-handover"):
        r = run(tmp_path, trace, policy)
        emptied = next(t for t, a, b in zip(r.series.t[1:], r.series.replicas, r.series.replicas[1:], strict=False)
                       if a > 0 and b == 0)
        gone = [n.terminated_at - emptied for n in r.nodes if n.terminated_at is not None and n.terminated_at > emptied]
        assert len(gone) == 1 and not r.series.nodes[-1], gone
        ends[policy] = gone[0]
    assert 60 + 15 <= ends["keda-karpenter"] < 60 + 15 + 10 + 5
    assert 60 <= ends["surge-no-handover"] < 60 + 10 + 5


# --- the sanity properties, in the strongest form real KEDA + HPA + Karpenter satisfy -----------

def run_flat(tmp: Path, capacity: str, consolidation: str = "WhenEmptyOrUnderutilized") -> PolicyResult:
    paths = files(tmp, capacity=capacity)
    paths["np"].write_text(paths["np"].read_text().replace("WhenEmptyOrUnderutilized", consolidation))
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    return simulate(flat(3), setup, policy_named("keda-karpenter"), a)


def evictions(r: PolicyResult) -> list[float]:
    """Ticks where ready pods dropped while the replicas did not: pods evicted by a drain."""
    s = r.series
    return [t for t, r0, r1, p0, p1 in zip(s.t[1:], s.replicas, s.replicas[1:], s.ready, s.ready[1:], strict=False)
            if r1 >= r0 and p1 < p0]


def test_keda_karpenter_churn_on_a_constant_load_starts_only_at_consolidation_evictions(tmp_path: Path) -> None:
    # The loop docs/simulator.md "Known loop" describes, rule by rule real: a WhenEmptyOrUnderutilized
    # consolidation deletes a node whose pods fit elsewhere (karpenter.sh/docs/concepts/disruption/
    # #consolidation), evicting them (break before make); their replacements start pod_start_s later
    # while the lag grows; the HPA answers the lag at its next sync (AverageValue, up to
    # max(4 pods, 100 %) per 15 s) and scales down 300 s later (stabilization window), which leaves
    # a node whose pods fit on another: the next consolidation. The autoscaling alone is calm:
    # every scale-up after warm-up follows an eviction, and the SLO holds.
    r = run_flat(tmp_path, "on-demand")
    warm = 3600.0
    evicted = evictions(r)
    ups = [t for t, a, b in zip(r.series.t[1:], r.series.replicas, r.series.replicas[1:], strict=False)
           if t > warm and b > a]
    assert ups and any(t > warm for t in evicted), "the loop is KEDA + Karpenter's real behaviour here"
    unexplained = [t for t in ups if not any(0 <= t - e <= 60 for e in evicted)]
    assert not unexplained, unexplained
    assert r.slo_violation_minutes <= 5


@pytest.mark.parametrize("capacity", ["on-demand", "spot, on-demand"])
def test_keda_karpenter_is_calm_on_a_constant_load_when_consolidation_evicts_nothing(
        tmp_path: Path, capacity: str) -> None:
    # consolidationPolicy WhenEmpty only removes empty nodes (no eviction): KEDA + the HPA alone
    # keep a constant load's replicas, and no node is launched once warm
    r = run_flat(tmp_path, capacity, "WhenEmpty")
    warm = 3600.0
    changes = [t for t, a, b in zip(r.series.t[1:], r.series.replicas, r.series.replicas[1:], strict=False)
               if t > warm and a != b]
    assert len(changes) <= 1 and not [n for n in r.nodes if n.launched_at > warm], changes
    assert r.pod_moves == 0 and r.slo_violation_minutes <= 5


def test_keda_karpenter_on_spot_keeps_its_oversized_node_as_karpenter_does(tmp_path: Path) -> None:
    # On spot, consolidation ends on a node larger than the load needs and keeps it: replacing spot
    # with cheaper spot is behind the SpotToSpotConsolidation feature gate, off by default
    # (https://karpenter.sh/docs/reference/settings/#feature-gates), and no cheaper on-demand node
    # exists. So the run is calm, but costs more than static-peak's spot packing; it still costs no
    # more than a static on-demand fleet.
    r = run_flat(tmp_path, "spot, on-demand")
    warm = 3600.0
    changes = [t for t, a, b in zip(r.series.t[1:], r.series.replicas, r.series.replicas[1:], strict=False)
               if t > warm and a != b]
    assert len(changes) <= 1 and not [n for n in r.nodes if n.launched_at > warm], changes
    assert r.slo_violation_minutes <= 5
    kept = [n for n in r.nodes if n.terminated_at is None]
    assert kept and all(n.capacity_type == "spot" for n in kept)
    assert sum(n.slots for n in kept) > r.series.replicas[-1], "an oversized spot node is kept"
    paths = files(tmp_path, capacity="spot, on-demand")
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    static = simulate(flat(3), setup, policy_named("static-peak"), a)
    on_demand = simulate(flat(3), setup, policy_named("static-peak-on-demand"), a)
    per_hour = sum(n.price for n in kept)
    assert per_hour > static.cost_usd / (static.span_s / 3600) * 1.02
    assert per_hour <= on_demand.cost_usd / (on_demand.span_s / 3600)


def test_karpenter_consolidates_the_cheapest_to_disrupt_first_older_nodes_before_younger() -> None:
    # kubernetes-sigs/karpenter consolidation.go sortCandidates: by DisruptionCost = ReschedulingCost
    # (1 per plain pod) × LifetimeRemaining (the fraction of expireAfter left), pkg/utils/disruption
    month = 720 * 3600.0
    pools = {"p": Disruption(consolidate_after_s=60.0)}  # default budget 10 %: one node of these at a time
    fits: Callable[[Sequence[NodeView]], Plan | None] = lambda _: Plan([], 0.0, 0.0)  # noqa: E731

    def node(name: str, pods: int, created: float, price: float) -> NodeView:
        return NodeView(name, name, "p", price, pods, None, False, None, created, month, "on-demand", 0.0)

    now = 100 * 3600.0
    young_dear, old_cheap = node("a", 3, 90 * 3600.0, 2.0), node("b", 3, 0.0, 1.0)
    assert disruption_cost(old_cheap, now) < disruption_cost(young_dear, now) == 3 * (1 - 10 * 3600 / month)
    actions = disruption_actions([young_dear, old_cheap], pools, {}, now, fits)
    assert [n.name for a in actions for n in a.nodes] == ["b"]
    # a fuller node near its expiry is cheaper to disrupt than a fresh one with one pod
    later = 600 * 3600.0
    near_expiry, fresh = node("c", 4, 0.0, 1.0), node("d", 1, later - 3600.0, 1.0)
    assert disruption_cost(near_expiry, later) < disruption_cost(fresh, later)
    actions = disruption_actions([fresh, near_expiry], pools, {}, later, fits)
    assert [n.name for a in actions for n in a.nodes] == ["c"]


def test_an_evicted_pod_is_replaced_at_once_and_serves_again_after_pod_start() -> None:
    # Karpenter's termination controller evicts the node's pods (karpenter.sh/docs/concepts/
    # disruption/#termination-controller); an evicted pod stops serving on SIGTERM and the
    # ReplicaSet creates its replacement at once (it no longer counts a terminating pod), which
    # the scheduler binds to free room and which is ready pod_start_s later
    # (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination)
    now = 1000.0
    c = cluster_with((0.0, [100.0] * 3), (0.0, []), now=now)
    drained, room = c.nodes[0], c.nodes[1]
    c.move_pods(drained, [], now)
    c.terminate(drained, now)
    assert c.ready_pods == 0 and c.unbound == 3 and c.pods == 3
    c.schedule(now)
    assert c.unbound == 0 and room.starting == [now + 10.0] * 3
    c.advance(now + 9.9)
    assert c.ready_pods == 0
    c.advance(now + 10.0)
    assert c.ready_pods == 3 and room.ready_times == [now + 10.0] * 3
