"""Read a window of cluster history from Prometheus into the allocation core's plain inputs.

The series are the ones OpenCost reads, from kube-state-metrics (kube_node_info, kube_node_labels,
kube_node_status_capacity, kube_pod_info, kube_replicaset_owner, kube_pod_labels,
kube_pod_container_status_running, kube_pod_container_resource_requests) and cAdvisor
(container_cpu_usage_seconds_total, container_memory_working_set_bytes), plus OpenCost's / surge's
own node cost metrics (node_total_hourly_cost for the instance type, kubecost_node_is_spot) and
surge_scaledobject_target_info (which workload a ScaledObject scales).

The window is cut into chunks; each chunk is a handful of PromQL aggregations evaluated by
Prometheus (presence counted on a `step` grid with subqueries, requests and memory averaged,
CPU seconds increased), so what travels is one number per pod per chunk, not raw samples.
Chunks are read in batches (one range query per aggregation and batch), one batch ahead of the
allocation, so memory stays bounded by the number of pods, not by the window.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from autoscaler.cost.allocation import Chunk, CostInputError, NodeInfo, PodInfo, PodUsage
from autoscaler.cost.prom import Prometheus, Sample

# a query range ends 1 ms before the chunk's end: [start, end) on both Prometheus 2 (closed ranges)
# and 3 (left-open ranges)
EPS = 0.001
CONTAINERS = 'container!="",container!="POD"'
NODE_LABELS = {
    "instance_type": ("label_node_kubernetes_io_instance_type", "label_beta_kubernetes_io_instance_type"),
    "capacity_type": ("label_karpenter_sh_capacity_type", "label_eks_amazonaws_com_capacity_type"),
    "zone": ("label_topology_kubernetes_io_zone", "label_failure_domain_beta_kubernetes_io_zone"),
    "region": ("label_topology_kubernetes_io_region", "label_failure_domain_beta_kubernetes_io_region"),
    "nodepool": ("label_karpenter_sh_nodepool", "label_eks_amazonaws_com_nodegroup"),
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, option: str) -> float:
    """'7d', '12h', '90m', '1w2d' → seconds; names the option when it is not a duration."""
    compact = text.strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", compact)
    total = sum(float(n) * UNITS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != compact or total <= 0:
        raise CostInputError(f"{option}: expected a positive duration like 7d, 12h or 30m; got {text!r}")
    return total


def plan_chunks(start: float, end: float, step_s: float, max_chunks: int = 48,
                max_chunk_s: float = 6 * 3600) -> list[tuple[float, float]]:
    """Chunks of whole steps: at most `max_chunks` (chart resolution) unless that makes a chunk longer
    than `max_chunk_s` (the samples one query may touch)."""
    steps = max(1, round((end - start) / step_s))
    per = max(1, math.ceil(steps / max_chunks))
    per = min(per, max(1, int(max_chunk_s // step_s)))
    out = []
    t = start
    while t < end - 1e-9:
        out.append((t, min(end, t + per * step_s)))
        t += per * step_s
    return out


# --- result parsing (pure) -------------------------------------------------------------------------
def _first(labels: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((labels[n] for n in names if labels.get(n)), None)


def _capacity_type(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.lower().replace("_", "-")
    return "spot" if v == "spot" else "on-demand" if v in ("on-demand", "ondemand") else None


def node_infos(info: list[Sample], labels: list[Sample], capacity: list[Sample], cost_metric: list[Sample],
               is_spot: list[Sample]) -> dict[str, NodeInfo]:
    """NodeInfo per node: labels first, then OpenCost/surge cost metrics, None where nothing said."""
    names = {m["node"] for m, _ in info if m.get("node")} | {m["node"] for m, _ in labels if m.get("node")}
    by_label = {m["node"]: m for m, _ in labels if m.get("node")}
    by_cost = {m["node"]: m for m, _ in cost_metric if m.get("node")}
    spot = {m["node"]: v for m, v in is_spot if m.get("node")}
    caps: dict[str, dict[str, float]] = {}
    for m, v in capacity:
        if m.get("node"):
            caps.setdefault(m["node"], {})[m.get("resource", "")] = v
    out = {}
    for n in names:
        lab, cost = by_label.get(n, {}), by_cost.get(n, {})
        ctype = _capacity_type(_first(lab, NODE_LABELS["capacity_type"]))
        if ctype is None and n in spot:
            ctype = "spot" if spot[n] >= 0.5 else "on-demand"
        cap = caps.get(n, {})
        out[n] = NodeInfo(
            n, _first(lab, NODE_LABELS["instance_type"]) or cost.get("instance_type") or None, ctype,
            _first(lab, NODE_LABELS["zone"]), _first(lab, NODE_LABELS["region"]) or cost.get("region") or None,
            _first(lab, NODE_LABELS["nodepool"]), cap.get("cpu"), cap.get("memory"),
            cap.get("nvidia_com_gpu", cap.get("nvidia.com/gpu")))
    return out


def pod_infos(info: list[Sample], rs_owner: list[Sample], targets: list[Sample],
              labels: list[Sample] | None) -> dict[tuple[str, str], PodInfo]:
    """PodInfo per (namespace, pod): node, owning workload (ReplicaSet → Deployment), the ScaledObject
    scaling that workload, and labels (label_<name> → name, as kube-state-metrics spells them)."""
    rs = {(m.get("namespace", ""), m.get("replicaset", "")): (m.get("owner_kind", ""), m.get("owner_name", ""))
          for m, _ in rs_owner}
    scaled = {(m.get("namespace", ""), m.get("scaleTargetKind", "Deployment"), m.get("scaleTargetName", "")):
              m.get("scaledObject", "") for m, _ in targets}
    pod_labels: dict[tuple[str, str], dict[str, str]] = {}
    for m, _ in labels or []:
        pod_labels[(m.get("namespace", ""), m.get("pod", ""))] = {
            k[6:]: v for k, v in m.items() if k.startswith("label_") and v}
    out = {}
    for m, _ in info:
        ns, pod = m.get("namespace", ""), m.get("pod", "")
        kind, name = m.get("created_by_kind", ""), m.get("created_by_name", "")
        if kind == "ReplicaSet":
            okind, oname = rs.get((ns, name), ("", ""))
            if okind and okind != "<none>" and oname and oname != "<none>":
                kind, name = okind, oname
        if not kind or kind == "<none>" or not name or name == "<none>":
            kind, name = "Pod", pod
        out[(ns, pod)] = PodInfo(ns, pod, m.get("node") or None, f"{kind}/{name}", scaled.get((ns, kind, name)),
                                 pod_labels.get((ns, pod), {}))
    return out


Keyed = tuple[Any, float]  # (a key computed once per series, value)


def _ns_pod(m: Mapping[str, str]) -> tuple[str, str]:
    return m.get("namespace", ""), m.get("pod", "")


def _container(m: Mapping[str, str]) -> tuple[str, str, str]:
    return m.get("namespace", ""), m.get("pod", ""), m.get("container", "")


def _request(m: Mapping[str, str]) -> tuple[str, str, str, str, str]:
    return m.get("namespace", ""), m.get("pod", ""), m.get("container", ""), m.get("resource", ""), m.get("node", "")


def _node(m: Mapping[str, str]) -> str:
    return m.get("node", "")


# the key of each chunk query's series, in chunk_queries' order (recorded prices last)
KEYS: tuple[Callable[[Mapping[str, str]], Any], ...] = (_node, _ns_pod, _request, _container, _container,
                                                         _node, _node, _node, _node)


def chunk_from(start: float, end: float, step_s: float, node_counts: list[Sample], pod_counts: list[Sample],
               requests: list[Sample], cpu_seconds: list[Sample], memory: list[Sample]) -> Chunk:
    """One chunk's query answers (instant vectors) as node hours and pod usages; see chunk_keyed."""
    answers = (node_counts, pod_counts, requests, cpu_seconds, memory)
    node_k, pods_k, req_k, cpu_k, mem_k = ([(key(m), v) for m, v in a] for key, a in zip(KEYS, answers, strict=False))
    return chunk_keyed(start, end, step_s, node_k, pods_k, req_k, cpu_k, mem_k)


