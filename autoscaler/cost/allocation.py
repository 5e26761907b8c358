"""Cost allocation the way OpenCost does it — pure: plain values in, plain values out, no I/O, no clock.

Rules (facts from OpenCost's cost model, our own code):
- A node costs its instance's hourly price (on-demand, or spot where the node is spot) for every
  step it was seen. The price is split into a per-core CPU, per-GiB RAM and per-GPU price in the
  ratio of OpenCost's default prices (CPU 0.031611, RAM 0.004237, GPU 0.95 $/h): with
  m = gpus·(GPU/RAM) + cores·(CPU/RAM) + GiB, RAM = price/m, CPU = RAM·(CPU/RAM), GPU = RAM·(GPU/RAM),
  so cores·CPU + GiB·RAM + gpus·GPU is the node's price exactly.
- A pod costs, per resource, the sum over its containers of max(average request, average usage)
  × the hours it ran × its node's unit price; GPUs are charged by request.
- Idle is a node's cost minus what its pods were charged (per resource). allocated + idle = total
  holds for every node, every chunk and the whole window, by construction.
- Nothing is dropped: a node without an instance type or price is charged at OpenCost's default
  unit prices, a pod on a node nobody reported sits on the synthetic node "unknown" at those prices,
  a pod with no namespace/owner/label value is grouped under "unknown"; each such case is a
  `Problem` naming the item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# OpenCost's default prices (configs/default.json): used for the CPU/RAM/GPU split ratio and to
# price what has no known instance price.
DEFAULT_CPU_HOURLY = 0.031611  # $ per core-hour
DEFAULT_RAM_HOURLY = 0.004237  # $ per GiB-hour
DEFAULT_GPU_HOURLY = 0.95  # $ per GPU-hour
GIB = 1024.0 ** 3
IDLE = "__idle__"
UNKNOWN = "unknown"
SPOT, ON_DEMAND = "spot", "on-demand"
GROUPINGS = ("namespace", "workload", "nodepool", "node", "scaledobject")


class CostInputError(ValueError):
    """An argument a report cannot be made from (bad grouping, bad window); names the option."""


@dataclass(frozen=True)
class NodeInfo:
    """What is known of a node over the window; None where nothing said."""

    name: str
    instance_type: str | None = None
    capacity_type: str | None = None  # "spot" / "on-demand"
    zone: str | None = None
    region: str | None = None
    nodepool: str | None = None
    cpu_cores: float | None = None
    memory_bytes: float | None = None
    gpus: float | None = None


@dataclass(frozen=True)
class NodePrice:
    hourly: float
    cpu_hourly: float  # per core
    ram_hourly: float  # per GiB
    gpu_hourly: float  # per GPU
    on_demand_hourly: float  # the same node on demand (spot savings); = hourly when on demand
    spot: bool
    source: str


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    pod: str
    node: str | None = None
    workload: str | None = None  # "Deployment/web", "StatefulSet/db", "Pod/x"
    scaled_object: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


class PodUsage(NamedTuple):
    """One pod over one chunk: hours it ran and its averages over them (requests, usage). A named
    tuple: a month of a big cluster makes hundreds of thousands of them."""

    namespace: str
    pod: str
    hours: float
    cpu_request: float = 0.0  # cores
    cpu_usage: float = 0.0  # cores
    memory_request: float = 0.0  # bytes
    memory_usage: float = 0.0  # bytes
    gpu_request: float = 0.0
    node: str | None = None  # where the request series said it ran (pod info wins)
    # Σ over containers of max(request, usage) — OpenCost takes the max per container; None: the
    # pod-level max(request, usage)
    cpu_allocation: float | None = None
    memory_allocation: float | None = None


@dataclass(frozen=True)
class Chunk:
    """One slice of the window: node hours seen and pod usages."""

    start: float
    end: float
    node_hours: Mapping[str, float]
    pods: Sequence[PodUsage]
    # node → (total $/h, per core, per GiB, per GPU) as the cluster's cost exporter (OpenCost's or
    # surge's) recorded them over the chunk; unit prices may be None
    recorded: Mapping[str, tuple[float, float | None, float | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    item: str  # "node ip-10-0-1-5", "pod default/web-1", ...
    message: str

    def __str__(self) -> str:
        return f"{self.item}: {self.message}"


@dataclass
class Cost:
    cpu: float = 0.0
    ram: float = 0.0
    gpu: float = 0.0

    @property
    def total(self) -> float:
        return self.cpu + self.ram + self.gpu

    def add(self, cpu: float, ram: float, gpu: float) -> None:
        self.cpu += cpu
        self.ram += ram
        self.gpu += gpu

    def to_json(self) -> dict[str, float]:
        return {"cpu": round(self.cpu, 6), "ram": round(self.ram, 6), "gpu": round(self.gpu, 6),
                "total": round(self.total, 6)}


@dataclass
class NodeTotal:
    name: str
    instance_type: str
    capacity_type: str
    nodepool: str
    hours: float = 0.0
    cost: Cost = field(default_factory=Cost)
    allocated: Cost = field(default_factory=Cost)
    spot_savings: float = 0.0
    price_source: str = ""

    @property
    def idle(self) -> float:
        return self.cost.total - self.allocated.total

    def to_json(self) -> dict[str, Any]:
        return {"node": self.name, "instance_type": self.instance_type, "capacity_type": self.capacity_type,
                "nodepool": self.nodepool, "hours": round(self.hours, 6), "cost": self.cost.to_json(),
                "allocated": self.allocated.to_json(), "idle": round(self.idle, 6),
                "spot_savings": round(self.spot_savings, 6), "price_source": self.price_source}


@dataclass
class Allocation:
    """A window's result: groups (for `by`), per node, per chunk, and what could not be known."""

    by: str
    start: float
    end: float
    groups: dict[str, Cost] = field(default_factory=dict)
    group_hours: dict[str, float] = field(default_factory=dict)  # pod-hours per group
    scaled_objects: dict[str, float] = field(default_factory=dict)  # "ns/ScaledObject" → $, whatever `by` is
    nodes: dict[str, NodeTotal] = field(default_factory=dict)
    series_t: list[float] = field(default_factory=list)  # chunk starts
    series: dict[str, list[float]] = field(default_factory=dict)  # group (and IDLE) → $ per chunk
    series_total: list[float] = field(default_factory=list)
    series_spot: list[float] = field(default_factory=list)  # $ of spot nodes per chunk
    problems: list[Problem] = field(default_factory=list)
    _problem_keys: set[tuple[str, str]] = field(default_factory=set, repr=False)

    @property
    def total(self) -> float:
        return sum(n.cost.total for n in self.nodes.values())

    @property
    def allocated(self) -> float:
        return sum(g.total for g in self.groups.values())

    @property
    def idle(self) -> float:
        return sum(n.idle for n in self.nodes.values())

    @property
    def spot_savings(self) -> float:
        return sum(n.spot_savings for n in self.nodes.values())

    @property
    def spot_cost(self) -> float:
        return sum(n.cost.total for n in self.nodes.values() if n.capacity_type == SPOT)

    def problem(self, item: str, message: str) -> None:
        if (item, message) not in self._problem_keys:
            self._problem_keys.add((item, message))
            self.problems.append(Problem(item, message))

    def rows(self) -> list[dict[str, Any]]:
        """One row per group, largest first, then the idle row; shares of the total."""
        total = self.total or 1.0
        out = [{"name": k, "hours": round(self.group_hours.get(k, 0.0), 4), **c.to_json(),
                "share": round(c.total / total, 6)}
               for k, c in sorted(self.groups.items(), key=lambda kv: (-kv[1].total, kv[0]))]
        idle = Cost()
        for n in self.nodes.values():
            idle.add(n.cost.cpu - n.allocated.cpu, n.cost.ram - n.allocated.ram, n.cost.gpu - n.allocated.gpu)
        out.append({"name": IDLE, "hours": 0.0, **idle.to_json(), "share": round(idle.total / total, 6)})
        return out

    def summary(self) -> dict[str, float]:
        total = self.total
        return {"total": round(total, 6), "allocated": round(self.allocated, 6), "idle": round(self.idle, 6),
                "idle_share": round(self.idle / total, 6) if total else 0.0,
                "spot_cost": round(self.spot_cost, 6),
                "spot_share": round(self.spot_cost / total, 6) if total else 0.0,
                "spot_savings": round(self.spot_savings, 6),
                "node_hours": round(sum(n.hours for n in self.nodes.values()), 6)}

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "start": self.start, "end": self.end, "summary": self.summary(),
                "groups": self.rows(),
                "nodes": [n.to_json() for n in sorted(self.nodes.values(), key=lambda n: n.name)],
                "series": {"t": self.series_t, "total": [round(v, 6) for v in self.series_total],
                           "spot": [round(v, 6) for v in self.series_spot],
                           "groups": {k: [round(v, 6) for v in vs] for k, vs in self.series.items()}},
                "problems": [{"item": p.item, "message": p.message} for p in self.problems]}


