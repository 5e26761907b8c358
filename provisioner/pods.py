"""Pending pods as the packer sees them, read from ordinary Pod and Deployment manifests.

Identical pods (same owner, requests and constraints) form one `PodGroup`: real pending sets
come from a few Deployments, and packing counts instead of individual pods is what makes large
problems fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner.requirements import Requirements, Toleration
from provisioner.resources import Resources

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"


@dataclass(frozen=True)
class PodGroup:
    """`count` identical pods named `<name>-<i>` (or just `name` when it is a single Pod)."""

    name: str
    count: int
    requests: Resources
    requirements: tuple[Requirements, ...] = (Requirements(),)  # OR of terms (required node affinity)
    tolerations: tuple[Toleration, ...] = ()
    one_per_node: bool = False  # required hostname anti-affinity against its own pods
    zone_max_skew: int | None = None  # topology spread over zones (DoNotSchedule)
    pod_names: tuple[str, ...] = field(default=(), compare=False)

    def names(self) -> list[str]:
        if self.pod_names:
            return list(self.pod_names)
        return [self.name] if self.count == 1 else [f"{self.name}-{i}" for i in range(self.count)]


def _requests(pod_spec: Mapping[str, Any]) -> Resources:
    total = Resources(pods=1)
    for c in pod_spec.get("containers", []) or []:
        total = total + Resources.from_requests((c.get("resources") or {}).get("requests"), pods=0)
    init = Resources()
    for c in pod_spec.get("initContainers", []) or []:
        r = Resources.from_requests((c.get("resources") or {}).get("requests"), pods=0)
        init = Resources(max(init.cpu_m, r.cpu_m), max(init.memory_mib, r.memory_mib), max(init.gpu, r.gpu), 0)
    return Resources(max(total.cpu_m, init.cpu_m), max(total.memory_mib, init.memory_mib), max(total.gpu, init.gpu), 1)


def _matches_self(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def group_from_pod_spec(name: str, count: int, pod_spec: Mapping[str, Any], labels: Mapping[str, str]) -> PodGroup:
    base = Requirements.from_labels(pod_spec.get("nodeSelector") or {})
    affinity = pod_spec.get("affinity") or {}
    terms = (((affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
             .get("nodeSelectorTerms") or [])
    reqs = tuple(base.intersect(Requirements.from_terms(t.get("matchExpressions") or [])) for t in terms) or (base,)
    anti = (affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
    one_per_node = any(t.get("topologyKey") == HOSTNAME and _matches_self(t.get("labelSelector"), labels)
                       for t in anti)
    skew = None
    for c in pod_spec.get("topologySpreadConstraints") or []:
        if (c.get("topologyKey") == ZONE and c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
                and _matches_self(c.get("labelSelector"), labels)):
            skew = int(c.get("maxSkew", 1))
        if (c.get("topologyKey") == HOSTNAME and c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
                and int(c.get("maxSkew", 1)) == 1 and _matches_self(c.get("labelSelector"), labels)):
            one_per_node = True
    tolerations = tuple(Toleration(t.get("key", ""), t.get("operator", "Equal"), str(t.get("value", "")),
                                   t.get("effect", "")) for t in pod_spec.get("tolerations") or [])
    return PodGroup(name, count, _requests(pod_spec), reqs, tolerations, one_per_node, skew)


def groups_from_manifests(docs: Iterable[Mapping[str, Any]]) -> list[PodGroup]:
    """Pods and the pods of Deployments/StatefulSets/ReplicaSets (`replicas` copies, named <name>-<i>)."""
    groups = []
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        if kind == "Pod":
            groups.append(group_from_pod_spec(meta.get("name", "pod"), 1, doc.get("spec") or {},
                                              meta.get("labels") or {}))
        elif kind in ("Deployment", "StatefulSet", "ReplicaSet", "Job"):
            spec = doc.get("spec") or {}
            template = spec.get("template") or {}
            count = int(spec.get("replicas", 1) if kind != "Job" else spec.get("parallelism", 1))
            if count > 0:
                groups.append(group_from_pod_spec(meta.get("name", kind.lower()), count, template.get("spec") or {},
                                                  (template.get("metadata") or {}).get("labels") or {}))
    return groups


def daemonset_overhead(docs: Iterable[Mapping[str, Any]]) -> Resources:
    """Requests every new node pays for DaemonSet pods (those that tolerate everything or have no
    node selector are assumed to land on every node — the common case for agents)."""
    total = Resources()
    for doc in docs:
        if doc.get("kind") == "DaemonSet":
            spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            total = total + _requests(spec)
    return total
