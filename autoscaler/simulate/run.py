"""One policy over one trace: the simulated cluster, driven by the decision functions the live
controllers call — the operator's `decide` on `engine.reaction`'s schedule, the provisioner's
`BatchWindow`, `make_plan`, `prepare_for` sizing, `provisioner.disruption` (consolidation,
budgets, interruption drains) with the same constants. Pure: simulated clock, no I/O. What is
modelled here is only the world: Kubernetes (ReplicaSet, scheduler), the cloud, the work.

Each tick, in order: pods and nodes whose time has come become ready (spot notices, drains and
replacements fire); the autoscaler decides if it is due; the ReplicaSet creates or deletes pods;
the scheduler binds pods to room; the provisioner batches pending pods and launches nodes;
consolidation looks for nodes to remove; work arrives and ready pods serve it; money is spent on
the nodes that now exist.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autoscaler.engine.decide import Decision, EngineState, ScalingSpec, TriggerReading, decide
from autoscaler.engine.follow import ahead_protection_s, surge_defaults
from autoscaler.engine.predictive import Predictive, TriggerForecast, apply_predictive, forecast_replicas
from autoscaler.engine.reaction import next_due, on_change, watch_interval
from autoscaler.simulate.cluster import Cluster, Node
from autoscaler.simulate.policy import Assumptions, Policy
from autoscaler.simulate.predict import QUANTILE, SimulatedPredictor
from autoscaler.simulate.signals import SimTrigger
from autoscaler.simulate.trace import Trace
from autoscaler.simulate.workload import FifoQueue
from provisioner.catalog import InstanceType
from provisioner.cloud.availability import UnavailableOfferings, catalog_now
from provisioner.cloud.base import Offering
from provisioner.disruption import (
    CONSOLIDATION_INTERVAL_S,
    DELETION_COST_EVERY_S,
    HANDOVER_DELETION_COST,
    SPOT_NOTICE_S,
    VALIDATION_S,
    Action,
    Handover,
    calm_at,
    deletion_costs,
    disruption_actions,
    drain_at,
    handover_done,
    handover_replicas,
    hands_over,
    revalidate,
)
from provisioner.nodepool import NodePool
from provisioner.plan import Plan, PlannedNode, make_plan
from provisioner.pods import PodGroup
from provisioner.problem import ExistingNode
from provisioner.provisioning import (
    BatchWindow,
    Disruption,
    NodeView,
    parse_duration,
    pool_in_zones,
    with_remaining_limits,
)
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
    do_not_disrupt: bool = False  # the pods carry karpenter.sh/do-not-disrupt: "true"
    http_timeout_s: float | None = None  # the route's readiness timeout (else Assumptions.http_timeout_s)
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
    slo_cold_minutes: int  # of those, minutes whose work arrived while no pod was ready (cold start)
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
    handovers: int = 0  # drains that made before they broke (`surge.sh/handover`), as the live provisioner's
    repacks: int = 0  # fragmented sets repacked (`repack_action`), as the live provisioner's `replace: repack`

    def summary(self) -> dict[str, Any]:
        keys = ("policy", "cost_usd", "node_hours", "idle_cost_usd", "spot_savings_usd", "slo_target_seconds",
                "slo_violation_minutes", "slo_cold_minutes", "wait_p50_s", "wait_p95_s", "wait_p99_s", "dropped",
                "scaling_actions")
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

    def __init__(self, setup: Setup, policy: Policy):
        self.setup = setup
        self.algorithm = policy.packer
        self.base: Sequence[InstanceType] = setup.catalog_spot if policy.spot else setup.catalog_on_demand
        self.catalog: Sequence[InstanceType] = self.base
        self.types = {t.name: t for t in self.catalog}
        self.avoiding: frozenset[tuple[str, str, str]] = frozenset()
        self._cache: dict[int, Plan] = {}
        self._room_cache: dict[tuple[Any, ...], Plan] = {}

    def steer(self, unavailable: UnavailableOfferings, now: float) -> None:
        """Plan on `catalog_now` (offerings marked unavailable avoided), as the live provisioner;
        memoised plans go when the marked set changes."""
        marked = unavailable.marked(now)
        if marked != self.avoiding:
            self.avoiding = marked
            self.catalog = catalog_now(self.base, unavailable, now)
            self._cache.clear()
            self._room_cache.clear()

    def plan(self, count: int, pools: Sequence[NodePool] | None = None) -> Plan:
        """`pools`: the NodePools with the limits left (not memoised; only given when they bind)."""
        if pools is not None:  # memoised on what the limits leave: pods Pending at a binding limit retry every 30 s
            key = ("limited", count, *((p.name, p.limit()) for p in pools))
            if key not in self._room_cache:
                if len(self._room_cache) > 4096:
                    self._room_cache.clear()
                group = replace(self.setup.pods, count=count, pod_names=())
                self._room_cache[key] = make_plan([group], pools, self.catalog, (), self.setup.overhead,
                                                  self.algorithm)
            return self._room_cache[key]
        if count not in self._cache:
            group = replace(self.setup.pods, count=count, pod_names=())
            self._cache[count] = make_plan([group], self.setup.pools, self.catalog, (), self.setup.overhead,
                                           self.algorithm)
        return self._cache[count]

    def plan_in_zone(self, count: int, zone: str) -> Plan:
        """make_plan for `count` pods in one zone: a spot interruption's replacement, which the live
        provisioner launches from the interrupted NodeClaim's spec (its zone pinned)."""
        key = (count, zone)
        if key not in self._room_cache:
            group = replace(self.setup.pods, count=count, pod_names=())
            pools = [pool_in_zones(p, [zone]) for p in self.setup.pools]
            self._room_cache[key] = make_plan([group], pools, self.catalog, (), self.setup.overhead, self.algorithm)
        return self._room_cache[key]

    def plan_with_room(self, count: int, room: Sequence[Node], pools: Sequence[NodePool] | None = None) -> Plan:
        """make_plan for `count` pods against the free room of `room` (what the live provisioner
        sees: existing nodes and in-flight NodeClaims), memoised on the room's shape."""
        free = [n for n in room if n.free > 0]
        if not free:
            return self.plan(count, pools)
        key = (count, tuple(sorted((n.instance_type, n.capacity_type, n.zone, n.pool, n.free) for n in free)))
        if pools is not None or key not in self._room_cache:
            if len(self._room_cache) > 4096:
                self._room_cache.clear()
            one = self.setup.pods.requests
            existing = [ExistingNode(str(n.id), {**self.types[n.instance_type].labels, "karpenter.sh/nodepool": n.pool,
                                                 "karpenter.sh/capacity-type": n.capacity_type,
                                                 "topology.kubernetes.io/zone": n.zone},
                                     Resources(one.cpu_m * n.free, one.memory_mib * n.free, one.gpu * n.free, n.free))
                        for n in free]
            group = replace(self.setup.pods, count=count, pod_names=())
            plan = make_plan([group], pools or self.setup.pools, self.catalog, existing, self.setup.overhead,
                             self.algorithm)
            if pools is not None:
                return plan
            self._room_cache[key] = plan
        return self._room_cache[key]

    def slots(self, instance_type: str) -> int:
        if self.setup.pods.one_per_node:
            return 1
        return self.setup.pods.requests.how_many_in(self.types[instance_type].allocatable - self.setup.overhead)

    def score(self, instance_type: str) -> tuple[float, float]:
        """The node's kube-scheduler LeastAllocated score as (with DaemonSets only, added per pod):
        the mean of the requested fractions of CPU and memory of its allocatable."""
        alloc, one, ds = self.types[instance_type].allocatable, self.setup.pods.requests, self.setup.overhead
        if alloc.cpu_m <= 0 or alloc.memory_mib <= 0:
            return 0.0, 1.0
        return ((ds.cpu_m / alloc.cpu_m + ds.memory_mib / alloc.memory_mib) / 2,
                (one.cpu_m / alloc.cpu_m + one.memory_mib / alloc.memory_mib) / 2)

    def on_demand_price(self, instance_type: str, zone: str) -> float:
        return next((o.price for o in self.types[instance_type].offerings
                     if o.capacity_type == "on-demand" and o.zone == zone), 0.0)

    def size(self, instance_type: str) -> Resources:
        """What a node counts against NodePool limits: its capacity, not its allocatable."""
        t = self.types[instance_type]
        return Resources(t.vcpu * 1000, t.memory_mib, t.gpu_count, 0)

    def is_gpu(self, instance_type: str) -> bool:
        return self.types[instance_type].gpu_count > 0


