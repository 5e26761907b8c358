"""Differential tests: the same scenario through the simulator and through the live controllers
(real kubernetes-asyncio client against the API emulator, a fake clock) must make the same
decisions within one tick, because they run the same functions with the same constants.

Provisioner half: a step, a spike, a drain to zero and a spot interruption (and a ramp) through
the live `ProvisioningController` with the simulated cloud provider, fed the replica writes of
the simulated surge operator: every node is launched at the same tick with the same type and
terminated at the same tick (`BatchWindow`, `make_plan`, `prepare_for`, `provisioner.disruption`,
`pod_event`, `reserved_pods`, `catalog_now`), consolidation drains make before they break on
both sides (`hands_over`, `handover_done`, `handover_replicas`: as many handovers live as
simulated), and the spike's fragmented leftovers are repacked once on both sides
(`repack_action`: the replacement's node, its drain and the deletes that fill it; the ramp, with
surge's 90-s scale-down, `engine.follow`, is handed over as it falls and leaves none to repack). Kubernetes'
own controllers are small stand-ins here as in the simulator: the operator's write (its decision
plus the handover extras), the Deployment's ReplicaSet (`pod-template-hash`, scale-down order
with readiness and pod-deletion-cost), a LeastAllocated scheduler (the mean of the requested CPU
and memory fractions, as kube-scheduler's NodeResourcesFit) and a kubelet that registers an
instance's Node 40 s after launch and marks a pod Ready `pod_start_s` after it was bound.

Operator half: the live `ScaledObjectController` with real Redis scalers against a real
redis-server, fed what the simulated triggers read, writes the same replicas at the same ticks
(`engine.reaction`: the push wake of a list, the 1-s lag watch of a stream; `engine.decide`).
"""
from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
import yaml
from kubernetes_asyncio import client

import provisioner.controller
from autoscaler.engine.decide import TriggerReading
from autoscaler.engine.follow import FOLLOW_WORK_ON, ahead_protection_s, surge_defaults
from autoscaler.engine.reaction import LAG_WATCH_S, WAKE_COALESCE_S
from autoscaler.operator.controller import BATCH_AHEAD_S, Entry, ScaledObjectController
from autoscaler.operator.kube import Kube
from autoscaler.simulate.inputs import build_setup
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import PolicyResult, simulate
from autoscaler.simulate.trace import Trace
from provisioner.cloud.simulated import SimulatedProvider
from provisioner.controller import ProvisioningController
from provisioner.disruption import (
    CONSOLIDATION_INTERVAL_S,
    DELETION_COST,
    HANDOVER,
    REPACK_ON,
    Handover,
    drain_at,
    handover_done,
    handover_replicas,
    live_extras,
    parse_handover,
)
from provisioner.interruption import Interruption
from provisioner.kube import ProvisionerKube
from provisioner.provisioning import pod_requests
from tests.fixtures.redis import redis_server
from tests.k8s.fixture import K8s
from tests.test_simulate import DEPLOYMENT, SO, files

TICK = 5.0
BOOT = 40.0
NOTICE_AT = 240.0
END = float("inf")  # still running at the end
NS, NAME = "default", "worker"
HASH = "7c9d5b6f48"  # the pod-template-hash of the Deployment's ReplicaSet, worker-7c9d5b6f48


def scenario() -> Trace:
    per_minute = [0.0] * 2 + [3000.0] * 4 + [12000.0] + [0.0] * 8  # step, spike, drain to zero
    return Trace("scenario", 0.0, 60.0, np.array(per_minute))


