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
Chunks are read a few at a time ahead of the allocation, so memory stays bounded by the number
of pods, not by the window.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

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


def chunk_from(start: float, end: float, step_s: float, node_counts: list[Sample], pod_counts: list[Sample],
               requests: list[Sample], cpu_seconds: list[Sample], memory: list[Sample]) -> Chunk:
    """One chunk's query answers as node hours and pod usages (averages over the hours each ran)."""
    hours_per_step = step_s / 3600
    node_hours = {m["node"]: v * hours_per_step for m, v in node_counts if m.get("node")}
    pods: dict[tuple[str, str], dict[str, float]] = {}
    where: dict[tuple[str, str], str] = {}
    for m, v in pod_counts:
        pods.setdefault((m.get("namespace", ""), m.get("pod", "")), {})["hours"] = v * hours_per_step
    for m, v in requests:
        key = (m.get("namespace", ""), m.get("pod", ""))
        if key not in pods:
            continue  # requested but never running in this chunk (Pending): not charged
        pods[key][m.get("resource", "")] = v
        if m.get("node"):
            where[key] = m["node"]
    for m, v in cpu_seconds:
        key = (m.get("namespace", ""), m.get("pod", ""))
        if key in pods:
            pods[key]["cpu_seconds"] = v
    for m, v in memory:
        key = (m.get("namespace", ""), m.get("pod", ""))
        if key in pods:
            pods[key]["memory_usage"] = v
    usages = []
    for (ns, pod), d in pods.items():
        hours = d.get("hours", 0.0)
        used = d.get("cpu_seconds", 0.0) / (hours * 3600) if hours > 0 else 0.0
        usages.append(PodUsage(ns, pod, hours, d.get("cpu", 0.0), used, d.get("memory", 0.0),
                               d.get("memory_usage", 0.0), d.get("nvidia_com_gpu", 0.0), where.get((ns, pod))))
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
        dict[str, NodeInfo], dict[tuple[str, str], PodInfo]]:
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
    return nodes, pods


def chunk_queries(start: float, end: float, step_s: float) -> list[str]:
    c, s = _dur(end - start), _dur(step_s)
    return [
        f"count_over_time((group by (node) (kube_node_info))[{c}:{s}])",
        f"count_over_time((group by (namespace, pod) (kube_pod_container_status_running == 1))[{c}:{s}])",
        f'sum by (namespace, pod, node, resource) (avg_over_time(kube_pod_container_resource_requests'
        f'{{resource=~"cpu|memory|nvidia_com_gpu",{CONTAINERS}}}[{c}]))',
        f"sum by (namespace, pod) (increase(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{c}]))",
        f"sum by (namespace, pod) (avg_over_time(container_memory_working_set_bytes{{{CONTAINERS}}}[{c}]))",
    ]


def read_chunks(prom: Prometheus, w: Window, chunks: list[tuple[float, float]],
                progress: Callable[[int], None] | None = None, ahead: int = 2) -> Iterator[Chunk]:
    """Each chunk's five aggregations, `ahead` chunks in flight at once."""
    with cf.ThreadPoolExecutor(4) as pool:
        def submit(i: int) -> list[cf.Future[list[Sample]]]:
            s, e = chunks[i]
            return [pool.submit(prom.query, text, e - EPS) for text in chunk_queries(s, e, w.step_s)]

        pending = [submit(i) for i in range(min(ahead, len(chunks)))]
        for i, (s, e) in enumerate(chunks):
            futures = pending.pop(0)
            if i + ahead < len(chunks):
                pending.append(submit(i + ahead))
            nodes, pods, reqs, cpu, mem = (f.result() for f in futures)
            yield chunk_from(s, e, w.step_s, nodes, pods, reqs, cpu, mem)
            if progress is not None:
                progress(1)
