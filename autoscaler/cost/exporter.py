"""OpenCost's metric names, exported by the operator so OpenCost's Grafana dashboards (and `surge cost`)
work on a cluster where surge runs — computed at scrape time from the objects the controllers
already watch.

Names and labels follow OpenCost's cost-model exporter:
  node_total_hourly_cost, node_cpu_hourly_cost (per core), node_ram_hourly_cost (per GiB),
  node_gpu_hourly_cost (per GPU), node_gpu_count, kubecost_node_is_spot
      {instance, node, instance_type, region, provider_id, arch}   (instance = the node's name)
  container_cpu_allocation (cores), container_memory_allocation_bytes
      {namespace, pod, container, instance, node}
plus surge's own: surge_scaledobject_target_info {namespace, scaledObject, scaleTargetKind,
scaleTargetName} (which workload a ScaledObject scales, for grouping cost by ScaledObject) and
surge_node_spot_savings_hourly (on-demand minus spot price of each spot node).

The operator sees requests, not usage (no metrics pipeline of its own), so the container
allocations are the requests; `surge cost` takes max(request, usage) from cAdvisor itself.
PersistentVolumes are not watched by the operator, so pv_hourly_cost is not exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from autoscaler.cost.allocation import NodeInfo, PriceOf, Spec, price_node
from provisioner.resources import quantity

NODE_LABELS = ("instance", "node", "instance_type", "region", "provider_id", "arch")
CONTAINER_LABELS = ("namespace", "pod", "container", "instance", "node")
NODE_METRICS = {
    "node_total_hourly_cost": "node_total_hourly_cost Total node cost per hour",
    "node_cpu_hourly_cost": "node_cpu_hourly_cost hourly cost for each cpu on this node",
    "node_ram_hourly_cost": "node_ram_hourly_cost hourly cost for each gb of ram on this node",
    "node_gpu_hourly_cost": "node_gpu_hourly_cost hourly cost for each gpu on this node",
    "node_gpu_count": "node_gpu_count count of gpu on this node",
    "kubecost_node_is_spot": "kubecost_node_is_spot Cloud provider info about node preemptibility",
    "surge_node_spot_savings_hourly": "On-demand minus spot price of a spot node, $/h",
}
Sample = tuple[str, tuple[str, ...], float]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def node_samples(nodes: Iterable[Mapping[str, Any]], price_of: PriceOf, spec_of: Callable[[str], Spec | None],
                 now: float, problems: Callable[[str, str], None] = lambda item, msg: None) -> list[Sample]:
    """The node cost metrics of Kubernetes Node objects, priced like `surge cost` prices them."""
    out: list[Sample] = []
    for node in nodes:
        meta = _meta(node)
        name, labels = meta.get("name", ""), meta.get("labels") or {}
        cap = (node.get("status") or {}).get("capacity") or {}
        ctype = labels.get("karpenter.sh/capacity-type") or labels.get("eks.amazonaws.com/capacityType")
        info = NodeInfo(name, labels.get("node.kubernetes.io/instance-type"),
                        ctype.lower().replace("_", "-") if ctype else None, labels.get("topology.kubernetes.io/zone"),
                        labels.get("topology.kubernetes.io/region"), labels.get("karpenter.sh/nodepool"),
                        quantity(cap["cpu"]) if "cpu" in cap else None,
                        quantity(cap["memory"]) if "memory" in cap else None,
                        quantity(cap.get("nvidia.com/gpu", 0)))
        spec = spec_of(info.instance_type) if info.instance_type else None
        p = price_node(info, spec, price_of, now, problems)
        key = (name, name, info.instance_type or "", info.region or "",
               (node.get("spec") or {}).get("providerID", ""), labels.get("kubernetes.io/arch", ""))
        gpus = info.gpus if info.gpus else (spec.gpus if spec else 0.0)
        out += [("node_total_hourly_cost", key, p.hourly), ("node_cpu_hourly_cost", key, p.cpu_hourly),
                ("node_ram_hourly_cost", key, p.ram_hourly),
                ("node_gpu_hourly_cost", key, p.gpu_hourly if gpus else 0.0),
                ("node_gpu_count", key, gpus), ("kubecost_node_is_spot", key, 1.0 if p.spot else 0.0)]
        if p.spot:
            out.append(("surge_node_spot_savings_hourly", key, max(0.0, p.on_demand_hourly - p.hourly)))
    return out


def container_samples(pods: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """Requests of every container of every pod bound to a node and not finished."""
    out: list[Sample] = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node or phase in ("Succeeded", "Failed"):
            continue
        meta = _meta(pod)
        for c in (pod.get("spec") or {}).get("containers") or []:
            req = (c.get("resources") or {}).get("requests") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""), c.get("name", ""), node, node)
            out.append(("container_cpu_allocation", key, quantity(req.get("cpu", 0))))
            out.append(("container_memory_allocation_bytes", key, quantity(req.get("memory", 0))))
    return out


def target_samples(target_of: Mapping[tuple[str, str], tuple[str, str, str]]) -> list[Sample]:
    """(namespace, ScaledObject) → (namespace, kind, name) as surge_scaledobject_target_info."""
    return [("surge_scaledobject_target_info", (ns, so, kind, name), 1.0)
            for (ns, so), (_, kind, name) in target_of.items()]


def price_of_catalog(catalog: Sequence[Any]) -> PriceOf:
    """Prices from provisioner InstanceTypes' offerings (spot where the catalog has spot offerings)."""
    by_name = {t.name: t for t in catalog}

    def price_of(itype: str, capacity: str | None, zone: str | None, at: float) -> tuple[float | None, float | None]:
        t = by_name.get(itype)
        if t is None:
            return None, None

        def cheapest(ct: str) -> float | None:
            found = [o.price for o in t.offerings if o.capacity_type == ct and (zone is None or o.zone == zone)]
            return min(found) if found else None
        od = cheapest("on-demand")
        return (cheapest("spot") if capacity == "spot" else od), od

    return price_of