# --- node prices ----------------------------------------------------------------------------------
def split_price(hourly: float, cores: float, ram_gib: float, gpus: float) -> tuple[float, float, float]:
    """OpenCost's split of a node price into per-core, per-GiB and per-GPU prices (see module doc)."""
    cpu_to_ram = DEFAULT_CPU_HOURLY / DEFAULT_RAM_HOURLY
    gpu_to_ram = DEFAULT_GPU_HOURLY / DEFAULT_RAM_HOURLY
    multiple = gpus * gpu_to_ram + cores * cpu_to_ram + ram_gib
    if multiple <= 0:
        return 0.0, 0.0, 0.0
    ram = hourly / multiple
    return ram * cpu_to_ram, ram, ram * gpu_to_ram


def default_price(cores: float, ram_gib: float, gpus: float, source: str) -> NodePrice:
    hourly = cores * DEFAULT_CPU_HOURLY + ram_gib * DEFAULT_RAM_HOURLY + gpus * DEFAULT_GPU_HOURLY
    return NodePrice(hourly, DEFAULT_CPU_HOURLY, DEFAULT_RAM_HOURLY, DEFAULT_GPU_HOURLY, hourly, False, source)


@dataclass(frozen=True)
class Spec:
    cores: float
    memory_bytes: float
    gpus: float


