"""One policy over one trace: the simulated cluster, driven by the same decision functions the
live operator (`decide`) and provisioner (`make_plan`) use. Pure: simulated clock, no I/O.

Each tick, in order: pods and nodes whose time has come become ready (and spot notices fire);
the autoscaler decides if it is its time to; the ReplicaSet creates or deletes pods; the
scheduler binds pods to room; the provisioner launches nodes; consolidation looks for nodes to
remove; work arrives and ready pods serve it; money is spent on the nodes that now exist.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from autoscaler.engine.decide import Decision, EngineState, ScalingSpec, TriggerReading, decide
from autoscaler.engine.predictive import Predictive, apply_predictive
from autoscaler.manifests.keda import duration_seconds
from autoscaler.simulate.cluster import Cluster, Node
from autoscaler.simulate.policy import Assumptions, Policy
from autoscaler.simulate.predict import QUANTILE, SimulatedPredictor
from autoscaler.simulate.signals import SimTrigger
from autoscaler.simulate.trace import Trace
from autoscaler.simulate.workload import FifoQueue
from provisioner.catalog import InstanceType
from provisioner.nodepool import NodePool
from provisioner.plan import PlannedNode, make_plan
from provisioner.pods import PodGroup
from provisioner.resources import Resources


@dataclass(frozen=True)
class Setup:
    """Everything policy-independent: the workload, its ScaledObject and where its pods may run."""

    spec: ScalingSpec
    triggers: tuple[SimTrigger, ...]
    pods: PodGroup  # the target's pod template (count ignored)
    pools: tuple[NodePool, ...]
    catalog_spot: tuple[InstanceType, ...]  # on-demand and modelled spot offerings
    catalog_on_demand: tuple[InstanceType, ...]
    overhead: Resources = Resources()  # noqa: RUF009 - immutable value; DaemonSet requests per node
    http: bool = False  # HTTP workload: requests time out instead of queueing forever
    polling_interval_s: float = 30.0


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # arrivals per second
    replicas: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    cost_per_hour: list[float] = field(default_factory=list)
    backlog: list[float] = field(default_factory=list)


@dataclass
class PolicyResult:
    policy: str
    span_s: float
    cost_usd: float
    node_hours: float
    idle_cost_usd: float
    spot_savings_usd: float
    slo_target_seconds: float
    slo_violation_minutes: int
    wait_p50_s: float
    wait_p95_s: float
    wait_p99_s: float
    wait_mean_s: float
    dropped: float
    scaling_actions: int
    replica_changes: int
    node_launches: int
    node_terminations: int
    pod_moves: int
    arrived: float
    processed: float
    backlog_end: float
    max_pending_pods: int
    pending_pod_seconds: float
    cost_by_nodepool: dict[str, float]
    cost_by_instance_type: dict[str, float]
    cost_by_capacity_type: dict[str, float]
    series: Series
    nodes: list[Node] = field(repr=False, default_factory=list)
    unplaceable_pods: int = 0  # most pods a launch could not place (no fitting type, NodePool limits)

    def summary(self) -> dict[str, Any]:
        keys = ("policy", "cost_usd", "node_hours", "idle_cost_usd", "spot_savings_usd", "slo_target_seconds",
                "slo_violation_minutes", "wait_p50_s", "wait_p95_s", "wait_p99_s", "dropped", "scaling_actions")
        return {k: _round(getattr(self, k)) for k in keys}

    def to_json(self) -> dict[str, Any]:
        out = self.summary()
        for k in ("wait_mean_s", "replica_changes", "node_launches", "node_terminations", "pod_moves", "arrived",
                  "processed", "backlog_end", "max_pending_pods", "pending_pod_seconds", "cost_by_nodepool",
                  "cost_by_instance_type", "cost_by_capacity_type"):
            out[k] = _round(getattr(self, k))
        return out


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: round(x, 4) for k, x in v.items()}
    return v


class _Planner:
    """make_plan for n pods of the workload, memoised: the workload's shape never changes."""

    def __init__(self, setup: Setup, policy: Policy, spot: bool):
        self.setup = setup
        self.algorithm = policy.packer
        self.launch_algorithm = policy.launch_packer or policy.packer
        self.catalog = setup.catalog_spot if spot else setup.catalog_on_demand
        self.types = {t.name: t for t in self.catalog}
        self._cache: dict[tuple[int, str], tuple[list[PlannedNode], int]] = {}

    def plan(self, count: int, algorithm: Literal["surge", "karpenter"] | None = None) -> tuple[list[PlannedNode], int]:
        algo = algorithm or self.algorithm
        if (count, algo) not in self._cache:
            group = replace(self.setup.pods, count=count, pod_names=())
            p = make_plan([group], self.setup.pools, self.catalog, (), self.setup.overhead, algo)
            self._cache[count, algo] = (p.new_nodes, len(p.unschedulable))
        return self._cache[count, algo]

    def slots(self, instance_type: str) -> int:
        if self.setup.pods.one_per_node:
            return 1
        return self.setup.pods.requests.how_many_in(self.types[instance_type].allocatable - self.setup.overhead)

    def on_demand_price(self, instance_type: str, zone: str) -> float:
        return next((o.price for o in self.types[instance_type].offerings
                     if o.capacity_type == "on-demand" and o.zone == zone), 0.0)

    def size(self, instance_type: str) -> Resources:
        """What a node counts against NodePool limits: its capacity, not its allocatable."""
        t = self.types[instance_type]
        return Resources(t.vcpu * 1000, t.memory_mib, t.gpu_count, 0)

    def is_gpu(self, instance_type: str) -> bool:
        return self.types[instance_type].gpu_count > 0


