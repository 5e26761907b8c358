"""The provisioning controller's pure decisions: pending pods, batching, NodeClaims from a plan,
offerings of a NodeClaim, the NodeClaim lifecycle and disruption choices."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from provisioner.catalog import load_catalog
from provisioner.nodepool import NodePool
from provisioner.plan import make_plan
from provisioner.provisioning import (
    LAUNCH_TIMEOUT_S,
    NOMINATED,
    REGISTRATION_TIMEOUT_S,
    BatchWindow,
    Disruption,
    NodeView,
    Reservation,
    claim_step,
    disruption_order,
    existing_capacity,
    is_provisionable,
    nodeclaims_for,
    offerings_for,
    parse_duration,
    pending_groups,
    pod_event,
    pod_requests,
    reservation_holds,
    reserved_pods,
)

POOL = NodePool.model_validate(yaml.safe_load("""
metadata: {name: default}
spec:
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
      requirements:
        - {key: karpenter.k8s.aws/instance-category, operator: In, values: [c, m]}
        - {key: kubernetes.io/arch, operator: In, values: [amd64]}
        - {key: karpenter.sh/capacity-type, operator: In, values: [spot, on-demand]}
      expireAfter: 720h
  disruption: {consolidationPolicy: WhenEmpty, consolidateAfter: 30s, budgets: [{nodes: "20%"}]}