PriceOf = Callable[[str, str | None, str | None, float], tuple[float | None, float | None]]
"""(instance type, capacity type, zone, at) → (price, on-demand price); None where unknown."""


def price_node(node: NodeInfo, spec: Spec | None, price_of: PriceOf, at: float,
               problems: Callable[[str, str], None]) -> NodePrice:
    """A node's hourly price now and its CPU/RAM/GPU split; every fallback is a problem."""
    item = f"node {node.name}"
    cores = node.cpu_cores if node.cpu_cores is not None else (spec.cores if spec else None)
    mem = node.memory_bytes if node.memory_bytes is not None else (spec.memory_bytes if spec else None)
    gpus = node.gpus if node.gpus is not None else (spec.gpus if spec else 0.0)
    if cores is None or mem is None:
        problems(item, "no capacity (kube_node_status_capacity) and no known instance type: its pods are "
                       "charged at OpenCost's default unit prices and the node costs what they were charged")
        return NodePrice(0.0, DEFAULT_CPU_HOURLY, DEFAULT_RAM_HOURLY, DEFAULT_GPU_HOURLY, 0.0, False, "none")
    if node.instance_type is None:
        problems(item, "no instance type label (node.kubernetes.io/instance-type) or cost metric: priced at "
                       "OpenCost's default unit prices")
        return default_price(cores, mem / GIB, gpus, "default")
    capacity = node.capacity_type
    if capacity is None:
        problems(item, "no capacity type (karpenter.sh/capacity-type or kubecost_node_is_spot): taken as on-demand")
        capacity = ON_DEMAND
    price, on_demand = price_of(node.instance_type, capacity, node.zone, at)
    source = capacity
    if price is None and capacity == SPOT and on_demand is not None:
        problems(item, f"no spot price for {node.instance_type} in {node.zone or 'any zone'}: priced on demand "
                       "(no spot savings counted)")
        price, source = on_demand, "on-demand (spot price unknown)"
    if price is None:
        problems(item, f"instance type {node.instance_type!r} has no known price: priced at OpenCost's default "
                       "unit prices")
        return default_price(cores, mem / GIB, gpus, "default")
    cpu, ram, gpu = split_price(price, cores, mem / GIB, gpus)
    return NodePrice(price, cpu, ram, gpu, on_demand if on_demand is not None else price, capacity == SPOT, source)


def recorded_price(node: NodeInfo, spec: Spec | None, rec: tuple[float, float | None, float | None, float | None],
                   price_of: PriceOf, at: float) -> NodePrice:
    """The price the cluster's cost exporter recorded for the node (OpenCost reads these series too);
    unit prices it did not record are split from the total. On-demand price for spot savings from
    the price book."""
    total, cpu, ram, gpu = rec
    if cpu is None or ram is None:
        cores = node.cpu_cores if node.cpu_cores is not None else (spec.cores if spec else 0.0)
        mem = node.memory_bytes if node.memory_bytes is not None else (spec.memory_bytes if spec else 0.0)
        gpus = node.gpus if node.gpus is not None else (spec.gpus if spec else 0.0)
        cpu, ram, gpu = split_price(total, cores, mem / GIB, gpus)
    spot = node.capacity_type == SPOT
    on_demand = price_of(node.instance_type, ON_DEMAND, node.zone, at)[1] if node.instance_type else None
    return NodePrice(total, cpu, ram, gpu or 0.0, on_demand if on_demand is not None and spot else total, spot,
                     "recorded")