class CostCollector(Collector):
    """Computes the samples at scrape time from live state the controllers keep."""

    def __init__(self, nodes: Callable[[], Iterable[Mapping[str, Any]]],
                 pods: Callable[[], Iterable[Mapping[str, Any]]],
                 targets: Callable[[], Mapping[tuple[str, str], tuple[str, str, str]]], price_of: PriceOf,
                 spec_of: Callable[[str], Spec | None], clock: Callable[[], float]) -> None:
        self.nodes, self.pods, self.targets = nodes, pods, targets
        self.price_of, self.spec_of, self.clock = price_of, spec_of, clock

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = {name: GaugeMetricFamily(name, doc, labels=NODE_LABELS) for name, doc in NODE_METRICS.items()}
        families["container_cpu_allocation"] = GaugeMetricFamily(
            "container_cpu_allocation", "container_cpu_allocation Percent of a single CPU used in a minute",
            labels=CONTAINER_LABELS)
        families["container_memory_allocation_bytes"] = GaugeMetricFamily(
            "container_memory_allocation_bytes", "container_memory_allocation_bytes Bytes of RAM used",
            labels=CONTAINER_LABELS)
        families["surge_scaledobject_target_info"] = GaugeMetricFamily(
            "surge_scaledobject_target_info", "The workload a ScaledObject scales",
            labels=("namespace", "scaledObject", "scaleTargetKind", "scaleTargetName"))
        samples = (node_samples(list(self.nodes()), self.price_of, self.spec_of, self.clock())
                   + container_samples(list(self.pods())) + target_samples(dict(self.targets())))
        for name, labels, value in samples:
            families[name].add_metric(list(labels), value)
        yield from families.values()


def install(registry: Any, autoscaler: Any | None, provisioner: Any | None,
            clock: Callable[[], float]) -> CostCollector:
    """Register the cost metrics with the operator's registry: nodes and pods from the provisioner's
    watches (none without it), ScaledObject targets from the autoscaler's."""
    from autoscaler.cost.prices import spec_of

    collector = CostCollector(
        (lambda: provisioner.nodes.values()) if provisioner is not None else (lambda: ()),
        (lambda: provisioner.pods.values()) if provisioner is not None else (lambda: ()),
        (lambda: autoscaler.target_of) if autoscaler is not None else (lambda: {}),
        price_of_catalog(provisioner.catalog if provisioner is not None else ()), spec_of, clock)
    registry.register(collector)
    return collector