def chunk_keyed(start: float, end: float, step_s: float, node_counts: list[Keyed], pod_counts: list[Keyed],
                requests: list[Keyed], cpu_seconds: list[Keyed], memory: list[Keyed]) -> Chunk:
    """Node hours and pod usages: averages over the hours each pod ran, and per container
    max(request, usage) summed over the pod (OpenCost's allocation). Samples come keyed by KEYS."""
    hours_per_step = step_s / 3600
    node_hours = {node: v * hours_per_step for node, v in node_counts if node}
    hours = {key: v * hours_per_step for key, v in pod_counts}
    # per pod: container → [cpu request, memory request, gpu request, cpu seconds, memory usage]
    pods: dict[tuple[str, str], dict[str, list[float]]] = {key: {} for key in hours}
    where: dict[tuple[str, str], str] = {}
    slot = {"cpu": 0, "memory": 1, "nvidia_com_gpu": 2}
    for (ns, pod, container, resource, node), v in requests:
        containers = pods.get((ns, pod))
        i = slot.get(resource)
        if containers is None or i is None:
            continue  # requested but never running in this chunk (Pending): not charged
        row = containers.get(container)
        if row is None:
            row = containers[container] = [0.0, 0.0, 0.0, 0.0, 0.0]
        row[i] += v
        if node:
            where[(ns, pod)] = node
    for i, answer in ((3, cpu_seconds), (4, memory)):
        for (ns, pod, container), v in answer:
            containers = pods.get((ns, pod))
            if containers is None:
                continue
            row = containers.get(container)
            if row is None:
                row = containers[container] = [0.0, 0.0, 0.0, 0.0, 0.0]
            row[i] += v
    usages = []
    for key, containers in pods.items():
        h = hours[key]
        seconds = h * 3600
        cpu_req = mem_req = gpu = cpu_use = mem_use = cpu_alloc = mem_alloc = 0.0
        for c_cpu, c_mem, c_gpu, c_cpu_s, c_mem_use in containers.values():
            c_use = c_cpu_s / seconds if seconds > 0 else 0.0
            cpu_req += c_cpu
            mem_req += c_mem
            gpu += c_gpu
            cpu_use += c_use
            mem_use += c_mem_use
            cpu_alloc += c_cpu if c_cpu > c_use else c_use
            mem_alloc += c_mem if c_mem > c_mem_use else c_mem_use
        usages.append(PodUsage(key[0], key[1], h, cpu_req, cpu_use, mem_req, mem_use, gpu, where.get(key),
                               cpu_alloc, mem_alloc))
    return Chunk(start, end, node_hours, usages)