# --- allocation ----------------------------------------------------------------------------------
def _group_of(by: str, pod: PodInfo | None, usage: PodUsage, node: NodeInfo | None) -> str:
    if by == "namespace":
        return usage.namespace or UNKNOWN
    if by == "node":
        return (pod.node if pod and pod.node else usage.node) or UNKNOWN
    if by == "nodepool":
        return (node.nodepool if node else None) or UNKNOWN
    if by == "workload":
        return f"{usage.namespace}/{pod.workload}" if pod and pod.workload else f"{usage.namespace}/{UNKNOWN}"
    if by == "scaledobject":
        return f"{usage.namespace}/{pod.scaled_object}" if pod and pod.scaled_object else f"{usage.namespace}/{UNKNOWN}"
    if by.startswith("label:"):
        return (pod.labels.get(by[6:]) if pod else None) or UNKNOWN
    raise CostInputError(f"--by: expected one of namespace, workload, nodepool, node, scaledobject, label:KEY; "
                         f"got {by!r}")


def check_by(by: str) -> None:
    if by not in GROUPINGS and not (by.startswith("label:") and len(by) > 6):
        raise CostInputError(f"--by: expected one of {', '.join(GROUPINGS)} or label:KEY; got {by!r}")


def allocate(by: str, start: float, end: float, nodes: Mapping[str, NodeInfo], pods: Mapping[tuple[str, str], PodInfo],
             chunks: Iterable[Chunk], spec_of: Callable[[str], Spec | None], price_of: PriceOf) -> Allocation:
    """Allocate every chunk's node cost to pods and idle; see the module doc for the rules."""
    check_by(by)
    out = Allocation(by, start, end)
    seen: dict[tuple[str, str], tuple[str, NodeInfo, str, str | None]] = {}  # pod → node, group, ScaledObject
    gaps: set[str] = set()
    for ci, chunk in enumerate(chunks):
        out.series_t.append(chunk.start)
        mid = (chunk.start + chunk.end) / 2
        prices: dict[str, NodePrice] = {}
        chunk_groups: dict[str, float] = {}
        chunk_total = chunk_spot = 0.0

        def node_total(name: str, info: NodeInfo) -> NodeTotal:
            nt = out.nodes.get(name)
            if nt is None:
                nt = out.nodes[name] = NodeTotal(name, info.instance_type or UNKNOWN, info.capacity_type or UNKNOWN,
                                                 info.nodepool or UNKNOWN)
            return nt

        def price(name: str, info: NodeInfo, prices: dict[str, NodePrice] = prices, mid: float = mid,
                  chunk: Chunk = chunk) -> NodePrice:
            """The node's price in this chunk (recorded, else from the book), computed once per chunk."""
            p = prices.get(name)
            if p is None:
                spec = spec_of(info.instance_type) if info.instance_type else None
                rec = chunk.recorded.get(name)
                p = prices[name] = recorded_price(info, spec, rec, price_of, mid) if rec is not None \
                    else price_node(info, spec, price_of, mid, out.problem)
                nt = node_total(name, info)
                nt.price_source = p.source
                if info.capacity_type is None:
                    nt.capacity_type = SPOT if p.spot else ON_DEMAND
            return p

        for name, hours in chunk.node_hours.items():
            info = nodes.get(name) or NodeInfo(name)
            p = price(name, info)
            nt = node_total(name, info)
            nt.hours += hours
            # the split parts add up to the price; pay the parts so allocation and idle stay exact
            cores, gib, gpus = _capacity(info, spec_of)
            if p.source == "none":  # nothing to price it by: it costs what its pods are charged
                cpu = ram = gpu = 0.0
            else:
                cpu, ram, gpu = cores * p.cpu_hourly * hours, gib * p.ram_hourly * hours, gpus * p.gpu_hourly * hours
                drift = p.hourly * hours - (cpu + ram + gpu)  # float rounding of the split
                cpu += drift
            nt.cost.add(cpu, ram, gpu)
            if p.spot:
                nt.spot_savings += max(0.0, p.on_demand_hourly - p.hourly) * hours
                chunk_spot += cpu + ram + gpu
            chunk_total += cpu + ram + gpu

        groups, group_hours, scaled = out.groups, out.group_hours, out.scaled_objects
        for u in chunk.pods:
            hours = u.hours
            if hours <= 0:
                continue
            key = (u.namespace, u.pod)
            resolved = seen.get(key)
            if resolved is None:
                resolved = seen[key] = _resolve(by, key, u, pods, nodes, chunk.node_hours, out.problem)
            node_name, node_info, g, so = resolved
            if node_name == UNKNOWN:
                p = UNKNOWN_PRICE
            else:
                p = prices.get(node_name) or price(node_name, node_info)
                if node_name not in chunk.node_hours and node_name not in gaps:
                    gaps.add(node_name)
                    out.problem(f"node {node_name}", "pods ran while the node had no samples (a gap in Prometheus): "
                                                     "charged at its unit prices, its idle may go negative")
            cores = u.cpu_allocation if u.cpu_allocation is not None else max(u.cpu_request, u.cpu_usage)
            cpu = cores * hours * p.cpu_hourly
            mem = u.memory_allocation if u.memory_allocation is not None else max(u.memory_request, u.memory_usage)
            ram = mem / GIB * hours * p.ram_hourly
            gpu = u.gpu_request * hours * p.gpu_hourly
            charged = cpu + ram + gpu
            nt = out.nodes.get(node_name) or node_total(node_name, node_info)
            nt.allocated.add(cpu, ram, gpu)
            if node_name == UNKNOWN or p.source == "none":  # nothing priced the node: it costs what its pods do
                nt.cost.add(cpu, ram, gpu)
                nt.price_source = p.source
                chunk_total += charged
            cost = groups.get(g)
            if cost is None:
                cost = groups[g] = Cost()
            cost.add(cpu, ram, gpu)
            group_hours[g] = group_hours.get(g, 0.0) + hours
            chunk_groups[g] = chunk_groups.get(g, 0.0) + charged
            if so is not None:
                scaled[so] = scaled.get(so, 0.0) + charged

        chunk_groups[IDLE] = chunk_total - sum(chunk_groups.values())
        for g, v in chunk_groups.items():
            out.series.setdefault(g, [0.0] * ci).append(v)
        for vs in out.series.values():
            if len(vs) < ci + 1:
                vs.append(0.0)
        out.series_total.append(chunk_total)
        out.series_spot.append(chunk_spot)
    for n in out.nodes.values():
        if n.idle < -0.005:
            out.problem(f"node {n.name}", f"pods were charged ${-n.idle:,.2f} more than the node cost "
                                          "(usage above capacity, or a gap in the node's samples)")
    return out