def scale_for(trace: Trace, a: Assumptions) -> float:
    """The multiplier that makes the trace's p99 rate need `peak_pods` pods."""
    p99 = float(np.nanpercentile(trace.rates, 99))
    return a.peak_pods * a.pod_rate / p99 if p99 > 0 else 1.0


def tick_for(trace: Trace, a: Assumptions) -> float:
    """The largest tick ≤ the asked one that divides the trace interval (arrivals stay exact)."""
    return trace.interval / math.ceil(trace.interval / a.tick_s - 1e-9)


def simulate(trace: Trace, setup: Setup, policy: Policy, a: Assumptions,
             progress: Callable[[int], None] | None = None) -> PolicyResult:
    return _Run(trace, setup, policy, a, progress).run()


class _Run:
    def __init__(self, trace: Trace, setup: Setup, policy: Policy, a: Assumptions,
                 progress: Callable[[int], None] | None):
        self.trace, self.setup, self.policy, self.a = trace, setup, policy, a
        self.progress = progress
        self.dt = tick_for(trace, a)
        self.n_ticks = round(trace.span / self.dt)
        self.arrivals = trace.arrivals(self.dt, self.n_ticks) * a.scale  # interpolated; 0 in gaps
        self.gap = trace.missing_ticks(self.dt, self.n_ticks)  # no data: no load, no cost accounted
        gpu_pods = setup.pods.requests.gpu > 0
        self.cluster = Cluster(a.pod_start_gpu_s if gpu_pods else a.pod_start_s, on_change=self._dirty)
        self.queue = FifoQueue(self.dt, trace.span + self.dt, a.slo_seconds,
                               a.http_timeout_s if setup.http else None)
        self.planner = _Planner(setup, policy, policy.spot)
        self.rng = random.Random(a.seed)
        self.events: list[tuple[float, int, str, int]] = []  # node events: spot notice/migrate/terminate
        self._seq = 0
        self.replicas = 0
        self.state = EngineState(created_at=0.0)
        lead = (a.pod_start_gpu_s + a.node_boot_gpu_s) if gpu_pods else (a.pod_start_s + a.node_boot_cpu_s)
        self.predictor = SimulatedPredictor(lead) if policy.predictive and setup.spec.triggers else None
        self.replica_changes = 0
        self.history: deque[tuple[float, int]] = deque()  # (time, replicas) changes, for the recent peak
        self._rates_dirty = True
        self._cost_rate = 0.0
        self._idle_rate = 0.0
        self.idle_cost = 0.0
        self.max_pending = 0
        self.unplaceable = 0
        self.pending_seconds = 0.0
        self.replacements: dict[int, list[Node]] = {}  # spot node → its replacement (launched on the notice)
        self.replacing: set[int] = set()  # nodes a cheaper replacement is booting for
        self._replace_sets: dict[int, tuple[list[int], list[int], list[Node]]] = {}
        disruption = dict(setup.pools[0].spec.disruption or {}) if setup.pools else {}
        self.consolidation_policy = str(disruption.get("consolidationPolicy", "WhenEmptyOrUnderutilized"))
        after = str(disruption.get("consolidateAfter", "0s"))
        self.consolidate_after = None if after == "Never" else duration_seconds(after)
        budgets = disruption.get("budgets") or [{"nodes": "10%"}]
        self.budget_nodes = str(budgets[0].get("nodes", "10%"))

    # --- bookkeeping -----------------------------------------------------------------------------
    def _dirty(self) -> None:
        self._rates_dirty = True

    def _rates(self) -> tuple[float, float]:
        if self._rates_dirty:
            nodes = self.cluster.nodes.values()
            self._cost_rate = sum(n.price for n in nodes)
            self._idle_rate = sum(n.price * (n.slots - n.pods) / n.slots for n in nodes if n.slots > 0)
            self._rates_dirty = False
        return self._cost_rate, self._idle_rate

    def _push(self, at: float, kind: str, node_id: int) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, node_id))

    # --- provisioning ----------------------------------------------------------------------------
    def _launch_for(self, count: int, now: float, protect: float = 0.0, consolidating: bool = False) -> list[Node]:
        if count <= 0:
            return []
        planned, stuck = self.planner.plan(count, None if consolidating else self.planner.launch_algorithm)
        kept = self._within_limits(planned)
        cut = sum(len(p.pods) for p in planned if all(p is not k for k in kept))
        self.unplaceable = max(self.unplaceable, stuck + cut)
        launched = []
        for p in kept:
            boot = self.a.node_boot_gpu_s if self.planner.is_gpu(p.instance_type) else self.a.node_boot_cpu_s
            node = self.cluster.launch(p.instance_type, p.capacity_type, p.zone, p.nodepool, p.price_per_hour,
                                       self.planner.on_demand_price(p.instance_type, p.zone) or p.price_per_hour,
                                       self.planner.slots(p.instance_type), now, boot, protect)
            launched.append(node)
            if p.capacity_type == "spot" and self.a.spot_interruptions_per_node_hour > 0:
                gap = self.rng.expovariate(self.a.spot_interruptions_per_node_hour / 3600)
                self._push(now + gap, "notice", node.id)
        return launched

    def _within_limits(self, planned: list[PlannedNode]) -> list[PlannedNode]:
        """A plan is made for the pods alone; the NodePool's limits count the nodes it already has."""
        limits = {pool.name: pool.limit() for pool in self.setup.pools}
        used = {name: Resources() for name in limits}
        for n in self.cluster.nodes.values():
            if n.pool in used:
                used[n.pool] = used[n.pool] + self.planner.size(n.instance_type)
        out = []
        for p in planned:
            limit = limits.get(p.nodepool)
            after = used.get(p.nodepool, Resources()) + self.planner.size(p.instance_type)
            if limit is not None and not Resources(after.cpu_m, after.memory_mib, after.gpu, 0).fits_in(limit):
                continue
            used[p.nodepool] = after
            out.append(p)
        return out

    def _recent_peak(self, now: float) -> int:
        """The most replicas asked for within the headroom window: the forecast stands in for it
        once the predictor lands."""
        cutoff = now - self.a.headroom_window_s
        while len(self.history) > 1 and self.history[1][0] <= cutoff:
            self.history.popleft()
        return max([self.replicas] + [r for _, r in self.history])

    def _predictive(self, readings: dict[str, TriggerReading], d: Decision, now: float) -> Decision:
        """The live controller's predictive step: record, forecast, raise (never lower)."""
        assert self.predictor is not None
        trig = self.setup.spec.triggers[0]
        r = readings.get(trig.name)
        if r is not None and r.value is not None:
            self.predictor.observe(now, r.value)
        return apply_predictive(self.setup.spec, Predictive("on", QUANTILE), d, self.replicas,
                                {trig.name: self.predictor.current})

    def _slots_alive(self) -> int:
        return sum(n.slots for n in self.cluster.nodes.values() if n.doomed_at is None and not n.draining)

    def _free_slots(self) -> int:
        return sum(n.free for n in self.cluster.nodes.values())

    def _wanted_by_metrics(self, readings: dict[str, TriggerReading]) -> int:
        """What the HPA formula asks for before its rate limits: surge provisions for it at once."""
        wanted = 0
        for trig in self.setup.spec.triggers:
            r = readings.get(trig.name)
            if r is not None and r.value is not None and trig.metric_type == "AverageValue" and trig.target > 0:
                wanted = max(wanted, math.ceil(r.value / trig.target))
        return min(wanted, self.setup.spec.max_replicas)

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> PolicyResult:
        a, dt, policy, cluster = self.a, self.dt, self.policy, self.cluster
        series = Series()
        record_every = max(1, self.n_ticks // 2000)
        window = max(1, round(60 / dt))
        recent: deque[float] = deque(maxlen=window)
        next_poll = next_hpa = next_consolidation = 0.0
        batch_start: float | None = None
        last_unbound_rise = 0.0
        prev_unbound = 0
        busy = 0.0
        poll = self.setup.polling_interval_s
        if policy.static:
            self._start_static()
        for i in range(self.n_ticks):
            now = i * dt
            cluster.advance(now)
            while self.events and self.events[0][0] <= now:
                _, _, kind, node_id = heapq.heappop(self.events)
                self._node_event(kind, node_id, now)
            # the autoscaler
            if not policy.static:
                scheduled = now >= next_poll or (now >= next_hpa and self.replicas > 0)
                if now >= next_poll:
                    next_poll += poll
                if now >= next_hpa:
                    next_hpa += a.hpa_sync_s
                if scheduled or policy.event_driven:
                    readings = self._readings(busy, recent)
                    d = decide(self.setup.spec, readings, self.replicas, cluster.ready_pods, self.state, now)
                    if self.predictor is not None:
                        d = self._predictive(readings, d, now)
                    # Between its scheduled decisions an event-driven autoscaler acts only to add
                    # capacity: scale-down keeps the cadence its stabilization window was tuned for.
                    if not scheduled and (d.replicas is None or d.replicas <= self.replicas):
                        d.replicas = None
                    else:
                        self.state = d.state
                    if d.replicas is not None and d.replicas != self.replicas:
                        self.replicas = d.replicas
                        self.replica_changes += 1
                        self.history.append((now, self.replicas))
                        cluster.set_replicas(self.replicas, now)
                        cluster.schedule(now)
                    if policy.together:
                        cluster.schedule(now)
                        ahead = max(self._wanted_by_metrics(readings), self.replicas) - self.replicas
                        missing = cluster.unbound + ahead - self._free_slots()
                        if missing > 0:
                            if policy.forecast_consolidation:
                                # size what must be launched anyway for the level the workload just had
                                missing = max(missing, self._recent_peak(now) - self._slots_alive())
                            self._launch_for(missing, now, protect=a.protect_s)
                            cluster.schedule(now)
            # Karpenter's way: pods go Pending, get noticed, are batched, then nodes launch
            if policy.batching and cluster.unbound:
                cluster.schedule(now)
                if cluster.unbound > prev_unbound:
                    last_unbound_rise = now
                    if batch_start is None:
                        batch_start = now + a.pending_detect_s
                prev_unbound = cluster.unbound
                if cluster.unbound and batch_start is not None and now >= batch_start and (
                        now - last_unbound_rise >= a.batch_idle_s + a.pending_detect_s
                        or now - batch_start >= a.batch_max_s):
                    self._launch_for(cluster.unbound, now)
                    cluster.schedule(now)
                    batch_start = None
                    prev_unbound = cluster.unbound
            elif not cluster.unbound:
                batch_start, prev_unbound = None, 0
            if not policy.static and now >= next_consolidation:
                next_consolidation += a.consolidation_interval_s
                self._consolidate(now)
            # the work (and the money: every node change of this tick has happened by now)
            self.queue.arrive(now, float(self.arrivals[i]))
            recent.append(float(self.arrivals[i]))
            served = self.queue.serve(now, cluster.ready_pods * a.pod_rate * dt)
            busy = served / (a.pod_rate * dt)
            cost_rate, idle_rate = self._rates()
            if not self.gap[i]:
                self.idle_cost += idle_rate * dt / 3600
            if cluster.unbound and not self.gap[i]:
                self.max_pending = max(self.max_pending, cluster.unbound)
                self.pending_seconds += cluster.unbound * dt
            if i % record_every == 0:
                series.t.append(now)
                series.load.append(math.nan if self.gap[i] else float(self.arrivals[i]) / dt)
                series.replicas.append(self.replicas)
                series.ready.append(cluster.ready_pods)
                series.nodes.append(len(cluster.nodes))
                series.cost_per_hour.append(cost_rate)
                series.backlog.append(self.queue.backlog)
            if self.progress is not None and i % 10000 == 9999:
                self.progress(10000)
        if self.progress is not None:
            self.progress(self.n_ticks % 10000)
        return self._result(series)

    def _readings(self, busy: float, recent: deque[float]) -> dict[str, TriggerReading]:
        out = {}
        for t in self.setup.triggers:
            if t.signal == "backlog":
                value = self.queue.backlog
            elif t.signal == "backlog+inflight":
                value = self.queue.backlog + busy * self.a.pod_rate * self.a.service_time_s
            elif t.signal == "rate":
                value = sum(recent) / (len(recent) * self.dt) if recent else 0.0
            else:
                out[t.key] = TriggerReading(0.0, False)
                continue
            value = math.floor(value) if t.signal != "rate" else value  # queues hold whole items
            out[t.key] = TriggerReading(value, value > t.activation)
        return out

    def _start_static(self) -> None:
        peak = float(self.arrivals.max()) / self.dt if len(self.arrivals) else 0.0
        self.replicas = max(1, math.ceil(peak / self.a.pod_rate - 1e-9))
        self.cluster.pod_start_s, start = 0.0, self.cluster.pod_start_s
        planned, _ = self.planner.plan(self.replicas)
        for p in planned:
            self.cluster.launch(p.instance_type, p.capacity_type, p.zone, p.nodepool, p.price_per_hour,
                                p.price_per_hour, self.planner.slots(p.instance_type), 0.0, 0.0)
        self.cluster.set_replicas(self.replicas, 0.0)
        self.cluster.schedule(0.0)
        self.cluster.advance(0.0)
        self.cluster.pod_start_s = start

    # --- spot interruptions ----------------------------------------------------------------------
    def _node_event(self, kind: str, node_id: int, now: float) -> None:
        if kind == "replace":
            self._finish_replace(node_id, now)
            return
        node = self.cluster.nodes.get(node_id)
        if node is None:
            return
        if kind == "notice" and node.doomed_at is None:
            node.doomed_at = now + self.a.spot_notice_s
            self._push(node.doomed_at, "terminate", node_id)
            if self.policy.together and node.pods:
                # launch the replacement first; move the pods once it is up (or when time runs out)
                repl = self._launch_for(node.pods, now, protect=self.a.protect_s)
                self.replacements[node_id] = repl
                ready = max((n.ready_at for n in repl), default=now)
                self._push(min(ready, node.doomed_at), "migrate", node_id)
            else:
                # Karpenter taints and drains on the warning; the pods go Pending and take the usual path
                self.cluster.move_pods(node, self._targets(exclude=node), now)
        elif kind == "migrate":
            targets = self.replacements.pop(node_id, []) + self._targets(exclude=node)
            self._remove(node, [n for n in targets if n.id in self.cluster.nodes], now, terminate=False)
        elif kind == "drained":
            if node.draining:
                self.cluster.finish_drain(node, now)
        elif kind == "terminate":
            self.replacements.pop(node_id, None)
            self.cluster.terminate(node, now)
        self._dirty()

    def _finish_replace(self, key: int, now: float) -> None:
        ids, later, new = self._replace_sets.pop(key)
        self.replacing.difference_update(later)
        targets = [n for n in new if n.id in self.cluster.nodes]
        for node_id in ids:
            self.replacing.discard(node_id)
            node = self.cluster.nodes.get(node_id)
            if node is None:
                continue
            self._remove(node, sorted(targets, key=lambda n: n.free) + self._targets(exclude=node), now)
        self._dirty()

    def _remove(self, node: Node, targets: list[Node], now: float, terminate: bool = True) -> bool:
        """Take `node`'s pods off it. Karpenter evicts (the pods restart elsewhere: a capacity dip);
        surge starts their successors first and removes the node once they are ready."""
        if self.policy.together and node.pods:
            done = self.cluster.drain_gently(node, targets, now)
            if done is None:
                return False
            self._push(done if node.doomed_at is None else min(done, node.doomed_at), "drained", node.id)
            return True
        self.cluster.move_pods(node, targets, now)
        if terminate:
            self.cluster.terminate(node, now)
        return True

    def _targets(self, exclude: Node) -> list[Node]:
        return sorted((n for n in self.cluster.nodes.values() if n is not exclude and n.free > 0),
                      key=lambda n: (n.ready_at, n.free))

    # --- consolidation ---------------------------------------------------------------------------
    def _consolidate(self, now: float) -> None:
        if self.consolidation_policy == "Never" or self.consolidate_after is None:
            return
        nodes = [n for n in self.cluster.nodes.values() if n.doomed_at is None and not n.draining]
        if not nodes:
            return
        budget = self._budget(len(self.cluster.nodes))
        keep = self.replicas
        if self.policy.forecast_consolidation:
            window = self.setup.spec.behavior.scale_down.stabilization_window_seconds
            keep = max([keep] + [int(r) for t, r in self.state.hpa.recommendations if t >= now - window])
        total = sum(n.slots for n in nodes)
        eligible = sorted((n for n in nodes if n.ready_at <= now and now >= n.protected_until
                           and now - n.last_change >= self.consolidate_after),
                          key=lambda n: (n.pods, -n.price))
        removed: set[int] = set()
        eligible = [n for n in eligible if n.id not in self.replacing]
        for node in eligible:
            if budget <= 0:
                break
            if total - node.slots < keep:
                continue
            if node.pods:
                if self.consolidation_policy != "WhenEmptyOrUnderutilized":
                    continue
                others = sorted((n for n in nodes if n.id != node.id and n.id not in removed and n.free > 0
                                 and n.ready_at <= now), key=lambda n: n.free)
                if sum(n.free for n in others) < node.pods:
                    continue
                if not self._remove(node, others, now):
                    continue
            else:
                self.cluster.terminate(node, now)
            removed.add(node.id)
            total -= node.slots
            budget -= 1
        if budget > 0 and not removed:
            self._replace_cheaper([n for n in eligible if n.pods], budget, now)

    def _replace_cheaper(self, candidates: list[Node], budget: int, now: float) -> None:
        """Replace consolidation: when a cheaper set of nodes would hold the candidates' pods, launch
        it; once it is up, the first `budget` old nodes are drained into it, and later passes drain
        the rest through the underutilized rule (their pods fit in the new room), budget by budget."""
        pods = sum(n.pods for n in candidates)
        if not candidates or not pods:
            return
        if self.policy.forecast_consolidation:
            # the replacement must also hold the level the workload just had, or it is churn
            others = self._slots_alive() - sum(n.slots for n in candidates)
            pods = max(pods, self._recent_peak(now) - others)
        planned, stuck = self.planner.plan(pods)
        old_cost = sum(n.price for n in candidates)
        if stuck or sum(p.price_per_hour for p in planned) >= old_cost * (1 - self.a.replace_margin):
            return
        new = self._launch_for(pods, now, protect=self.a.protect_s, consolidating=True)
        chosen = sorted(candidates, key=lambda n: n.pods / max(n.slots, 1))
        ids = [n.id for n in chosen]
        self.replacing.update(ids)
        self._seq += 1
        self._replace_sets[self._seq] = (ids[:budget], ids[budget:], new)
        self._push(max(n.ready_at for n in new), "replace", self._seq)

    def _budget(self, count: int) -> int:
        spec = self.budget_nodes.strip()
        if spec.endswith("%"):
            return math.ceil(count * float(spec[:-1]) / 100)
        return int(spec)

    # --- the result ------------------------------------------------------------------------------
    def _result(self, series: Series) -> PolicyResult:
        end = self.n_ticks * self.dt
        stats = self.queue.stats(end)
        nodes = self.cluster.all_nodes()
        by_pool: dict[str, float] = {}
        by_type: dict[str, float] = {}
        by_cap: dict[str, float] = {}
        cost = savings = seconds = 0.0
        for n in nodes:
            s = n.seconds(end) - self.trace.missing_seconds(n.launched_at, n.launched_at + n.seconds(end))
            c = s * n.price / 3600
            cost += c
            seconds += s
            savings += s * (n.on_demand_price - n.price) / 3600
            by_pool[n.pool or "?"] = by_pool.get(n.pool or "?", 0.0) + c
            by_type[n.instance_type] = by_type.get(n.instance_type, 0.0) + c
            by_cap[n.capacity_type] = by_cap.get(n.capacity_type, 0.0) + c
        launches, terminations = self.cluster.launches, self.cluster.terminations
        if self.policy.static:
            launches = 0  # nodes that were there all along are not scaling actions
        return PolicyResult(
            policy=self.policy.name, span_s=end, cost_usd=cost, node_hours=seconds / 3600,
            idle_cost_usd=self.idle_cost, spot_savings_usd=savings, slo_target_seconds=self.a.slo_seconds,
            slo_violation_minutes=stats.violation_minutes, wait_p50_s=stats.p50, wait_p95_s=stats.p95,
            wait_p99_s=stats.p99, wait_mean_s=stats.mean, dropped=stats.dropped,
            scaling_actions=self.replica_changes + launches + terminations, replica_changes=self.replica_changes,
            node_launches=launches, node_terminations=terminations, pod_moves=self.cluster.pod_moves,
            arrived=stats.arrived, processed=stats.processed, backlog_end=stats.backlog,
            max_pending_pods=self.max_pending, pending_pod_seconds=self.pending_seconds,
            cost_by_nodepool=by_pool, cost_by_instance_type=by_type, cost_by_capacity_type=by_cap,
            series=series, nodes=nodes, unplaceable_pods=self.unplaceable,
        )


def run_policies(trace: Trace, setup: Setup, policies: Sequence[Policy], a: Assumptions,
                 progress: Callable[[int], None] | None = None) -> list[PolicyResult]:
    return [simulate(trace, setup, p, a, progress) for p in policies]
