"""Make-before-break drains, live: the real ProvisioningController (kubernetes-asyncio client,
API emulator, EC2 calls against moto_server) hands a consolidated node's Deployment pods over
to extra replicas before anything is evicted.

There is no ReplicaSet controller in the emulator; `replicaset()` below stands in for it, with
Kubernetes' scale-down order (https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/
#scaling-a-replicaset: not-ready before ready, then the lower controller.kubernetes.io/
pod-deletion-cost, then the newer), and it binds new pods to the least loaded schedulable node
(the scheduler's part), Ready after a short start.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from provisioner.disruption import (
    DELETION_COST,
    HANDOVER,
    HANDOVER_DELETION_COST,
    HANDOVER_TIMEOUT_S,
    parse_handover,
)
from tests.k8s.fixture import K8s
from tests.test_provisioner_live import bind, initialized, nodepool, pending_pod, rig, unbind, until, vpc

__all__ = ["vpc"]  # the fixture, used by name below
DEP = ("apps/v1", "deployments")
HASH = "7d9f8c6b5"


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                         {"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}},
            "status": {"replicas": replicas}}


def web_pod(name: str, node: str, ready: bool) -> dict[str, Any]:
    pod = pending_pod(name, cpu="500m", labels={"app": "web", "pod-template-hash": HASH},
                      ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"web-{HASH}",
                                        "controller": True, "uid": "rs-uid"}])
    pod["spec"]["nodeName"] = node
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return pod


def web_pods(em: Any) -> list[dict[str, Any]]:
    return [p for p in em.all("v1", "pods") if (p["metadata"].get("labels") or {}).get("app") == "web"]


async def replicaset(em: Any, start_s: float = 0.3, ready: Callable[[str], bool] = lambda _: True) -> None:
    """The ReplicaSet controller (and scheduler, kubelet) for `apps/web`: pods follow spec.replicas."""
    names = (f"web-{HASH}-{i}" for i in itertools.count(100))
    starting: dict[str, float] = {}
    while True:
        dep = em.get(*DEP, "apps", "web")
        if dep is not None:
            pods = web_pods(em)
            want = int(dep["spec"]["replicas"])
            for p in pods:  # the kubelet: started pods turn Ready
                name = p["metadata"]["name"]
                if name in starting and time.monotonic() >= starting[name] and ready(name):
                    del starting[name]
                    em.put("v1", "pods", web_pod(name, p["spec"]["nodeName"], True) | {"metadata": p["metadata"]})
            if len(pods) < want:
                nodes = [n for n in em.all("v1", "nodes") if not (n.get("spec") or {}).get("unschedulable")
                         and (n["metadata"].get("labels") or {}).get("karpenter.sh/registered") == "true"]
                load = {n["metadata"]["name"]: 0 for n in nodes}
                for p in em.all("v1", "pods"):
                    if p["spec"].get("nodeName") in load:
                        load[p["spec"]["nodeName"]] += 1
                for _ in range(want - len(pods)):
                    if not load:
                        break
                    node = min(load, key=lambda n: (load[n], n))
                    load[node] += 1
                    name = next(names)
                    starting[name] = time.monotonic() + start_s
                    em.put("v1", "pods", web_pod(name, node, False))
            elif len(pods) > want:
                def rank(p: dict[str, Any]) -> tuple[bool, int, float]:
                    is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
                    cost = int((p["metadata"].get("annotations") or {}).get(DELETION_COST, "0"))
                    return is_ready, cost, -float(p["metadata"]["resourceVersion"])
                for p in sorted(pods, key=rank)[: len(pods) - want]:
                    unbind(em, p["metadata"]["name"])
            dep["status"] = {"replicas": len(web_pods(em))}
        await asyncio.sleep(0.05)


def record(em: Any) -> tuple[list[str], list[tuple[int, dict[str, int]]], dict[str, list[str]]]:
    """Evicted pod names, every (replicas, handover annotation) the Deployment went through, and
    the deletion costs each pod carried — an audit log of the emulator."""
    evicted: list[str] = []
    history: list[tuple[int, dict[str, int]]] = []
    costs: dict[str, list[str]] = {}
    evict, bump = em._evict, em.store.bump

    def on_evict(key: Any, ns: str, name: str, pod: dict[str, Any]) -> Any:
        evicted.append(name)
        return evict(key, ns, name, pod)

    def on_bump(key: Any, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if key == DEP and kind != "DELETED":
            handovers = parse_handover((meta.get("annotations") or {}).get(HANDOVER))
            entry = (obj["spec"]["replicas"], {n: extra for n, (extra, _) in handovers.items()})
            if not history or history[-1] != entry:
                history.append(entry)
        cost = (meta.get("annotations") or {}).get(DELETION_COST)
        if key == ("v1", "pods") and cost is not None and costs.get(meta["name"], [None])[-1] != cost:
            costs.setdefault(meta["name"], []).append(cost)
        bump(key, kind, obj)

    em._evict, em.store.bump = on_evict, on_bump
    return evicted, history, costs


async def two_nodes(em: Any, r: Any, web_replicas: int = 1) -> tuple[str, str]:
    """Two initialized nodes: A runs a do-not-disrupt pod (never consolidated), B the web pod(s)."""
    await until(lambda: len(r.claims()) == 2 and all(initialized(c) for c in r.claims()))
    a, b = sorted(c["status"]["nodeName"] for c in r.claims())
    for i in range(2):
        unbind(em, f"wide-{i}")
    bind(em, "pin", a, "500m", annotations={"karpenter.sh/do-not-disrupt": "true"})
    for i in range(web_replicas):
        em.put("v1", "pods", web_pod(f"web-{HASH}-{i}", b, True))
    await until(lambda: all((n.get("metadata", {}).get("labels") or {}).get("karpenter.sh/registered") == "true"
                            for n in em.all("v1", "nodes")))
    return a, b


def consolidate_now(r: Any) -> None:
    r.controller.pools["default"].spec.disruption = {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                                                     "consolidateAfter": "0s", "budgets": [{"nodes": "100%"}]}


POOL = nodepool(("on-demand",), consolidationPolicy="WhenEmptyOrUnderutilized", consolidateAfter="1h")


@pytest.fixture
def wide(k8s_api: K8s) -> None:
    for i in range(2):
        k8s_api.emulator.put("v1", "pods", pending_pod(f"wide-{i}", cpu="3", labels={"app": f"wide{i}"}))


async def test_a_consolidation_drain_hands_pods_over_before_anything_is_evicted(k8s_api: K8s, vpc: dict,
                                                                                wide: None) -> None:
    em = k8s_api.emulator
    async with rig(k8s_api, vpc, pool=POOL) as r:
        a, b = await two_nodes(em, r, web_replicas=2)
        em.put(*DEP, deployment(2))
        evicted, history, costs = record(em)
        rs = asyncio.create_task(replicaset(em))
        try:
            consolidate_now(r)  # B's two web pods fit on A: B is consolidated (delete), A is pinned
            await until(lambda: any("Underutilized (delete" in e["message"] for e in em.all("v1", "events")))
            await until(lambda: b not in {n["metadata"]["name"] for n in em.all("v1", "nodes")}, timeout=40)
            # replicas 2 → 4 with the node's count recorded, then back to 2 once A's new pods were Ready
            assert history == [(4, {b: 2}), (2, {})]
            assert evicted == []  # the node's pods were deleted by the scale-down, never evicted
            # below every rank while it hands over; the lowest of all when its extras are taken back
            lowest = [str(HANDOVER_DELETION_COST + 1), str(HANDOVER_DELETION_COST)]
            assert costs[f"web-{HASH}-0"][-2:] == costs[f"web-{HASH}-1"][-2:] == lowest, costs
            pods = web_pods(em)
            assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {a}
            assert {p["metadata"]["name"] for p in pods}.isdisjoint({f"web-{HASH}-0", f"web-{HASH}-1"})
            await until(lambda: len(r.claims()) == 1 and len(r.running()) == 1)
            assert em.get(*DEP, "apps", "web")["metadata"].get("annotations", {}).get(HANDOVER) is None
        finally:
            rs.cancel()
            await asyncio.gather(rs, return_exceptions=True)


async def test_a_handover_that_cannot_be_written_falls_back_to_eviction_with_an_event(k8s_api: K8s, vpc: dict,
                                                                                      wide: None) -> None:
    em = k8s_api.emulator
    async with rig(k8s_api, vpc, pool=POOL) as r:
        _, b = await two_nodes(em, r)  # the web pod's Deployment does not exist (deleted meanwhile)
        evicted, history, _ = record(em)
        consolidate_now(r)
        await until(lambda: bool(r.events("HandoverFailed")))
        [event] = r.events("HandoverFailed")
        assert f"Deployment apps/web on node {b} (404" in event["message"] and event["type"] == "Warning"
        await until(lambda: evicted == [f"web-{HASH}-0"])
        await until(lambda: len(r.claims()) == 1)
        assert history == []


async def test_replacements_not_ready_in_time_are_given_up_and_the_pods_evicted(k8s_api: K8s, vpc: dict,
                                                                                wide: None) -> None:
    em = k8s_api.emulator
    async with rig(k8s_api, vpc, pool=POOL) as r:
        a, b = await two_nodes(em, r)
        em.put(*DEP, deployment(1))
        evicted, history, _ = record(em)
        rs = asyncio.create_task(replicaset(em, ready=lambda _: False))  # the new pod never gets Ready
        try:
            consolidate_now(r)
            await until(lambda: (2, {b: 1}) in history)
            await asyncio.sleep(1.0)
            assert evicted == [] and b in {n["metadata"]["name"] for n in em.all("v1", "nodes")}  # it waits
            r.controller.clock = lambda: time.time() + HANDOVER_TIMEOUT_S + 1
            await until(lambda: evicted == [f"web-{HASH}-0"], timeout=40)
            assert history[-1] == (1, {})  # the extra replica was taken back before the eviction
            await until(lambda: b not in {n["metadata"]["name"] for n in em.all("v1", "nodes")})
            assert {p["spec"]["nodeName"] for p in web_pods(em)} <= {a}
        finally:
            rs.cancel()
            await asyncio.gather(rs, return_exceptions=True)


async def test_a_scale_ups_starting_pods_hold_the_end_so_the_nodes_pods_are_not_evicted(k8s_api: K8s, vpc: dict,
                                                                                      wide: None) -> None:
    # the extra pod is Ready elsewhere, but a scale-up's pod still starts there: taking the extra
    # back then would delete that not-Ready pod (Kubernetes deletes not-Ready pods before any
    # pod-deletion-cost) and the drain would evict the node's Ready pod — a restart
    em = k8s_api.emulator
    extra, scaled = f"web-{HASH}-100", f"web-{HASH}-101"  # the stand-in ReplicaSet's next names
    held = {extra, scaled}
    async with rig(k8s_api, vpc, pool=POOL) as r:
        _, b = await two_nodes(em, r)
        em.put(*DEP, deployment(1))
        evicted, history, _ = record(em)
        rs = asyncio.create_task(replicaset(em, ready=lambda name: name not in held))
        try:
            consolidate_now(r)
            await until(lambda: (2, {b: 1}) in history)
            dep = em.get(*DEP, "apps", "web")
            dep["spec"]["replicas"] = 3  # the operator scales 1 → 2 during the handover: 2 + the extra
            em.put(*DEP, dep)
            await until(lambda: em.get("v1", "pods", "apps", scaled) is not None)
            held.discard(extra)  # the extra is Ready elsewhere: the node is covered, the scale-up is not
            await asyncio.sleep(1.5)
            assert history[-1] == (3, {b: 1}) and evicted == []  # it waits for the starting pod
            held.clear()
            await until(lambda: b not in {n["metadata"]["name"] for n in em.all("v1", "nodes")}, timeout=40)
            assert history[-1] == (2, {}) and evicted == []  # the take-back deleted the node's pod
            assert em.get("v1", "pods", "apps", f"web-{HASH}-0") is None and em.get("v1", "pods", "apps", scaled)
        finally:
            rs.cancel()
            await asyncio.gather(rs, return_exceptions=True)