UNKNOWN_PRICE = default_price(0, 0, 0, "default")


def _resolve(by: str, key: tuple[str, str], u: PodUsage, pods: Mapping[tuple[str, str], PodInfo],
             nodes: Mapping[str, NodeInfo], node_hours: Mapping[str, float],
             problem: Callable[[str, str], None]) -> tuple[str, NodeInfo, str, str | None]:
    """Where a pod ran, its group and its ScaledObject — once per pod (they do not change)."""
    info_pod = pods.get(key)
    node_name = (info_pod.node if info_pod and info_pod.node else None) or u.node
    item = f"pod {key[0]}/{key[1]}"
    if info_pod is None:
        problem(item, "no kube_pod_info: workload and labels unknown")
    if not node_name or (node_name not in nodes and node_name not in node_hours):
        problem(item, f"runs on node {node_name or '(none)'} that no metric describes: charged at "
                      "OpenCost's default unit prices on node 'unknown'")
        node_name = UNKNOWN
    node_info = nodes.get(node_name) or NodeInfo(node_name)
    so = f"{key[0]}/{info_pod.scaled_object}" if info_pod is not None and info_pod.scaled_object else None
    return node_name, node_info, _group_of(by, info_pod, u, node_info), so


def _capacity(info: NodeInfo, spec_of: Callable[[str], Spec | None]) -> tuple[float, float, float]:
    spec = spec_of(info.instance_type) if info.instance_type else None
    cores = info.cpu_cores if info.cpu_cores is not None else (spec.cores if spec else 0.0)
    mem = info.memory_bytes if info.memory_bytes is not None else (spec.memory_bytes if spec else 0.0)
    gpus = info.gpus if info.gpus is not None else (spec.gpus if spec else 0.0)
    return cores, mem / GIB, gpus