def ramp() -> Trace:
    """Up and down in steps of 10 pods' worth, then nothing: consolidation as the load falls."""
    per_minute = [0.0, 600.0, 1200.0, 1800.0, 2400.0, 3000.0, 2400.0, 1800.0, 1200.0, 600.0] + [0.0] * 8
    return Trace("ramp", 0.0, 60.0, np.array(per_minute))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class World:
    """The fake clock and Kubernetes' own controllers, one tick at a time."""

    def __init__(self, em: Any, cloud: SimulatedProvider, allocatable: dict[str, tuple[int, int]],
                 pod_start_s: float) -> None:
        self.em, self.cloud, self.now = em, cloud, 0.0
        self.desired = 0  # the operator's own decision (the simulator's `series.replicas`), without extras
        self.names = itertools.count()
        self.cpu_m = allocatable  # type → (cpu m, memory Mi) left for the workload's pods
        self.pod_start_s = pod_start_s
        self.bound_at: dict[str, float] = {}  # pod → when the scheduler bound it
        self.terminated: dict[str, float] = {}  # instance → when it was seen terminated
        # replacements under way: (the nodes they replace, the NodeClaims launched for them)
        self.replacing: list[tuple[list[str], set[str]]] = []
        self._gone: set[str] = set()

    def pods(self) -> list[dict[str, Any]]:
        return [p for p in self.em.all("v1", "pods") if p["metadata"].get("namespace") == NS]

    def deployment(self) -> dict[str, Any]:
        dep = self.em.get("apps/v1", "deployments", NS, NAME)
        assert dep is not None
        return dep

    @property
    def replicas(self) -> int:
        return int(self.deployment()["spec"].get("replicas") or 0)

    def operator(self, desired: int) -> None:
        """The live operator's write (autoscaler/operator/controller.py `_write`): its decision plus
        the extras of the handovers the Deployment's `surge.sh/handover` annotation records."""
        self.desired = desired
        dep = copy.deepcopy(self.deployment())
        entries = parse_handover((dep["metadata"].get("annotations") or {}).get(HANDOVER))
        want = handover_replicas(desired, [live_extras(entries, self.now)])
        if int(dep["spec"].get("replicas") or 0) != want:
            dep["spec"]["replicas"] = want
            self.em.put("apps/v1", "deployments", dep)

    def handovers(self) -> set[str]:
        """Every node a handover was recorded for on the Deployment, from the API server's log."""
        return {node for _, key, _, obj in self.em.store.events if key == ("apps/v1", "deployments")
                for node in parse_handover((obj["metadata"].get("annotations") or {}).get(HANDOVER))}

    def replicaset(self) -> None:
        """The ReplicaSet controller following the Deployment's `spec.replicas`: its pods carry the
        `pod-template-hash` label and are owned by ReplicaSet `worker-<hash>`, as the Deployment
        controller names them; scale-down in `ActivePodsWithRanks` order (unassigned first, then
        not Ready before Ready, then the lower pod-deletion-cost, then more pods on the same node)."""
        pods, replicas = self.pods(), self.replicas
        for _ in range(replicas - len(pods)):
            self.em.put("v1", "pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{NAME}-{HASH}-{next(self.names)}", "namespace": NS,
                             "labels": {"app": NAME, "pod-template-hash": HASH},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": f"{NAME}-{HASH}", "uid": "rs-uid", "controller": True}]},
                "spec": {"containers": [{"name": "w", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]},
                "status": {"phase": "Pending"}})
        if len(pods) > replicas:
            on: dict[str, int] = {}
            for p in pods:
                node = p["spec"].get("nodeName")
                if node:
                    on[node] = on.get(node, 0) + 1

            def order(p: dict[str, Any]) -> tuple[Any, ...]:
                node = p["spec"].get("nodeName")
                cost = int((p["metadata"].get("annotations") or {}).get(DELETION_COST, "0"))
                return (node is not None, _ready(p), cost, -on.get(node or "", 0))

            for p in sorted(pods, key=order)[: len(pods) - replicas]:
                self.em.store.objects[("v1", "pods")].pop((NS, p["metadata"]["name"]))
                self.em.store.bump(("v1", "pods"), "DELETED", p)
                self.bound_at.pop(p["metadata"]["name"], None)

    def observe(self) -> None:
        for inst in self.cloud.instances.values():
            if inst.state != "running" and inst.id not in self._gone:
                self._gone.add(inst.id)
                self.terminated[inst.id] = self.now

    def kubelet(self) -> None:
        """Registers an instance's Node `BOOT` after launch; marks a bound pod Ready `pod_start_s`
        after it was bound (pods bind to registered nodes only: the simulator's max(bind, node
        ready) + pod_start_s, cluster.py `_start`)."""
        known = {n["spec"].get("providerID") for n in self.em.all("v1", "nodes")}
        for inst in self.cloud.instances.values():
            pid = f"aws:///{inst.zone}/{inst.id}"
            if inst.state != "running" or pid in known or self.now < inst.launched_at + BOOT:
                continue
            self.em.put("v1", "nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": f"ip-{inst.id}",
                             "labels": {"node.kubernetes.io/instance-type": inst.instance_type}},
                "spec": {"providerID": pid, "taints": [{"key": "karpenter.sh/unregistered", "effect": "NoExecute"}]},
                "status": {"allocatable": {"cpu": f"{self.cpu_m[inst.instance_type][0]}m",
                                           "memory": f"{self.cpu_m[inst.instance_type][1]}Mi", "pods": "110"},
                           "conditions": [{"type": "Ready", "status": "True"}]}})
        for p in self.pods():
            name = p["metadata"]["name"]
            if name in self.bound_at and not _ready(p) and self.now >= self.bound_at[name] + self.pod_start_s:
                p["status"]["conditions"].append({"type": "Ready", "status": "True",
                                                  "lastTransitionTime": _iso(self.now)})
                self.em.put("v1", "pods", p)

    def scheduler(self) -> None:
        nodes = [n for n in self.em.all("v1", "nodes") if not n["spec"].get("unschedulable")
                 and not n["spec"].get("taints")]
        pods = self.pods()
        used = {n["metadata"]["name"]: 0 for n in nodes}
        for p in pods:
            if p["spec"].get("nodeName") in used:
                used[p["spec"]["nodeName"]] += pod_requests(p).cpu_m
        cap = {n["metadata"]["name"]: int(n["status"]["allocatable"]["cpu"].rstrip("m")) for n in nodes}
        mem = {n["metadata"]["name"]: int(n["status"]["allocatable"]["memory"].rstrip("Mi")) for n in nodes}
        count = {n: sum(1 for p in pods if p["spec"].get("nodeName") == n) for n in cap}
        for p in pods:
            if p["spec"].get("nodeName"):
                continue
            room = [n for n in cap if cap[n] - used[n] >= 1000 and (count[n] + 1) * 2048 <= mem[n]]
            if room:
                # NodeResourcesFit's LeastAllocated: the lowest mean requested fraction of CPU and memory
                best = min(room, key=lambda n: ((used[n] / cap[n] + count[n] * 2048 / mem[n]) / 2, n))
                used[best] += 1000
                count[best] += 1
                p["spec"]["nodeName"] = best
                p["status"] = {"phase": "Running", "conditions": [  # the binding's time, as kube-scheduler's
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": _iso(self.now)}]}
                self.bound_at[p["metadata"]["name"]] = self.now
            elif (p.get("status") or {}).get("conditions"):
                continue  # already marked Unschedulable: no write, no watch event
            else:
                p["status"] = {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
            self.em.put("v1", "pods", p)


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


async def settle(world: World, controller: ProvisioningController) -> None:
    """Wait until the controller's watches have delivered every pod and node write made so far
    (what the live controller sees within milliseconds; here the fake clock stands still meanwhile)."""
    for _ in range(200):
        pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["metadata"]["resourceVersion"]
                for p in world.pods()}
        nodes = {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in world.em.all("v1", "nodes")}
        seen_pods = {k: p["metadata"].get("resourceVersion") for k, p in controller.pods.items()
                     if k.startswith(NS + "/")}
        seen_nodes = {k: n["metadata"].get("resourceVersion") for k, n in controller.nodes.items()}
        if pods == seen_pods and nodes.keys() == seen_nodes.keys() and not controller.ranking:
            return
        await asyncio.sleep(0.01)


async def registered(world: World, controller: ProvisioningController) -> None:
    """Wait until the lifecycle loop has registered and initialized every Node the kubelet added
    (milliseconds in a cluster; the fake clock stands still meanwhile)."""
    for _ in range(300):
        await settle(world, controller)
        ids = {(n["spec"].get("providerID"), any(t["key"] == "karpenter.sh/unregistered"
                                                  for t in n["spec"].get("taints") or []))
               for n in world.em.all("v1", "nodes")}
        usable = {(c.get("status") or {}).get("providerID") for c in controller.claims.values()
                  if any(x.get("type") == "Initialized" and x.get("status") == "True"
                         for x in (c.get("status") or {}).get("conditions") or [])}
        if all(not tainted and pid in usable for pid, tainted in ids):
            return
        await asyncio.sleep(0.01)


async def drained_when_due(world: World, controller: ProvisioningController, instance: str, replacement: str,
                           noticed_at: float) -> None:
    """An interrupted node's drain runs once `drain_at` says so (its replacement Initialized, or the
    deadline): let it finish within the tick, as it does in a cluster and in the simulator."""
    claim = controller.claims.get(replacement) or {}
    ready = any(c.get("type") == "Initialized" and c.get("status") == "True"
                for c in (claim.get("status") or {}).get("conditions") or [])
    if world.now < drain_at(noticed_at, world.now if ready else None):
        return
    for _ in range(300):
        if world.cloud.instances[instance].state != "running":
            return
        await asyncio.sleep(0.01)


async def provisioned(world: World, controller: ProvisioningController) -> None:
    """Let the provisioning loop look at this tick's pods once, and its launches finish."""
    await settle(world, controller)
    controller.kick.set()
    for _ in range(300):
        await asyncio.sleep(0.01)
        if not controller.kick.is_set() and not controller.launching:
            return


class Looks:
    """How often the live provisioner's running handovers have asked `handover_done` about each
    node, and the nodes whose handover it ended (a spy around the shared rule: it decides as before)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.count: dict[str, int] = {}
        self.ended: set[str] = set()

    def __call__(self, h: Handover, ready_elsewhere: int, now: float, wanted: int | None = None,
                 starting_elsewhere: int = 0) -> bool:
        done = handover_done(h, ready_elsewhere, now, wanted, starting_elsewhere)
        self.count[h.node] = self.count.get(h.node, 0) + 1
        if done:
            self.ended.add(h.node)
        return done


def running_handovers(world: World) -> set[str]:
    return set(parse_handover((world.deployment()["metadata"].get("annotations") or {}).get(HANDOVER)))


def terminated(world: World, node: str) -> bool:
    return world.cloud.instances[node.removeprefix("ip-")].state != "running"


async def handovers_looked(world: World, controller: ProvisioningController, looks: Looks) -> None:
    """Every running handover looks at this tick's world (the pods the kubelet made Ready) once;
    one that ends takes its extras back, the ReplicaSet deletes the node's pods (lowest cost) and
    the drain terminates the node within the tick — as the simulator's `_handovers_due` does at
    the start of its tick. Settles on conditions: a look per handover, then the node gone."""
    await settle(world, controller)
    running = running_handovers(world)
    seen = {n: looks.count.get(n, 0) for n in running}
    for _ in range(300):
        if all(looks.count.get(n, 0) > seen[n] or n in looks.ended for n in running):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"handovers of {sorted(running)} did not look at t={world.now}")
    await handovers_ended(world, controller, looks)


async def handovers_ended(world: World, controller: ProvisioningController, looks: Looks) -> None:
    """The nodes whose handover ended are drained and terminated within the tick: the ReplicaSet
    deletes their pods (the lowest deletion cost) once the extras are taken back."""
    for node in sorted(looks.ended):
        for _ in range(300):
            if terminated(world, node):
                break
            world.replicaset()
            world.scheduler()
            await settle(world, controller)
            await asyncio.sleep(0.01)
        else:
            on = [p["metadata"]["name"] for p in world.pods() if p["spec"].get("nodeName") == node]
            raise AssertionError(f"the handover of {node} ended but its drain did not at t={world.now} "
                                 f"(replicas {world.replicas}, {len(world.pods())} pods, on the node {on})")


async def disrupt(world: World, controller: ProvisioningController) -> None:
    """One disruption round, and the drains it starts run to their end or to a running handover
    (a drain evicts and terminates within milliseconds; a handover waits for Ready pods on the
    fake clock; a replacement waits for its node on the fake clock, so it is given a moment only)."""
    before, claims = set(controller.disrupting), set(controller.claims)
    done = await controller.disrupt_once()
    started = {t for c, t in controller.disrupting.items() if c not in before}
    drains = [node for node, why in done if "replace" not in why]
    await drained_or_handing_over(world, drains)
    if len(drains) < len(done):
        await asyncio.wait(started, timeout=0.5)
        world.replacing.append(([node for node, why in done if "replace" in why], set(controller.claims) - claims))


async def replacements_drained(world: World, controller: ProvisioningController) -> None:
    """A replacement whose NodeClaims are all Initialized starts draining the nodes it replaces
    at once (`_replace`): let that drain end or hand over before the tick goes on, as the
    simulator's `replaced` event does at the start of the tick the replacement is ready — before
    the operator's write, so a scale-down in the same tick finds the handover running."""
    for entry in list(world.replacing):
        nodes, claims = entry
        if not all(c not in controller.claims or _condition_true(controller.claims[c], "Initialized") for c in claims):
            continue
        await drained_or_handing_over(world, nodes)
        world.replacing.remove(entry)


async def drained_or_handing_over(world: World, nodes: Sequence[str]) -> None:
    """Wait until each node's drain has terminated it or runs a handover (milliseconds live)."""
    for _ in range(300):
        if all(terminated(world, n) or n in running_handovers(world) for n in nodes):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"drains of {list(nodes)} neither ended nor handed over at t={world.now}")


def _condition_true(obj: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


@pytest.mark.parametrize(("trace", "notice_at", "repacks"),
                         [(scenario(), NOTICE_AT, 1), (ramp(), None, 0 if FOLLOW_WORK_ON else 1)],
                         ids=["spike", "ramp"])
async def test_live_provisioner_and_simulator_launch_and_terminate_the_same_nodes(
        tmp_path: Path, k8s_api: K8s, trace: Trace, notice_at: float | None, repacks: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    paths = files(tmp_path, so=SO.format(max=50), capacity="spot, on-demand")
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0, node_boot_cpu_s=BOOT)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    sim = simulate(trace, setup, policy_named("surge"), a, notices=() if notice_at is None else (notice_at,))
    protect_s = ahead_protection_s(surge_defaults(setup.spec))  # what the operator passes with its hand-off
    assert len(sim.series.t) == len(sim.series.replicas) and sim.series.t[1] == TICK

    em = k8s_api.emulator
    em.put("karpenter.sh/v1", "nodepools", yaml.safe_load(paths["np"].read_text()))
    deployment = yaml.safe_load(DEPLOYMENT)
    deployment["metadata"]["namespace"] = NS
    deployment["spec"]["selector"] = {"matchLabels": {"app": NAME}}
    deployment["spec"]["replicas"] = 0
    em.put("apps/v1", "deployments", deployment)
    catalog = list(setup.catalog_spot)
    room = {t.name: ((t.allocatable - setup.overhead).cpu_m, (t.allocatable - setup.overhead).memory_mib)
            for t in catalog}
    world = World(em, SimulatedProvider(lambda: world.now), room, a.pod_start_s)
    em.clock = lambda: world.now  # the API server stamps creationTimestamp on the same (fake) clock
    looks = Looks(world)
    monkeypatch.setattr(provisioner.controller, "handover_done", looks)
    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ProvisioningController(ProvisionerKube(api), world.cloud, catalog, clock=lambda: world.now,
                                            gc_interval_s=3600, disruption_interval_s=3600, tick_s=0.01)
        task = asyncio.create_task(controller.run())
        try:
            for _ in range(200):
                if {"pods", "nodes", "nodeclaims", "nodepools"} <= controller.synced:
                    break
                await asyncio.sleep(0.02)
            notice: tuple[str, str, float] | None = None
            for t, replicas in zip(sim.series.t, sim.series.replicas, strict=True):
                # the simulator's order within a tick: nodes come up and pods get Ready, handovers
                # that are covered end, notices, the operator's write (prepare_for, then the
                # ReplicaSet and the scheduler), provisioning, consolidation
                world.now = t
                world.kubelet()
                await registered(world, controller)
                await replacements_drained(world, controller)
                await handovers_looked(world, controller, looks)
                if notice is not None:
                    await drained_when_due(world, controller, *notice)
                world.scheduler()
                if t == notice_at:
                    spot = sorted((i for i in world.cloud.instances.values()
                                   if i.capacity_type == "spot" and i.state == "running"), key=lambda i: i.launched_at)
                    replacement = await controller.handle_interruption(Interruption("spot-interruption", spot[0].id))
                    assert replacement is not None
                    notice = (spot[0].id, replacement, t)
                if replicas > world.desired:  # protected as the operator's hand-off protects them
                    await controller.prepare_for(NS, "Deployment", NAME, replicas - world.desired, protect_s)
                world.operator(replicas)
                world.replicaset()
                world.scheduler()
                await provisioned(world, controller)  # the provisioning loop acts on this tick
                if t % CONSOLIDATION_INTERVAL_S == 0:  # the disruption loop's cadence, on the fake clock
                    await settle(world, controller)
                    await disrupt(world, controller)
                await handovers_ended(world, controller, looks)  # one that a scale-down covered
                world.observe()
                world.replicaset()  # evicted pods are replaced at once, handovers' extras created,
                world.scheduler()  # and bound where there is room
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # the same nodes: each launched at the same tick, of the same instance type, terminated at the
    # same tick (or both still running)
    live = sorted((i.launched_at, i.instance_type, world.terminated.get(i.id, END))
                  for i in world.cloud.instances.values())
    simulated = sorted((n.launched_at, n.instance_type, END if n.terminated_at is None else n.terminated_at)
                       for n in sim.nodes)
    print("live", live)
    print("sim ", simulated)
    assert len(live) == len(simulated) and sum(t < END for *_, t in simulated) >= 5, (live, simulated)
    assert all(abs(a - x) <= TICK and b == y and abs(c - z) <= TICK
               for (a, b, c), (x, y, z) in zip(live, simulated, strict=True)), (live, simulated)
    # as many drains made before they broke live (the Deployment's `surge.sh/handover` entries, each
    # ended by `handover_done`) as simulated: the spike's consolidation and repack, the ramp's fall
    handed_over = world.handovers()
    print("handovers live", sorted(handed_over), "sim", sim.handovers)
    assert handed_over <= looks.ended and len(handed_over) == sim.handovers, (sorted(handed_over), sim.handovers)
    assert handed_over, "no drain was handed over"
    # the spike leaves a fragmented fleet that one repack fixes, live as simulated: its node is in the
    # sequences above, and the drain of the node it replaced says so (the ramp leaves none)
    repacked = [e for e in em.all("v1", "events") if e["reason"] == "DisruptionTerminating"
                and "replace: repack" in e["message"]]
    assert len(repacked) == sim.repacks == (repacks if REPACK_ON else 0), (repacked, sim.repacks)


# --- the operator half --------------------------------------------------------------------------

OPERATED_SO = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: worker, namespace: default}}
spec:
  scaleTargetRef: {{name: worker}}
  minReplicaCount: 0
  maxReplicaCount: 50
  triggers:
    - {trigger}