def _name(node_id: int) -> str:
    """A node's name in the decisions' views: ties between equal nodes (consolidation candidates,
    deletion-cost ranks) break by name, and these sort in launch order as instance ids do."""
    return f"{node_id:09d}"


def scale_for(trace: Trace, a: Assumptions) -> float:
    """The multiplier that makes the trace's p99 rate need `peak_pods` pods."""
    p99 = float(np.nanpercentile(trace.rates, 99))
    return a.peak_pods * a.pod_rate / p99 if p99 > 0 else 1.0


def tick_for(trace: Trace, a: Assumptions) -> float:
    """The largest tick ≤ the asked one that divides the trace interval (arrivals stay exact)."""
    return trace.interval / math.ceil(trace.interval / a.tick_s - 1e-9)


def arrivals_per_tick(trace: Trace, a: Assumptions, dt: float) -> np.ndarray:
    """Items arriving in each tick: interpolated within each interval (trace.arrivals), 0 in gaps."""
    out = trace.arrivals(dt, round(trace.span / dt))
    out *= a.scale  # in place: a year of 5-s ticks is 50 MB
    return out


def static_replicas(trace: Trace, a: Assumptions) -> int:
    """static-peak's fixed replicas: the trace's peak rate at its own resolution, served."""
    peak = float(np.nanmax(trace.counts)) * a.scale / trace.interval if len(trace.counts) else 0.0
    return max(1, math.ceil(peak / a.pod_rate - 1e-9))


