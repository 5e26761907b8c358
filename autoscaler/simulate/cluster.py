"""Nodes and the one workload's pods, in simulated time.

Pods are counted, not modelled one by one: the simulated workload is one Deployment, so a
node only needs to know how many of its pods are starting (and when each becomes ready) and
how many are ready. Cost is kept per node from launch to termination, which is what the
cloud bills (per second) and what the fidelity tests check against.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
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
    ready: int = 0
    last_change: float = 0.0
    protected_until: float = 0.0
    doomed_at: float | None = None  # spot termination time after a notice: tainted, holds no new pods
    share: float = 0.0  # how much one pod raises the node's LeastAllocated score (launch: 1 / slots if not given)
    base: float = 0.0  # the score with none of the workload's pods (DaemonSets)
    terminated_at: float | None = None

    @property
    def pods(self) -> int:
        return len(self.starting) + self.ready

    @property
    def free(self) -> int:
        return 0 if self.doomed_at is not None else self.slots - self.pods

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
        """The ReplicaSet controller's scale-down order (https://kubernetes.io/docs/concepts/workloads/
        controllers/replicaset/#scaling-a-replicaset): unscheduled pods first, then not-ready before
        ready ones; among those, pods sharing a node with more of their replicas first (the rank), then
        the more recently started (newer nodes). Before the rank: the pod-deletion-cost annotation
        (`deletion_cost` per node, lower first; 0 where none was written)."""
        take = min(count, self.unbound)
        self.unbound -= take
        count -= take
        if not count:
            return
        cost = self.deletion_cost
        by_rank = sorted((n for n in self.nodes.values() if n.pods),
                         key=lambda n: (cost.get(n.id, 0), -n.pods, -n.launched_at))
        for node in by_rank:
            while count and node.starting:
                node.starting.pop()
                node.last_change = max(node.last_change, now)  # a nominated pod never bound: no event yet
                count -= 1
        for node in by_rank:
            while count and node.ready:
                node.ready -= 1
                self.ready_pods -= 1
                node.last_change = now
                count -= 1

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
                del node.starting[:k]
                node.ready += k
                self.ready_pods += k

    def move_pods(self, source: Node, targets: list[Node], now: float) -> None:
        """Evict `source`'s pods onto room elsewhere (they restart); what does not fit goes Pending."""
        count = source.pods
        self.ready_pods -= source.ready
        source.starting.clear()
        source.ready = 0
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
