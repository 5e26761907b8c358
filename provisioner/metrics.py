"""The provisioner's Prometheus metrics (registered with the operator's, one /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ProvisionerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.launched = Counter("surge_nodeclaims_launched", "Instances launched for NodeClaims",
                                ("nodepool", "capacity_type"), registry=r)
        self.launch_failures = Counter("surge_nodeclaims_launch_failures", "NodeClaims that could not be launched",
                                       ("nodepool", "reason"), registry=r)
        self.disrupted = Counter("surge_nodes_disrupted", "Nodes removed by disruption", ("nodepool", "reason"),
                                 registry=r)
        self.nodepool_ready = Gauge("surge_nodepool_ready", "1 when the NodePool can launch nodes", ("nodepool",),
                                    registry=r)
        self.unprovisionable = Gauge("surge_pods_unprovisionable", "Pending pods no node can be launched for",
                                     registry=r)