"""
REDIS_TRIGGER = '{{type: redis, name: backlog, metadata: {{address: "{address}", listName: jobs, listLength: "10"}}}}'
STREAM_TRIGGER = ('{{type: redis-streams, name: stream, metadata: {{address: "{address}", stream: jobs, '
                  'streamLength: "10"}}}}')


async def cycled(controller: ScaledObjectController, now: float) -> Entry:
    """Wait until every cycle due by `now` has run and its writes are done."""
    for _ in range(500):
        entry = controller.entries.get((NS, NAME))
        if entry is not None and not entry.busy and not controller.cycles and entry.due > now + BATCH_AHEAD_S:
            return entry
        await asyncio.sleep(0.005)
    raise AssertionError(f"no cycle ran by t={now}")


async def woken(entry: Entry, now: float) -> None:
    """Wait until the keyspace notification of a write to the list has made the object due."""
    for _ in range(400):
        if entry.due <= now + WAKE_COALESCE_S + 1e-9:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no keyspace notification woke the operator at t={now}")


def changes(times: list[float], replicas: list[int]) -> list[tuple[float, int]]:
    return [(t, b) for t, a, b in zip(times[1:], replicas, replicas[1:], strict=False) if a != b]


Tick = Callable[[int, float, Entry], Awaitable[None]]


async def live_replicas(k8s_api: K8s, manifest: Path, times: Sequence[float], before: Tick | None = None,
                        after: Tick | None = None) -> list[int]:
    """The live ScaledObject controller on the fake clock, one sim tick at a time: `before` sets
    the trigger's source for the tick's decision, the due cycles run (kicked), the Deployment's
    replicas are read, `after` changes the source as the tick's work did."""
    em = k8s_api.emulator
    deployment = yaml.safe_load(DEPLOYMENT)
    deployment["metadata"]["namespace"] = NS
    deployment["spec"].update(replicas=0, selector={"matchLabels": {"app": NAME}})
    em.put("apps/v1", "deployments", deployment)
    em.put("keda.sh/v1alpha1", "scaledobjects", yaml.safe_load(manifest.read_text()))
    clock = {"t": 0.0}
    out: list[int] = []
    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ScaledObjectController(Kube(api), clock=lambda: clock["t"], timer=lambda: clock["t"])
        task = asyncio.create_task(controller.run())
        try:
            for _ in range(400):
                entry = controller.entries.get((NS, NAME))
                if entry is not None:
                    break
                await asyncio.sleep(0.005)
            for i, t in enumerate(times):
                clock["t"] = t
                if before is not None and entry is not None:
                    await before(i, t, entry)
                controller.kick.set()
                entry = await cycled(controller, t)
                target = em.get("apps/v1", "deployments", NS, NAME)
                assert target is not None
                out.append(int(target["spec"]["replicas"]))
                if after is not None:
                    await after(i, t, entry)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await controller.stop()
    return out