def simulate(trace: Trace, setup: Setup, policy: Policy, a: Assumptions,
             progress: Callable[[int], None] | None = None, notices: Sequence[float] = (),
             readings: Callable[[float, Mapping[str, TriggerReading]], None] | None = None) -> PolicyResult:
    """Run one policy; `progress(n)` is called with the number of ticks done since its last call.
    `notices`: times at which the oldest spot node gets an interruption warning (scenarios).
    `readings(now, by_trigger)`: told what the triggers read at each decision (the differential
    test feeds them to the live operator)."""
    run = _Run(trace, setup, policy, a, progress)
    run.on_readings = readings
    for t in notices:
        run._push(t, "notice-oldest", -1)
    return run.run()


PROGRESS_EVERY = 10000  # ticks between progress callbacks
PREDICTIVE_ON = Predictive("on", QUANTILE)


class _Run:
    def __init__(self, trace: Trace, setup: Setup, policy: Policy, a: Assumptions,
                 progress: Callable[[int], None] | None):
        self.trace, self.setup, self.policy, self.a = trace, setup, policy, a
        # what the engine decides with: the live operator's `surge_defaults` for surge, KEDA's for KEDA
        self.spec = surge_defaults(setup.spec, policy.follow_work, policy.saturated_hold)
        self.progress = progress
        self.on_readings: Callable[[float, Mapping[str, TriggerReading]], None] | None = None
        self.dt = tick_for(trace, a)
        self.arrivals = arrivals_per_tick(trace, a, self.dt)
        self.n_ticks = len(self.arrivals)
        self.gap = trace.missing_ticks(self.dt, self.n_ticks)  # no data: no load, no cost accounted
        gpu_pods = setup.pods.requests.gpu > 0
        self.cluster = Cluster(a.pod_start_gpu_s if gpu_pods else a.pod_start_s, on_change=self._dirty)
        self.queue = FifoQueue(self.dt, trace.span + self.dt, a.slo_seconds,
                               (setup.http_timeout_s or a.http_timeout_s) if setup.http else None)
        self.planner = _Planner(setup, policy)
        self.rng = random.Random(a.seed)
        self.events: list[tuple[float, int, str, int]] = []  # (time, seq, kind, key): notice / drain / replaced
        self._seq = 0
        self.replicas = 0
        self.state = EngineState(created_at=0.0)
        lead = (a.pod_start_gpu_s + a.node_boot_gpu_s) if gpu_pods else (a.pod_start_s + a.node_boot_cpu_s)
        self.predictor = SimulatedPredictor(lead) if policy.predictive and setup.spec.triggers else None
        self.forecast: tuple[int, float] | None = None  # what the operator told the provisioner: (replicas, until)
        self._forecast_of: TriggerForecast | None = None  # the predictor's forecast the memos below are for
        self._forecasts: dict[str, TriggerForecast] = {}
        self._wanted: int | None = None
        self._applied: dict[tuple[int | None, int], int | None] = {}  # (decided, current) → apply_predictive's
        self.replica_changes = 0
        self._rates_dirty = True
        self._changed = True  # the cluster changed since the last consolidation round
        self._calm_until = -math.inf  # with no change, no consolidation decision can differ before then
        self._cost_rate = 0.0
        self._idle_rate = 0.0
        self.idle_cost = 0.0
        self.max_pending = 0
        self.unplaceable = 0
        self.pending_seconds = 0.0
        self.batch = BatchWindow()
        self.unavailable = UnavailableOfferings()  # reclaimed spot offerings, as handle_interruption marks them
        self.disruption = {p.name: Disruption.of(p) for p in setup.pools}
        self._scheduled_budgets = any(b.schedule for d in self.disruption.values() for b in d.budgets)
        self.expire_after = {p.name: parse_duration(p.spec.template.spec.expire_after, 720 * 3600.0)
                             for p in setup.pools}
        self.ranked_at = -math.inf
        self.disrupting: dict[int, str] = {}  # node id → its pool, while its replacement boots
        self.validating: list[Action] = []  # Karpenter's command waiting VALIDATION_S (its loop is blocked)
        self._replacements: dict[int, list[int]] = {}  # event key → the old node ids
        self.handovers: dict[int, Handover] = {}  # node id → its pods' stand-ins while it drains
        self.handovers_started = 0
        self.repacks = 0  # repack_action's replacements launched (the live `replace: repack` drains)
        self.trigger_types = tuple(t.type for t in setup.triggers)
        self.pushes = policy.events and any(t.pushes for t in setup.triggers)

    # --- bookkeeping -----------------------------------------------------------------------------
    def _dirty(self) -> None:
        self._rates_dirty = True
        self._changed = True

    def _rates(self) -> tuple[float, float]:
        if self._rates_dirty:
            nodes = self.cluster.nodes.values()
            self._cost_rate = sum(n.price for n in nodes)
            self._idle_rate = sum(n.price * (n.slots - n.pods) / n.slots for n in nodes if n.slots > 0)
            self._rates_dirty = False
        return self._cost_rate, self._idle_rate

    def _push(self, at: float, kind: str, key: int) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, key))

    # --- provisioning: what provisioner/controller.py does, on counted pods -----------------------
    def _launch(self, plan: Plan, now: float, protect_until: float | None = None) -> list[Node]:
        planned = plan.new_nodes
        kept = self._within_limits(planned)
        cut = sum(len(p.pods) for p in planned if all(p is not k for k in kept))
        self.unplaceable = max(self.unplaceable, len(plan.unschedulable) + cut)
        launched = []
        for p in kept:
            boot = self.a.node_boot_gpu_s if self.planner.is_gpu(p.instance_type) else self.a.node_boot_cpu_s
            node = self.cluster.launch(p.instance_type, p.capacity_type, p.zone, p.nodepool, p.price_per_hour,
                                       self.planner.on_demand_price(p.instance_type, p.zone) or p.price_per_hour,
                                       self.planner.slots(p.instance_type), now, boot,
                                       (protect_until - now) if protect_until is not None else 0.0,
                                       self.planner.score(p.instance_type))
            launched.append(node)
            if p.capacity_type == "spot" and self.a.spot_interruptions_per_node_hour > 0:
                gap = self.rng.expovariate(self.a.spot_interruptions_per_node_hour / 3600)
                self._push(now + gap, "notice", node.id)
        return launched

    def _limited(self, plan_for: Callable[[Sequence[NodePool] | None], Plan]) -> Plan:
        """Plan as the live provisioner does: on the NodePools with their limits lowered by what
        their nodes already hold (`with_remaining_limits`); the memoised plan without that when the
        limits do not bind."""
        plan = plan_for(None)
        if len(self._within_limits(plan.new_nodes)) == len(plan.new_nodes):
            return plan
        used: dict[str, Resources] = {}
        for n in self.cluster.nodes.values():
            used[n.pool] = used.get(n.pool, Resources()) + self.planner.size(n.instance_type)
        return plan_for([with_remaining_limits(p, used.get(p.name, Resources())) for p in self.setup.pools])

    def _within_limits(self, planned: Sequence[PlannedNode]) -> list[PlannedNode]:
        """The planned nodes that fit what the NodePools' limits leave (they count the nodes a pool
        already has): a plan from `_limited` fits; a replacement launched on a spot notice may not."""
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

    def _free(self) -> int:
        """Free room on nodes and in-flight ones (what `existing_capacity` + `_inflight_capacity` see)."""
        return sum(n.free for n in self.cluster.nodes.values())

    def _prepare_for(self, adding: int) -> Plan | None:
        """`ProvisioningController.prepare_for`: nodes for the pods being added, planned against the
        free room of nodes and in-flight NodeClaims as it is before those pods exist (the live
        provisioner plans them as pods of their own, beside the new Pending ones)."""
        if adding - self._free() <= 0:
            return None
        room = list(self.cluster.nodes.values())
        return self._limited(lambda pools: self.planner.plan_with_room(adding, room, pools))

    def _provision_batch(self, now: float, new_pending: bool) -> None:
        """The provisioning loop: pending pods (seen `pending_detect_s` after they appear) are batched
        by `BatchWindow.observe`, then planned together."""
        cluster = self.cluster
        if self.batch.observe(now, new_pending, cluster.unbound > 0, seen_at=now + self.a.pending_detect_s):
            unbound = cluster.unbound
            self._launch(self._limited(lambda pools: self.planner.plan(unbound, pools)), now)
            cluster.schedule(now)

    # --- the autoscaler: engine.decide on engine.reaction's schedule ------------------------------
    def _decide(self, readings: dict[str, TriggerReading], now: float) -> None:
        if self.on_readings is not None:
            self.on_readings(now, readings)
        d = decide(self.spec, readings, self.replicas, self.cluster.ready_pods, self.state, now)
        replicas = d.replicas if self.predictor is None else self._predictive(readings, d, now)
        self.state = d.state
        if replicas is None or replicas == self.replicas:
            return
        adding = replicas - self.replicas
        ahead = self._prepare_for(adding) if self.policy.launch_ahead and adding > 0 else None
        self.replicas = replicas
        self.replica_changes += 1
        self.cluster.set_replicas(self._target(), now)
        self.cluster.schedule(now)
        if ahead is not None:
            self._launch(ahead, now, protect_until=now + ahead_protection_s(self.spec, self.policy.follow_work))
            self.cluster.schedule(now)

    def _predictive(self, readings: dict[str, TriggerReading], d: Decision, now: float) -> int | None:
        """The live controller's predictive step: record, forecast, tell the provisioner, raise;
        returns the replicas to write (None: leave them). `forecast_replicas` and `apply_predictive`
        are pure and the forecast changes at most once per predictor step (5 min), so their answers
        are memoised on the forecast object; `apply_predictive`'s replicas depend only on the
        decision's replicas, the current replicas and the forecasts (its conditions, which the
        simulation does not publish, are all it adds)."""
        assert self.predictor is not None
        trig = self.spec.triggers[0]
        r = readings.get(trig.name)
        if r is not None and r.value is not None:
            self.predictor.observe(now, r.value)
        current = self.predictor.current
        if current is not self._forecast_of:
            self._forecast_of = current
            self._forecasts = {trig.name: current}
            self._wanted = forecast_replicas(self.spec, self._forecasts)[0]
            self._applied.clear()
        wanted, forecasts = self._wanted, self._forecasts
        if wanted is not None and self.policy.forecast_keep:
            replicas = min(wanted, self.spec.max_replicas)
            if self.forecast is None or self.forecast[0] != replicas:
                self._changed = True
            self.forecast = (replicas, now + self.predictor.horizon_s)
        key = (d.replicas, self.replicas)
        if key not in self._applied:
            self._applied[key] = apply_predictive(self.spec, PREDICTIVE_ON, d, self.replicas, forecasts).replicas
        return self._applied[key]

    def _readings(self, busy: float, recent: deque[float], now: float) -> dict[str, TriggerReading]:
        rate = sum(recent) / (len(recent) * self.dt) if recent else 0.0
        inflight = busy * self.a.pod_rate * self.a.service_time_s
        at = self.trace.start + now  # the trace's own clock (a cron trigger's window)
        return {t.key: t.reading(self.queue.backlog, inflight, rate, at) for t in self.setup.triggers}

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> PolicyResult:
        a, dt, policy, cluster = self.a, self.dt, self.policy, self.cluster
        series = Series()
        record_every = max(1, self.n_ticks // 2000)
        recent: deque[float] = deque(maxlen=max(1, round(60 / dt)))
        next_poll = next_hpa = next_consolidation = due = 0.0
        busy = 0.0
        prev_unbound = 0
        poll = self.setup.polling_interval_s
        watch = watch_interval(self.trigger_types) if policy.events else None
        # per-tick reads as Python floats/bools without a copy of the whole year (memoryview, not tolist)
        arrivals = np.ascontiguousarray(self.arrivals, dtype=np.float64).data
        gaps = np.ascontiguousarray(self.gap, dtype=np.bool_).data
        queue, events, pod_rate = self.queue, self.events, a.pod_rate
        if policy.static:
            self._start_static()
        for i in range(self.n_ticks):
            now = i * dt
            cluster.advance(now)
            while events and events[0][0] <= now:
                _, _, kind, key = heapq.heappop(events)
                self._event(kind, key, now)
            if self.handovers:
                self._handovers_due(now)
            if self.planner.avoiding:
                self.planner.steer(self.unavailable, now)
            if not policy.static:
                if policy.reaction == "keda-hpa":
                    # KEDA polls on its own clock (activation); the HPA syncs every 15 s while active
                    scheduled = now >= next_poll or (now >= next_hpa and self.replicas > 0)
                    if now >= next_poll:
                        next_poll += poll
                    if now >= next_hpa:
                        next_hpa += a.hpa_sync_s
                    if scheduled:
                        self._decide(self._readings(busy, recent, now), now)
                elif now >= due:
                    self._decide(self._readings(busy, recent, now), now)
                    due = next_due(due, poll, now, False, watch)
                if self.handovers:
                    # a scale-down may cover a running handover at once: the live handover loop
                    # looks again within milliseconds of the operator's write, not a tick later
                    self._handovers_due(now)
                self._provision_batch(now, cluster.unbound > prev_unbound)
                prev_unbound = cluster.unbound
                if now >= next_consolidation:
                    next_consolidation += CONSOLIDATION_INTERVAL_S
                    self._consolidate(now)
                    prev_unbound = min(prev_unbound, cluster.unbound)
            # the work (and the money: every node change of this tick has happened by now)
            backlog = queue.backlog
            arrived, gap = arrivals[i], gaps[i]
            queue.arrive(now, arrived)
            if cluster.ready_pods == 0 and arrived > 0:
                queue.mark_cold(now)
            recent.append(arrived)
            served = queue.serve(now, cluster.ready_pods * pod_rate * dt)
            busy = served / (pod_rate * dt)
            if self.pushes and queue.backlog != backlog:
                due = on_change(due, now)  # keyspace notification: decide at the next tick
            cost_rate, idle_rate = self._rates()
            if not gap:
                self.idle_cost += idle_rate * dt / 3600
            if cluster.unbound and not gap:
                self.max_pending = max(self.max_pending, cluster.unbound)
                self.pending_seconds += cluster.unbound * dt
            if i % record_every == 0:
                series.t.append(now)
                series.load.append(math.nan if gap else arrived / dt)
                series.replicas.append(self.replicas)
                series.ready.append(cluster.ready_pods)
                series.nodes.append(len(cluster.nodes))
                series.cost_per_hour.append(0.0 if gap else cost_rate)  # a gap is not charged (`_result`)
                series.backlog.append(queue.backlog)
            if self.progress is not None and i % PROGRESS_EVERY == PROGRESS_EVERY - 1:
                self.progress(PROGRESS_EVERY)
        if self.progress is not None:
            self.progress(self.n_ticks % PROGRESS_EVERY)
        return self._result(series)

    def _start_static(self) -> None:
        """Fixed replicas for the trace's peak, packed once onto the nodes the NodePool allows."""
        self.replicas = static_replicas(self.trace, self.a)
        self.cluster.pod_start_s, start = 0.0, self.cluster.pod_start_s
        plan = self.planner.plan(self.replicas)
        self.unplaceable = len(plan.unschedulable)  # a binding limit, not a batch window (report.warnings)
        for p in plan.new_nodes:
            self.cluster.launch(p.instance_type, p.capacity_type, p.zone, p.nodepool, p.price_per_hour,
                                self.planner.on_demand_price(p.instance_type, p.zone) or p.price_per_hour,
                                self.planner.slots(p.instance_type), 0.0, 0.0,
                                score=self.planner.score(p.instance_type))
        self.cluster.set_replicas(self.replicas, 0.0)
        self.cluster.schedule(0.0)
        self.cluster.advance(0.0)
        self.cluster.pod_start_s = start

    # --- interruptions and drains -----------------------------------------------------------------
    def _event(self, kind: str, key: int, now: float) -> None:
        if kind == "validate":
            self._validated(now)
            return
        if kind == "replaced":
            ids = self._replacements.pop(key)
            for node_id in ids:
                self.disrupting.pop(node_id, None)
                node = self.cluster.nodes.get(node_id)
                if node is not None:
                    self._retire(node, "Underutilized", now)
            return
        if kind == "notice-oldest":
            spot = [n for n in self.cluster.nodes.values() if n.capacity_type == "spot" and n.doomed_at is None]
            kind, key = "notice", min((n.id for n in spot), default=-1)
        node = self.cluster.nodes.get(key)
        if node is None:
            return
        if node.id in self.handovers:  # a spot notice cuts a handover short: drained by drain_at
            if kind == "notice":
                self._push(drain_at(now, None), "drain", node.id)
            elif kind == "drain":
                self._end_handover(node, now)
            return
        if kind == "notice" and node.doomed_at is None:
            # Karpenter and surge alike: taint, pre-spin a replacement for its pods, drain once it is
            # ready or by drain_at's deadline (provisioner/controller.py handle_interruption)
            node.doomed_at = now + SPOT_NOTICE_S
            self.unavailable.mark(Offering(node.instance_type, node.capacity_type, node.zone, node.price), now)
            self.planner.steer(self.unavailable, now)
            ready = None
            if node.pods:
                new = self._launch(self.planner.plan_in_zone(node.pods, node.zone), now)
                ready = max((n.ready_at for n in new), default=None)
            self._push(drain_at(now, ready), "drain", node.id)
            self.disrupting[node.id] = node.pool
        elif kind == "drain":
            self.disrupting.pop(node.id, None)
            self._drain(node, now)
        self._dirty()

    def _target(self) -> int:
        """The Deployment's replicas: the engine's, plus running handovers' extras (what the
        operator writes while the provisioner's `surge.sh/handover` annotation is there)."""
        return handover_replicas(self.replicas, (h.extra for h in self.handovers.values()))

    def _retire(self, node: Node, reason: str, now: float) -> None:
        """A disruption's drain: make before break where the policy hands over (the live
        provisioner's `_drain_and_delete`), else evict."""
        if not (self.policy.handover and hands_over(reason) and node.pods and not self.setup.do_not_disrupt):
            self._drain(node, now)
            return
        # cordon; the node's pods go first on any scale-down; extra replicas start elsewhere
        node.doomed_at = now
        self.disrupting[node.id] = node.pool
        self.cluster.deletion_cost[node.id] = HANDOVER_DELETION_COST
        self.handovers[node.id] = Handover(str(node.id), ("", "Deployment", "target"), node.pods, now,
                                           self._ready_elsewhere())
        self.handovers_started += 1
        self.cluster.set_replicas(self._target(), now)
        self.cluster.schedule(now)

    def _leaving(self) -> list[Node]:
        """Nodes being drained or replaced (the live `_leaving`): their pods cover nothing."""
        return [self.cluster.nodes[i] for i in {*self.disrupting, *self.handovers} if i in self.cluster.nodes]

    def _ready_elsewhere(self) -> int:
        """Ready pods off the leaving nodes (the live `_ready_pods`)."""
        return self.cluster.ready_pods - sum(n.ready for n in self._leaving())

    def _starting_elsewhere(self) -> int:
        """Pods not Ready yet off the leaving nodes, unbound ones included (the live `_starting_pods`)."""
        leaving = self._leaving()
        return self.cluster.pods - self.cluster.ready_pods - sum(n.pods - n.ready for n in leaving)

    def _handovers_due(self, now: float) -> None:
        ready, starting = self._ready_elsewhere(), self._starting_elsewhere()
        for node_id, h in list(self.handovers.items()):
            if handover_done(h, ready, now, self.replicas, starting):
                self._end_handover(self.cluster.nodes[node_id], now)

    def _end_handover(self, node: Node, now: float) -> None:
        """Take the extra replicas back (the ReplicaSet deletes the node's pods: lowest cost),
        evict what is left on the node, terminate it."""
        del self.handovers[node.id]
        self.disrupting.pop(node.id, None)
        self.cluster.set_replicas(self._target(), now)
        self.cluster.deletion_cost.pop(node.id, None)
        self._drain(node, now)

    def _drain(self, node: Node, now: float) -> None:
        """Evict the node's pods (they restart where the scheduler puts them, or go Pending), then
        terminate it."""
        count = node.pods
        if count:
            self.cluster.move_pods(node, [], now)  # all Pending: the scheduler places them below
            self.cluster.pod_moves += count
        self.cluster.terminate(node, now)
        if count:
            self.cluster.schedule(now)

    # --- consolidation: provisioner.disruption's decisions ----------------------------------------
    def _views(self, now: float) -> list[NodeView]:
        out = []
        for n in self.cluster.nodes.values():
            if n.ready_at > now or n.doomed_at is not None or n.id in self.disrupting:
                continue
            out.append(NodeView(_name(n.id), _name(n.id), n.pool, n.price, n.pods,
                                n.last_change if n.pods == 0 else None,
                                self.setup.do_not_disrupt and n.pods > 0,
                                n.protected_until if n.protected_until > n.launched_at else None,
                                n.launched_at, self.expire_after.get(n.pool), n.capacity_type, n.last_change))
        return out

    def _others_free(self, ids: set[str], now: float) -> int:
        return sum(n.free for n in self.cluster.nodes.values()
                   if n.ready_at <= now and _name(n.id) not in ids and n.id not in self.disrupting)

    def _plan_moving(self, views: Sequence[NodeView], now: float) -> Plan | None:
        """The nodes' pods onto the other registered nodes' room, the rest onto new nodes."""
        pods = sum(v.pods for v in views)
        ids = {v.name for v in views}
        if pods - self._others_free(ids, now) <= 0:
            return Plan([], 0.0, 0.0)
        others = [n for n in self.cluster.nodes.values()
                  if n.ready_at <= now and _name(n.id) not in ids and n.id not in self.disrupting]
        return self.planner.plan_with_room(pods, others)

    def _kept_for_forecast(self, views: Sequence[NodeView], now: float) -> bool:
        """`ProvisioningController._kept_for_forecast`: removing the nodes must leave room for the
        replicas a reliable forecast wants beyond the running ones."""
        if self.forecast is None or now >= self.forecast[1]:
            return False
        demand = self.forecast[0] - self.cluster.pods
        return demand > 0 and self._others_free({v.name for v in views}, now) < demand

    def _consolidate(self, now: float) -> None:
        views = None
        if self.policy.deletion_cost and now >= self.ranked_at + DELETION_COST_EVERY_S:
            # every round that is due ranks, calm or not, as the live disruption loop does
            self.ranked_at = now
            views = self._views(now)
            self.cluster.deletion_cost = {int(k): v for k, v in deletion_costs(views, now).items()}
            self.cluster.deletion_cost.update({i: HANDOVER_DELETION_COST for i in self.handovers})
        if self.validating:
            return  # Karpenter's disruption loop waits on its command's validation
        if not self._changed and now < self._calm_until:
            return  # nothing changed and no time limit passed: the last round's answer (nothing) holds
        self._changed = False
        if views is None:
            views = self._views(now)
        if not views:
            self._calm_until = math.inf
            return
        busy = self._busy_pools()
        keep: Callable[[Sequence[NodeView]], bool] = (
            (lambda nodes: self._kept_for_forecast(nodes, now)) if self.policy.forecast_keep else (lambda _: False))
        actions = disruption_actions(views, self.disruption, busy, now, lambda nodes: self._plan_moving(nodes, now),
                                     keep, spot_to_spot=self.policy.spot_to_spot,
                                     spot_min_saving=self.policy.spot_min_saving,
                                     repack_min_saving=self.policy.repack_min_saving)
        if not actions:
            self._calm_until = self._next_limit(views, now)
        if self.policy.validate:  # Karpenter: one emptiness command for all empty nodes, or one consolidation
            empty = tuple(v for a in actions if a.reason == "Empty" for v in a.nodes)
            self.validating = ([Action(empty, "Empty")] if empty else []) + [
                a for a in actions if a.reason == "Underutilized"]
            if self.validating:
                self._push(now + VALIDATION_S, "validate", -1)
            actions = [a for a in actions if a.reason not in ("Empty", "Underutilized")]
        for action in actions:
            self._disrupt(action, now)

    def _validated(self, now: float) -> None:
        """Karpenter's command, `VALIDATION_S` later: what still holds of it is carried out."""
        views = self._views(now)
        busy = self._busy_pools()
        for action in self.validating:
            still = revalidate(action, views, self.disruption, busy, now, lambda nodes: self._plan_moving(nodes, now),
                               self.policy.spot_to_spot, self.policy.spot_min_saving)
            if still is not None:
                self._disrupt(still, now)
        self.validating = []
        self._dirty()

    def _busy_pools(self) -> dict[str, int]:
        busy: dict[str, int] = {}
        for pool in self.disrupting.values():
            busy[pool] = busy.get(pool, 0) + 1
        return busy

    def _disrupt(self, action: Action, now: float) -> None:
        """Carry out one disruption: launch a replacement and drain once it is ready, or drain now."""
        nodes = [self.cluster.nodes[int(v.name)] for v in action.nodes]
        if action.kind == "replace":
            assert action.replacement is not None
            new = self._launch(action.replacement, now, action.protect_until)
            if not new:
                return
            if action.protect_until is not None:
                self.repacks += 1
            self._seq += 1
            self._replacements[self._seq] = [n.id for n in nodes]
            for n in nodes:  # tainted while the replacement boots (Karpenter and the live `_replace`)
                self.disrupting[n.id] = n.pool
                n.cordoned = True
            self._push(max(n.ready_at for n in new), "replaced", self._seq)
        else:
            for n in nodes:
                self._retire(n, action.reason, now)

    def _next_limit(self, views: Sequence[NodeView], now: float) -> float:
        """The first time a node passes consolidateAfter, its protection or its expiry; a forecast
        or a scheduled budget may change the answer at any round."""
        if self._scheduled_budgets:
            return now
        times = [math.inf if self.forecast is None else self.forecast[1]]
        for v in views:
            after = self.disruption.get(v.nodepool, Disruption()).consolidate_after_s
            since = v.pods_changed_at if v.pods_changed_at is not None else v.empty_since
            if after is not None and since is not None:
                times.append(since + after)
            if self.policy.repack_min_saving is not None:  # repack's lower margin for a calm set
                times.append(calm_at(v))
            if v.protected_until is not None:
                times.append(v.protected_until)
            if v.expire_after_s is not None:
                times.append(v.created_at + v.expire_after_s)
        later = [t for t in times if t > now]
        return min(later) if later else now

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
            slo_violation_minutes=stats.violation_minutes, slo_cold_minutes=stats.cold_violation_minutes,
            wait_p50_s=stats.p50, wait_p95_s=stats.p95,
            wait_p99_s=stats.p99, wait_mean_s=stats.mean, dropped=stats.dropped,
            scaling_actions=self.replica_changes + launches + terminations, replica_changes=self.replica_changes,
            node_launches=launches, node_terminations=terminations, pod_moves=self.cluster.pod_moves,
            arrived=stats.arrived, processed=stats.processed, backlog_end=stats.backlog,
            max_pending_pods=self.max_pending, pending_pod_seconds=self.pending_seconds,
            cost_by_nodepool=by_pool, cost_by_instance_type=by_type, cost_by_capacity_type=by_cap,
            series=series, nodes=nodes, unplaceable_pods=self.unplaceable, handovers=self.handovers_started,
            repacks=self.repacks,
        )