# --- the queries (I/O) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step_s: float


def _dur(seconds: float) -> str:
    return f"{round(seconds)}s"


def read_metadata(prom: Prometheus, w: Window, label_key: str | None) -> tuple[
        dict[str, NodeInfo], dict[tuple[str, str], PodInfo], bool]:
    """Nodes, pods, and whether node prices were recorded (node_total_hourly_cost) in the window."""
    at, rng = w.end - EPS, _dur(w.end - w.start)

    def q(promql: str) -> list[Sample]:
        return prom.query(promql, at)

    with cf.ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(q, text) for name, text in {
            "node_info": f"last_over_time(kube_node_info[{rng}])",
            "node_labels": f"last_over_time(kube_node_labels[{rng}])",
            "capacity": f"max by (node, resource) (max_over_time(kube_node_status_capacity[{rng}]))",
            "cost": f"last_over_time(node_total_hourly_cost[{rng}])",
            "spot": f"last_over_time(kubecost_node_is_spot[{rng}])",
            "pod_info": f"last_over_time(kube_pod_info[{rng}])",
            "rs": f"last_over_time(kube_replicaset_owner[{rng}])",
            "targets": f"last_over_time(surge_scaledobject_target_info[{rng}])",
            **({"labels": f"last_over_time(kube_pod_labels[{rng}])"} if label_key else {}),
        }.items()}
        r = {k: f.result() for k, f in futures.items()}
    nodes = node_infos(r["node_info"], r["node_labels"], r["capacity"], r["cost"], r["spot"])
    pods = pod_infos(r["pod_info"], r["rs"], r["targets"], r.get("labels"))
    return nodes, pods, bool(r["cost"])


def scrape_interval(prom: Prometheus, w: Window) -> float | None:
    """The densest node's seconds between kube_node_info samples over the window (None: no nodes)."""
    got = prom.query(f"max(count_over_time(kube_node_info[{_dur(w.end - w.start)}]))", w.end - EPS)
    return (w.end - w.start) / got[0][1] if got and got[0][1] > 0 else None


def max_chunk_for(interval_s: float | None) -> float:
    """Chunks as long as ~720 samples per series (one query stays far below Prometheus's sample limit
    with tens of thousands of pods), between 6 h (30 s scrapes) and 24 h."""
    return 6 * 3600.0 if interval_s is None else min(24 * 3600.0, max(6 * 3600.0, 720 * interval_s))


RECORDED = ("node_total_hourly_cost", "node_cpu_hourly_cost", "node_ram_hourly_cost", "node_gpu_hourly_cost")