def assert_same_writes(times: Sequence[float], live: list[int], simulated: list[int]) -> None:
    """The same replica writes, each within one tick."""
    tick = times[1] - times[0]
    ours, theirs = changes(list(times), live), changes(list(times), simulated)
    print("live", ours)
    print("sim ", theirs)
    assert [r for _, r in ours] == [r for _, r in theirs], (ours, theirs)
    assert all(abs(x - y) <= tick for (x, _), (y, _) in zip(ours, theirs, strict=True)), (ours, theirs)


def simulated(tmp_path: Path, so: str, readings: dict[float, int] | None = None, tick: float = TICK) -> PolicyResult:
    """The scenario under the simulated surge operator (the provisioner half's scenario)."""
    paths = files(tmp_path, so=so, capacity="spot, on-demand")
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0, node_boot_cpu_s=BOOT, tick_s=tick)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)

    def record(now: float, by_trigger: Mapping[str, TriggerReading]) -> None:
        if readings is not None:
            [reading] = by_trigger.values()
            readings[now] = int(reading.value or 0)

    sim = simulate(scenario(), setup, policy_named("surge"), a, notices=(NOTICE_AT,), readings=record)
    assert sim.series.t[1] == tick and max(sim.series.replicas) > 10 and sim.series.replicas[-1] == 0
    return sim