"""))


def pod(name: str, cpu: str = "500m", mem: str = "1Gi", *, pending: bool = True, node: str = "",
        daemonset: bool = False) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "labels": {"app": "w"}}
    if daemonset:
        meta["ownerReferences"] = [{"kind": "DaemonSet", "name": "agent"}]
    status: dict = {"phase": "Pending" if not node else "Running"}
    if pending:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    spec: dict = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": status}


def test_only_unschedulable_non_daemonset_pods_wait_for_capacity() -> None:
    pods = [pod("a"), pod("b"), pod("c", cpu="2"), pod("d", daemonset=True), pod("e", node="n1", pending=False),
            pod("f", pending=False)]
    assert [is_provisionable(p) for p in pods] == [True, True, True, False, False, False]
    groups = pending_groups(pods, exclude={"ns/b"})
    assert sorted((g.count, g.requests.cpu_m) for g in groups) == [(1, 500), (1, 2000)]
    assert sorted(n for g in groups for n in g.names()) == ["ns/a", "ns/c"]


def test_a_reservation_covers_unbound_pods_until_they_bind_or_its_claims_are_usable_or_fail() -> None:
    """Karpenter does not plan a pod nominated to an in-flight NodeClaim again until it binds or
    the claim fails: bound pods never use up a reservation (they waited for nothing)."""
    r = Reservation("ns", {"app": "w"}, 2, ("c1", "c2"), until=300.0)
    pods = {f"ns/{n}": p for n, p in [("a", pod("a", node="n1", pending=False)), ("b", pod("b")), ("c", pod("c")),
                                      ("d", pod("d")), ("x", pod("x") | {"metadata": {"name": "x", "namespace": "ns",
                                                                                      "labels": {"app": "other"}}})]}
    assert reserved_pods(pods, [r]) == {"ns/b", "ns/c"}  # a is bound, x is another workload's
    assert reserved_pods(pods, [r], taken={"ns/b"}) == {"ns/c", "ns/d"}  # b is nominated to a claim already
    assert reserved_pods(pods, [r, dataclasses.replace(r, count=1)]) == {"ns/b", "ns/c", "ns/d"}  # each pod once
    assert reservation_holds(r, {"c1": True, "c2": False}, 100.0)  # c2 still on its way
    assert not reservation_holds(r, {"c1": True, "c2": True}, 100.0)  # both usable: the pods bind now
    assert not reservation_holds(r, {"c1": True}, 100.0)  # c2 failed (gone), c1 usable
    assert not reservation_holds(r, {"c1": False, "c2": False}, 300.0)  # held as long as the protection


def test_pod_events_restart_consolidate_after_as_karpenters_podevents() -> None:
    """A pod bound counts from its PodScheduled transition, a pod going away from now; DaemonSet
    pods and unchanged pods do not count (Karpenter's nodeclaim.podevents controller)."""
    bound = pod("a", node="n1", pending=False)
    bound["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                      "lastTransitionTime": "1970-01-01T00:01:40Z"}]
    assert pod_event(pod("a"), bound, 500.0) == ("n1", 100.0)  # bound at 100 s
    assert pod_event(None, bound, 500.0) == ("n1", 100.0)  # a restart's list: the binding's time, not now
    assert pod_event(bound, bound, 500.0) is None  # a status update of a running pod
    terminating = bound | {"metadata": {**bound["metadata"], "deletionTimestamp": "1970-01-01T00:08:00Z"}}
    assert pod_event(bound, terminating, 500.0) == ("n1", 500.0)
    assert pod_event(bound, None, 500.0) == ("n1", 500.0)  # deleted
    assert pod_event(bound, bound | {"status": {"phase": "Succeeded"}}, 500.0) == ("n1", 500.0)
    assert pod_event(None, pod("d", node="n1", pending=False, daemonset=True), 500.0) is None
    assert pod_event(None, pod("b"), 500.0) is None  # pending: no node yet
    assert pod_event(None, pod("c", node="n2", pending=False), 500.0) == ("n2", 500.0)  # no condition: seen now
    odd = pod("o", node="n3", pending=False) | {"status": None}
    assert pod_event(None, odd, 500.0) == ("n3", 500.0)  # admitted but odd: never an error


def test_batch_closes_after_one_idle_second_or_ten_seconds() -> None:
    w = BatchWindow()
    assert not w.due(0.0) and w.wait_s(0.0) is None
    w.add(0.0)
    assert not w.due(0.5) and w.due(1.0)
    w.reset()
    for t in range(0, 10):  # a pod every 0.9 s keeps it open, but not past 10 s
        w.add(t * 0.9)
        assert not w.due(t * 0.9 + 0.05)
    assert w.due(10.0)


def test_plan_becomes_nodeclaims_with_flexible_types_and_nominated_pods() -> None:
    catalog = load_catalog(spot_prices={("m5.large", "us-east-1a"): 0.03, ("c5.xlarge", "us-east-1a"): 0.05})
    pods = [pod(f"p{i}") for i in range(3)]
    plan = make_plan(pending_groups(pods), [POOL], catalog)
    assert plan.new_nodes
    requests = {f"ns/p{i}": pod_requests(p) for i, p in enumerate(pods)}
    claims = nodeclaims_for(plan, {"default": POOL}, catalog, requests, [f"default-{i}" for i in range(9)])
    assert len(claims) == len(plan.new_nodes)
    claim = claims[0]
    reqs = {r["key"]: r for r in claim["spec"]["requirements"]}
    types = reqs["node.kubernetes.io/instance-type"]["values"]
    assert types[0] == plan.new_nodes[0].instance_type and 1 < len(types) <= 60
    assert all(t.split(".")[0][0] in "cm" for t in types)  # the pool's categories only
    import json

    nominated = [p for c in claims for p in json.loads(c["metadata"]["annotations"][NOMINATED])]
    assert sorted(nominated) == sorted(requests)
    assert claim["spec"]["expireAfter"] == "720h" and claim["metadata"]["labels"]["karpenter.sh/nodepool"] == "default"
    offers = offerings_for(claim, catalog)
    assert offers and {o.instance_type for o in offers} <= set(types)
    assert {o.zone for o in offers} == {plan.new_nodes[0].zone}


def test_existing_nodes_offer_their_free_room() -> None:
    node = {"metadata": {"name": "n1", "labels": {"x": "y"}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"}},
            "spec": {"taints": [{"key": "karpenter.sh/unregistered", "effect": "NoExecute"}]}}
    cordoned = {"metadata": {"name": "n2"}, "spec": {"unschedulable": True},
                "status": {"allocatable": {"cpu": "8", "memory": "8Gi"}}}
    [free] = existing_capacity([node, cordoned], [pod("a", cpu="1500m", node="n1", pending=False)])
    assert (free.name, free.free.cpu_m, free.free.memory_mib, free.free.pods) == ("n1", 500, 3072, 9)
    assert free.taints == ()


def test_nodeclaim_lifecycle_and_timeouts() -> None:
    claim: dict = {"spec": {"startupTaints": [{"key": "cni-not-ready", "effect": "NoSchedule"}]}, "status": {}}
    assert claim_step(claim, None, 0, None, 10).action == "launch"
    assert claim_step(claim, None, 0, None, LAUNCH_TIMEOUT_S + 1).action == "delete"
    claim["status"] = {"providerID": "aws:///us-east-1a/i-1"}
    assert claim_step(claim, None, 0, 5, 100).action == "wait"
    assert "RegistrationTimeout" in claim_step(claim, None, 0, 5, 5 + REGISTRATION_TIMEOUT_S + 1).reason
    node: dict = {"spec": {"taints": [{"key": "karpenter.sh/unregistered", "effect": "NoExecute"},
                                      {"key": "cni-not-ready", "effect": "NoSchedule"}]},
                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert claim_step(claim, node, 0, 5, 100).action == "register"
    claim["status"]["conditions"] = [{"type": "Registered", "status": "True"}]
    node["spec"]["taints"] = [{"key": "cni-not-ready", "effect": "NoSchedule"}]
    assert claim_step(claim, node, 0, 5, 100).action == "none"  # startup taint still on
    node["spec"]["taints"] = []
    assert claim_step(claim, node, 0, 5, 100).action == "initialize"


def test_durations() -> None:
    assert parse_duration("1h30m", None) == 5400 and parse_duration("Never", 1) is None
    assert parse_duration(None, 7.0) == 7.0
    with pytest.raises(ValueError, match=r"expected e\.g\. 30s"):
        parse_duration("soon", None)


def view(name: str, *, pods: int = 0, empty_since: float | None = 0.0, price: float = 1.0, dnd: bool = False,
         protected: float | None = None, created: float = 0.0, expire: float | None = None) -> NodeView:
    return NodeView(name, name, "default", price, pods, empty_since, dnd, protected, created, expire)


def test_disruption_respects_consolidate_after_budgets_and_protection() -> None:
    policy = {"default": Disruption.of(POOL)}
    assert (policy["default"].policy, policy["default"].consolidate_after_s) == ("WhenEmpty", 30.0)
    assert [b.nodes for b in policy["default"].budgets] == ["20%"]
    nodes = [view("busy", pods=3, empty_since=None), view("fresh", empty_since=100.0),
             view("cheap", price=0.1), view("dear", price=2.0), view("pinned", dnd=True),
             view("kept", protected=500.0)]
    picks = disruption_order(nodes, policy, {}, now=110.0)
    # 20 % of 6 nodes → 2 may go: the most expensive empty ones past 30 s
    assert [(n.name, why) for n, why in picks] == [("dear", "Empty"), ("cheap", "Empty")]
    assert disruption_order(nodes, policy, {"default": 2}, now=110.0) == []  # budget already used
    old = [view("old", pods=5, empty_since=None, created=0.0, expire=100.0), view("young", pods=5, empty_since=None)]
    assert [(n.name, why) for n, why in disruption_order(old, policy, {}, now=200.0)] == [("old", "Expired")]


def test_consolidation_simulates_rescheduling_first() -> None:
    from provisioner.problem import ExistingNode
    from provisioner.provisioning import consolidation_move
    from provisioner.resources import Resources

    catalog = load_catalog(("us-east-1a",))
    small = [pod("s1", cpu="500m", node="n1", pending=False), pod("s2", cpu="500m", node="n1", pending=False)]
    roomy = [ExistingNode("n2", {"karpenter.sh/nodepool": "default", "kubernetes.io/arch": "amd64"},
                          Resources(4000, 8192, 0, 50))]
    move = consolidation_move(small, roomy, [POOL], catalog, price=0.4)
    assert move is not None and move.action == "delete" and move.saving_per_hour == 0.4
    move = consolidation_move(small, [], [POOL], catalog, price=0.4)  # nowhere to go: one cheaper node
    assert move is not None and move.action == "replace"
    assert move.plan.new_nodes[0].price_per_hour < 0.4 and move.saving_per_hour > 0
    assert consolidation_move(small, [], [POOL], catalog, price=0.01) is None  # nothing cheaper exists
    huge = [pod("h", cpu="500", node="n1", pending=False)]
    assert consolidation_move(huge, [], [POOL], catalog, price=5.0) is None  # cannot be placed anywhere


def test_limits_count_the_nodes_a_pool_already_has() -> None:
    from provisioner.provisioning import with_remaining_limits
    from provisioner.resources import Resources

    limited = POOL.model_copy(update={"spec": POOL.spec.model_copy(update={"limits": {"cpu": "10"}})})
    left = with_remaining_limits(limited, Resources(8000, 16384, 0, 0))
    assert left.spec.limits == {"cpu": "2000m"} and left.limit().cpu_m == 2000  # type: ignore[union-attr]
    catalog = load_catalog(("us-east-1a",))
    plan = make_plan(pending_groups([pod("big", cpu="3")]), [left], catalog)
    assert plan.new_nodes == [] and "limits" in plan.unschedulable[0]["reason"]
    assert with_remaining_limits(POOL, Resources(8000, 0, 0, 0)) is POOL  # no limits: unchanged


def test_scheduled_budgets_and_reasons() -> None:
    from datetime import UTC, datetime

    from provisioner.provisioning import Budget

    pool = NodePool.model_validate({"metadata": {"name": "p"}, "spec": {"disruption": {"budgets": [
        {"nodes": "100%"},
        {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h"},  # office hours: nothing moves
        {"nodes": "1", "reasons": ["Underutilized"]}]}}})
    d = Disruption.of(pool)
    assert d.budgets[1] == Budget("0", "0 9 * * mon-fri", 8 * 3600.0, None)
    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()
    monday_18 = datetime(2026, 11, 30, 18, 0, tzinfo=UTC).timestamp()
    sunday_10 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC).timestamp()
    assert d.allowed(10, 0, "Empty", monday_10) == 0  # the schedule's window is on
    assert d.allowed(10, 0, "Empty", monday_18) == 10  # after its 8 h, only 100 % holds
    assert d.allowed(10, 0, "Empty", sunday_10) == 10
    assert d.allowed(10, 0, "Underutilized", sunday_10) == 1  # the reason-specific budget
    expired = [view("old", pods=5, empty_since=None, created=0.0, expire=10.0)]
    assert disruption_order(expired, {"default": d}, {}, monday_10)  # expiry is not held by budgets


def test_bad_budget_schedules_and_durations_name_the_field() -> None:
    bad = NodePool.model_validate({"metadata": {"name": "p"}, "spec": {"disruption": {"budgets": [
        {"nodes": "0", "schedule": "every monday", "duration": "1h"}]}}})
    with pytest.raises(ValueError, match=r"budgets\[0\]\.schedule: 'every monday' is not a cron expression"):
        Disruption.of(bad)
    late = NodePool.model_validate({"metadata": {"name": "p"}, "spec": {"disruption": {"consolidateAfter": "soon"}}})
    with pytest.raises(ValueError, match=r"spec\.disruption\.consolidateAfter: invalid duration 'soon'"):
        Disruption.of(late)


def test_nodeclaim_requirements_are_nodepool_and_pods_and_spot_falls_back_to_on_demand() -> None:
    """An amd64 pod's claim lists amd64 types only, cheapest after the planned one; a pool that
    allows on-demand gets it as the spot fallback even with other requirements (the old `_allows`
    checked every key against a capacity-type-only label set and never allowed it)."""
    import dataclasses

    from provisioner.pods import group_from_pod_spec
    from provisioner.provisioning import requirements_by_pod

    catalog = load_catalog(spot_prices={(t.name, z): round(t.offerings[0].price * 0.4, 5)
                                        for t in load_catalog() for z in ("us-east-1a", "us-east-1b", "us-east-1c")})
    pool = NodePool.model_validate({"metadata": {"name": "mixed"}, "spec": {"template": {"spec": {"requirements": [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
        {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r", "t"]}]}}}})
    spec = {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
            "nodeSelector": {"kubernetes.io/arch": "amd64"}}
    group = dataclasses.replace(group_from_pod_spec("web", 3, spec, {"app": "web"}),
                                pod_names=("d/web-0", "d/web-1", "d/web-2"))
    plan = make_plan([group], [pool], catalog)
    requests = {n: group.requests for n in group.names()}
    [claim, *_] = nodeclaims_for(plan, {"mixed": pool}, catalog, requests, ["c-0", "c-1", "c-2"],
                                 requirements_of=requirements_by_pod([group]))
    reqs = {r["key"]: r for r in claim["spec"]["requirements"]}
    by_name = {t.name: t for t in catalog}
    types = reqs["node.kubernetes.io/instance-type"]["values"]
    assert all(by_name[t].architecture == "amd64" for t in types) and len(types) > 1
    assert reqs["kubernetes.io/arch"]["values"] == ["amd64"]
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["spot", "on-demand"]
    zone = reqs["topology.kubernetes.io/zone"]["values"][0]
    prices = [min(o.price for o in by_name[t].offerings if o.zone == zone and o.capacity_type in ("spot", "on-demand"))
              for t in types[1:]]
    assert prices == sorted(prices)  # flexibility cheapest first after the planned type


def test_daemonset_overhead_from_running_daemonset_pods() -> None:
    from provisioner.provisioning import daemonset_overhead_of

    def ds_pod(owner: str, node: str, cpu: str) -> dict[str, Any]:
        return {"metadata": {"name": f"{owner}-{node}", "ownerReferences": [{"kind": "DaemonSet", "uid": owner}]},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}

    pods = [ds_pod("agent", "n1", "100m"), ds_pod("agent", "n2", "100m"), ds_pod("logs", "n1", "250m")]
    assert daemonset_overhead_of(pods).cpu_m == 350  # once per DaemonSet, not per node


async def test_spot_prices_are_refreshed_on_schedule() -> None:
    """The controller reads spot prices again every 12 h (SPOT_REFRESH_S), not only at start-up;
    a failed read keeps the last prices."""
    from provisioner.cloud.simulated import SimulatedProvider
    from provisioner.controller import SPOT_REFRESH_S, ProvisioningController

    class Cloud(SimulatedProvider):
        def __init__(self) -> None:
            super().__init__(clock=lambda: now[0])
            self.calls, self.fail = 0, False

        async def spot_prices(self, names: list[str]) -> dict[tuple[str, str], float]:
            self.calls += 1
            if self.fail:
                raise RuntimeError("throttled")
            return {("m5.large", "us-east-1a"): 0.01 * self.calls}

    now = [1000.0]
    cloud = Cloud()  # the simulated cloud, with a spot price endpoint
    ctl = ProvisioningController(None, cloud, load_catalog(), clock=lambda: now[0])  # type: ignore[arg-type]

    def spot() -> list[float]:
        m5 = next(t for t in ctl.catalog if t.name == "m5.large")
        return [o.price for o in m5.offerings if o.capacity_type == "spot"]

    assert not await ctl.refresh_spot_prices(now[0]) and cloud.calls == 0  # fresh at start-up
    now[0] += SPOT_REFRESH_S
    assert await ctl.refresh_spot_prices(now[0]) and spot() == [0.01]
    assert not await ctl.refresh_spot_prices(now[0] + 60)  # not due again yet
    now[0] += SPOT_REFRESH_S
    cloud.fail = True
    assert not await ctl.refresh_spot_prices(now[0]) and spot() == [0.01]  # last prices kept
