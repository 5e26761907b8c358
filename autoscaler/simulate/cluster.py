"""Nodes and the one workload's pods, in simulated time.

Pods are counted, not modelled one by one: the simulated workload is one Deployment, so a
node only needs to know how many of its pods are starting (and when each becomes ready) and
how many are ready. Cost is kept per node from launch to termination, which is what the
cloud bills (per second) and what the fidelity tests check against.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field


@dataclass
class Node:
    id: int
    instance_type: str
    capacity_type: str
    zone: str
    pool: str
    price: float  # $/h
    on_demand_price: float  # $/h, for spot savings
    slots: int  # how many of the workload's pods fit
    launched_at: float
    ready_at: float
    starting: list[float] = field(default_factory=list)  # ready times of pods starting here, sorted
    ready_times: list[float] = field(default_factory=list)  # when each ready pod here became ready, sorted
    last_change: float = 0.0
    protected_until: float = 0.0
    doomed_at: float | None = None  # spot termination time after a notice: tainted, holds no new pods
    cordoned: bool = False  # tainted for a disruption whose replacement is booting: holds no new pods
    share: float = 0.0  # how much one pod raises the node's LeastAllocated score (launch: 1 / slots if not given)
    base: float = 0.0  # the score with none of the workload's pods (DaemonSets)
    terminated_at: float | None = None

    @property
    def ready(self) -> int:
        return len(self.ready_times)

    @property
    def pods(self) -> int:
        return len(self.starting) + len(self.ready_times)

    @property
    def free(self) -> int:
        return 0 if self.doomed_at is not None or self.cordoned else self.slots - self.pods

    def seconds(self, end: float) -> float:
        return (self.terminated_at if self.terminated_at is not None else end) - self.launched_at


class Cluster:
    """Binding, starting, deleting and moving pods; launching and terminating nodes."""

    def __init__(self, pod_start_s: float, on_change: Callable[[], None] | None = None):
        self.pod_start_s = pod_start_s
        self.nodes: dict[int, Node] = {}
        self.retired: list[Node] = []
        self.unbound = 0  # pods with no node (Pending, unschedulable until capacity appears)
        self.ready_pods = 0
        self._events: list[tuple[float, int, int]] = []  # (time, seq, node id): a pod may become ready
        self._seq = 0
        self._next_id = 0
        self.launches = 0
        self.terminations = 0
        self.pod_moves = 0
        self.deletion_cost: dict[int, int] = {}  # node id → pod-deletion-cost of its pods
        self._on_change = on_change or (lambda: None)

    # --- pods -------------------------------------------------------------------------------------
    @property
    def pods(self) -> int:
        return self.unbound + sum(n.pods for n in self.nodes.values())

    def set_replicas(self, replicas: int, now: float) -> None:
        """What the ReplicaSet controller does: create Pending pods, or delete the least useful ones."""
        diff = replicas - self.pods
        if diff > 0:
            self.unbound += diff
        elif diff < 0:
            self._delete(-diff, now)
        if diff:
            self._on_change()

    def _delete(self, count: int, now: float) -> None:
        """The ReplicaSet controller's scale-down order: `count` pods, first by `deletion_order`.
        Pods still unbound go first (no node at all)."""
        take = min(count, self.unbound)
        self.unbound -= take
        count -= take
        if not count:
            return
        victims = deletion_order(self.nodes.values(), self.deletion_cost, self.pod_start_s, now)[:count]
        for node, ready_at, is_ready in victims:
            (node.ready_times if is_ready else node.starting).remove(ready_at)
            if is_ready:
                self.ready_pods -= 1
            node.last_change = max(node.last_change, now)  # a pod nominated to a booting node never bound there

    def schedule(self, now: float) -> int:
        """Bind unbound pods to nodes with room; returns how many. Ready nodes first, the least
        allocated first (kube-scheduler's default scoring: NodeResourcesFit LeastAllocated, the
        mean of the requested fractions of CPU and memory, weights 1,
        https://kubernetes.io/docs/reference/scheduling/config/#scheduling-plugins); then nodes
        still booting, which stand for the provisioner's nominations."""
        if not self.unbound:
            return 0
        bound = 0
        heap = [(n.base + n.pods * n.share, n.id, n) for n in self.nodes.values() if n.ready_at <= now and n.free > 0]
        heapq.heapify(heap)
        taken: dict[int, int] = {}
        while heap and self.unbound:  # one pod at a time onto the least allocated ready node
            _, node_id, node = heapq.heappop(heap)
            k = taken.get(node_id, 0) + 1
            taken[node_id] = k
            self.unbound -= 1
            bound += 1
            if node.free > k:
                heapq.heappush(heap, (node.base + (node.pods + k) * node.share, node_id, node))
        for node_id, k in taken.items():
            self._start(self.nodes[node_id], k, now)
        for node in sorted((n for n in self.nodes.values() if n.ready_at > now), key=lambda n: n.id):
            if not self.unbound:
                break
            k = min(node.free, self.unbound)
            if k > 0:
                self._start(node, k, now)
                self.unbound -= k
                bound += k
        if bound:
            self._on_change()
        return bound

    def _start(self, node: Node, count: int, now: float) -> None:
        ready_at = max(now, node.ready_at) + self.pod_start_s
        for _ in range(count):
            bisect.insort(node.starting, ready_at)
        node.last_change = max(now, node.ready_at)  # a pod nominated to a booting node binds once it is ready
        self._seq += 1
        heapq.heappush(self._events, (ready_at, self._seq, node.id))

    def advance(self, now: float) -> None:
        """Pods whose start time has come are ready."""
        events = self._events
        while events and events[0][0] <= now:
            _, _, node_id = heapq.heappop(events)
            node = self.nodes.get(node_id)
            if node is None:
                continue
            k = bisect.bisect_right(node.starting, now)
            if k:
                node.ready_times.extend(node.starting[:k])
                del node.starting[:k]
                self.ready_pods += k

    def move_pods(self, source: Node, targets: list[Node], now: float) -> None:
        """Evict `source`'s pods onto room elsewhere (they restart); what does not fit goes Pending."""
        count = source.pods
        self.ready_pods -= source.ready
        source.starting.clear()
        source.ready_times.clear()
        source.last_change = now
        for target in targets:
            if not count:
                break
            n = min(target.free, count)
            if n > 0:
                self._start(target, n, now)
                count -= n
                self.pod_moves += n
        self.unbound += count
        self._on_change()

    # --- nodes ------------------------------------------------------------------------------------
    def launch(self, instance_type: str, capacity_type: str, zone: str, pool: str, price: float,
               on_demand_price: float, slots: int, now: float, boot_s: float, protected_s: float = 0.0,
               score: tuple[float, float] | None = None) -> Node:
        """`score`: (base, share) of the node's LeastAllocated score; default: pods / slots."""
        base, share = score if score is not None else (0.0, 1.0 / slots if slots else 1.0)
        node = Node(self._next_id, instance_type, capacity_type, zone, pool, price, on_demand_price, slots,
                    launched_at=now, ready_at=now + boot_s, last_change=now + boot_s,
                    protected_until=now + protected_s, share=share, base=base)
        self._next_id += 1
        self.nodes[node.id] = node
        self.launches += 1
        self._on_change()
        return node

    def terminate(self, node: Node, now: float) -> None:
        if node.pods:
            self.move_pods(node, [n for n in self.nodes.values() if n is not node], now)
        node.terminated_at = now
        del self.nodes[node.id]
        self.retired.append(node)
        self.terminations += 1
        self._on_change()

    def all_nodes(self) -> list[Node]:
        return self.retired + list(self.nodes.values())


def _log2_age(now: float, then: float) -> int:
    """Kubernetes' `logarithmicRankDiff` bucket: floor(log2(age in ns)), -1 when not in the past."""
    age = now - then
    return int(math.log2(age * 1e9)) if age > 0 else -1


def _uid(node_id: int, i: int) -> int:
    """A stable stand-in for a pod's UID: pseudo-random, as Kubernetes breaks ties by UID."""
    return ((node_id * 1_000_003 + i) * 2_654_435_761) % 2**32


def deletion_order(nodes: Collection[Node], deletion_cost: dict[int, int], pod_start_s: float,
                   now: float) -> list[tuple[Node, float, bool]]:
    """Bound pods in the ReplicaSet controller's deletion order (kubernetes pkg/controller/
    controller_utils.go `ActivePodsWithRanks.Less`, ranks from replica_set.go
    `getPodsRankedByRelatedPodsOnSameNode`), as (node, its ready time, ready?):
    1. unassigned before assigned — pods placed on a node still booting are only nominated there
       by the provisioner, their `spec.nodeName` is empty;
    2./3. Pending and not-ready before ready (a starting pod is both);
    4. lower `controller.kubernetes.io/pod-deletion-cost` first (`deletion_cost` per node);
    5. higher rank first: more active pods of the workload on the same node (unassigned pods
       share the rank of all unassigned ones);
    6. both ready: the more recently ready first, compared in log2 buckets of their age
       (LogarithmicScaleDown, on by default since 1.22), ties broken by UID (pseudo-random);
    7. restarts (none in the model); 8. the more recently created first, log2 buckets, then UID —
    a starting pod was created `pod_start_s` before its ready time."""
    unassigned = sum(len(n.starting) for n in nodes if n.ready_at > now)
    keyed = []
    for node in nodes:
        cost = deletion_cost.get(node.id, 0)
        booting = node.ready_at > now
        rank = unassigned if booting else node.pods
        for i, ready_at in enumerate(node.starting):
            key = (0 if booting else 1, cost, -rank, _log2_age(now, ready_at - pod_start_s), _uid(node.id, i))
            keyed.append((key, node, ready_at, False))
        for i, ready_at in enumerate(node.ready_times):
            key = (2, cost, -rank, _log2_age(now, ready_at), _uid(node.id, -1 - i))
            keyed.append((key, node, ready_at, True))
    keyed.sort(key=lambda k: k[0])
    return [(node, ready_at, is_ready) for _, node, ready_at, is_ready in keyed]