async def test_live_operator_and_simulator_write_the_same_replicas_on_a_pushed_list(tmp_path: Path, k8s_api: K8s
                                                                                   ) -> None:
    """A Redis list (keyspace notifications on, pollingInterval 30 s): the live ScaledObject
    controller — real scaler against a real redis-server, real client against the API emulator,
    its schedule on the fake clock — fed the simulator's backlog tick by tick writes the same
    replicas at the same ticks as the simulated surge operator: `engine.reaction` (wake 50 ms after
    a push, else every poll) and `engine.decide` (activation, HPA steps, cooldown to zero)."""
    with redis_server("--notify-keyspace-events", "Kl") as redis:
        sim = simulated(tmp_path, OPERATED_SO.format(trigger=REDIS_TRIGGER.format(address=redis.address)))
        backlog = [int(b) for b in sim.series.backlog]
        source = aioredis.Redis(port=redis.port)

        async def after(i: int, t: float, entry: Entry) -> None:
            if sim.series.backlog[i] != (sim.series.backlog[i - 1] if i else 0.0):
                # the tick's work pushed and popped items: the list changes (its length: what the
                # simulated trigger reads at the next decision) and Redis notifies — in one write
                # where it can: a second notification landing after `woken` would wake the live
                # operator again a tick later and shift its 30-s polls (a race the simulator has not)
                held = await source.llen("jobs")
                if backlog[i] > held:
                    await source.rpush("jobs", *["x"] * (backlog[i] - held))
                else:
                    if not held:  # an empty list: LTRIM of a missing key notifies nothing
                        await source.rpush("jobs", "x")
                    await source.ltrim("jobs", *((0, backlog[i] - 1) if backlog[i] else (1, 0)))  # (1, 0): empty
                await woken(entry, t)

        try:
            live = await live_replicas(k8s_api, tmp_path / "so.yaml", sim.series.t, after=after)
        finally:
            await source.aclose()
    assert_same_writes(sim.series.t, live, sim.series.replicas)