def recorded_prices(answers: Sequence[list[Keyed]]) -> dict[str, tuple[float, float | None, float | None,
                                                                        float | None]]:
    """Per node (total, cpu, ram, gpu) from the four recorded price aggregations (keyed by node);
    nodes without a positive total are left to the price book."""
    parts = [{node: v for node, v in a if node} for a in answers]
    return {n: (t, parts[1].get(n), parts[2].get(n), parts[3].get(n)) for n, t in parts[0].items() if t > 0}


def chunk_queries(start: float, end: float, step_s: float, recorded: bool = False) -> list[str]:
    """The chunk's aggregations; with `recorded`, also the node prices a cost exporter recorded."""
    c, s = _dur(end - start), _dur(step_s)
    extra = [f"max by (node) (avg_over_time({name}[{c}]))" for name in RECORDED] if recorded else []
    return [
        # steps on the grid where the node / a container of the pod was running; a subquery over a
        # plain selector (no per-step aggregation or comparison: several times cheaper on a month)
        f"max by (node) (count_over_time(kube_node_info[{c}:{s}]))",
        f"max by (namespace, pod) (sum_over_time(kube_pod_container_status_running[{c}:{s}]))",
        f'sum by (namespace, pod, container, node, resource) (avg_over_time(kube_pod_container_resource_requests'
        f'{{resource=~"cpu|memory|nvidia_com_gpu",{CONTAINERS}}}[{c}]))',
        f"sum by (namespace, pod, container) (increase(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{c}]))",
        f"sum by (namespace, pod, container) (avg_over_time(container_memory_working_set_bytes{{{CONTAINERS}}}[{c}]))",
        *extra,
    ]


def batches(chunks: list[tuple[float, float]], size: int) -> list[list[tuple[float, float]]]:
    """Runs of at most `size` consecutive chunks of equal length (one range query each)."""
    out: list[list[tuple[float, float]]] = []
    for c in chunks:
        last = out[-1] if out else None
        if last and len(last) < size and abs((last[0][1] - last[0][0]) - (c[1] - c[0])) < 1e-6:
            last.append(c)
        else:
            out.append([c])
    return out


def split_by_chunk(series: list[dict[str, Any]], first_end: float, length: float, n: int,
                   key: Callable[[Mapping[str, str]], Any]) -> list[list[Keyed]]:
    """A range query's raw answer (evaluated at each chunk's end) as one keyed vector per chunk; the
    key is computed once per series, the chunk found by the evaluation time."""
    out: list[list[Keyed]] = [[] for _ in range(n)]
    index = {round((first_end + i * length - EPS) * 1000): i for i in range(n)}
    for series_ in series:
        k = key(series_["metric"])
        for t, v in series_["values"]:
            i = index.get(round(t * 1000))
            if i is not None:
                out[i].append((k, float(v)))
    return out


def read_chunks(prom: Prometheus, w: Window, chunks: list[tuple[float, float]],
                progress: Callable[[int], None] | None = None, batch: int = 8,
                recorded: bool = False) -> Iterator[Chunk]:
    """The five aggregations of `batch` chunks at a time, each as one range query stepping from
    chunk end to chunk end: Prometheus selects the series once per batch instead of once per chunk
    (what dominates on a month of history). The next batch is read while this one is allocated;
    memory holds two batches of one number per pod and chunk."""
    runs = batches(chunks, batch)
    with cf.ThreadPoolExecutor(5) as pool:
        def submit(run: list[tuple[float, float]]) -> list[cf.Future[Any]]:
            length = run[0][1] - run[0][0]
            return [pool.submit(prom.query_range_raw, text, run[0][1] - EPS, run[-1][1] - EPS, length)
                    for text in chunk_queries(run[0][0], run[0][1], w.step_s, recorded)]

        pending = submit(runs[0]) if runs else []
        for k, run in enumerate(runs):
            answers = [f.result() for f in pending]
            pending = submit(runs[k + 1]) if k + 1 < len(runs) else []
            length = run[0][1] - run[0][0]
            per_chunk = [split_by_chunk(a, run[0][1], length, len(run), key) for a, key in zip(answers, KEYS,
                                                                                                 strict=False)]
            for i, (s, e) in enumerate(run):
                nodes, pods, reqs, cpu, mem = (per_chunk[q][i] for q in range(5))
                chunk = chunk_keyed(s, e, w.step_s, nodes, pods, reqs, cpu, mem)
                if recorded:
                    chunk = replace(chunk, recorded=recorded_prices([per_chunk[q][i] for q in range(5, 9)]))
                yield chunk
                if progress is not None:
                    progress(1)