async def test_live_operator_and_simulator_write_the_same_replicas_on_a_watched_stream(tmp_path: Path,
                                                                                     k8s_api: K8s) -> None:
    """A Redis stream's length, no notifications for streams: only the lag watch (`LAG_WATCH_S`,
    1 s) wakes the live operator between its 30-s polls, as it does the simulated one — both
    decide every second on what the stream holds (waiting + in flight). The simulator runs at
    1-s ticks here: at 5 s it can only model the watch as a decision per tick."""
    readings: dict[float, int] = {}
    with redis_server("--notify-keyspace-events", "Kl") as redis:
        sim = simulated(tmp_path, OPERATED_SO.format(trigger=STREAM_TRIGGER.format(address=redis.address)), readings,
                        tick=LAG_WATCH_S)
        source = aioredis.Redis(port=redis.port)
        assert len(readings) == len(sim.series.t)  # the lag watch: a decision every second

        async def before(i: int, t: float, entry: Entry) -> None:
            want, held = readings[t], await source.xlen("jobs")
            if want > held:
                async with source.pipeline(transaction=False) as pipe:
                    for _ in range(want - held):
                        pipe.xadd("jobs", {"k": "v"})
                    await pipe.execute()
            elif want < held:
                await source.xtrim("jobs", maxlen=want, approximate=False)

        try:
            live = await live_replicas(k8s_api, tmp_path / "so.yaml", sim.series.t, before=before)
        finally:
            await source.aclose()
    assert_same_writes(sim.series.t, live, sim.series.replicas)
