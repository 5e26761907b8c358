"""The packing problem as arrays: candidate node offerings × pod groups, with compatibility.

A candidate is one (NodePool, instance type, capacity type, zone) a new node could be, with its
price and the capacity left for pods after DaemonSet overhead. Existing nodes with free room are
candidates too, at price 0 and at most one copy each. Compatibility (node labels against pod
requirements, taints against tolerations, requests against capacity) is computed once here;
the LP bound, the surge packer and the Karpenter-style baseline all read the same arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from provisioner.catalog import InstanceType
from provisioner.nodepool import NodePool
from provisioner.pods import ZONE, PodGroup
from provisioner.requirements import Requirements, Taint, untolerated
from provisioner.resources import Resources


@dataclass(frozen=True)
class ExistingNode:
    name: str
    labels: Mapping[str, str]
    free: Resources
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class Candidate:
    pool: str
    instance_type: str
    capacity_type: str
    zone: str
    price: float
    capacity: Resources
    existing: str = ""  # name of an existing node, "" for a new one


@dataclass
class Problem:
    groups: list[PodGroup]
    candidates: list[Candidate]
    cap: np.ndarray  # (C, 4) int64
    price: np.ndarray  # (C,)
    req: np.ndarray  # (G, 4) int64
    count: np.ndarray  # (G,) int64
    compat: np.ndarray  # (G, C) bool
    pool_of: np.ndarray  # (C,) int index into pools
    pools: list[NodePool]
    pool_limits: list[Resources | None]
    unschedulable: dict[int, str] = field(default_factory=dict)  # group index → reason


def split_zone_spread(groups: Sequence[PodGroup], zones: Sequence[str]) -> list[PodGroup]:
    """Pods spread over zones (maxSkew) become one group per zone with counts as even as possible."""
    out = []
    for g in groups:
        if g.zone_max_skew is None or g.count <= 1:
            out.append(g)
            continue
        allowed = [z for z in zones if any(r.by_key.get(ZONE) is None or r.by_key[ZONE].allows(z)
                                           for r in g.requirements)]
        if not allowed:
            out.append(g)
            continue
        names = g.names()
        base, extra = divmod(g.count, len(allowed))
        start = 0
        for i, z in enumerate(allowed):
            n = base + (1 if i < extra else 0)
            if n == 0:
                continue
            pin = Requirements.from_labels({ZONE: z})
            out.append(PodGroup(f"{g.name}@{z}", n, g.requests, tuple(r.intersect(pin) for r in g.requirements),
                                g.tolerations, g.one_per_node, None, tuple(names[start:start + n])))
            start += n
    return out


def build_problem(
    groups: Sequence[PodGroup],
    pools: Sequence[NodePool],
    catalog: Sequence[InstanceType],
    existing: Sequence[ExistingNode] = (),
    daemonset_overhead: Resources = Resources(),  # noqa: B008 - immutable value
) -> Problem:
    zones = sorted({o.zone for t in catalog for o in t.offerings})
    groups = split_zone_spread(groups, zones)
    pools = sorted(pools, key=lambda p: (-p.spec.weight, p.name))
    candidates: list[Candidate] = []
    labels_of: list[dict[str, str]] = []
    taints_of: list[tuple[Taint, ...]] = []
    pool_index: list[int] = []
    for pi, pool in enumerate(pools):
        reqs = pool.requirements()
        extra = dict(pool.spec.template.metadata.labels) | {"karpenter.sh/nodepool": pool.name}
        for t in catalog:
            type_labels = dict(t.labels) | extra
            if any(not vs.allows(type_labels.get(k)) for k, vs in reqs.by_key.items()
                   if k not in ("karpenter.sh/capacity-type", ZONE)):
                continue
            capacity = t.allocatable - daemonset_overhead
            if min(capacity.cpu_m, capacity.memory_mib, capacity.pods) <= 0:
                continue
            for o in t.offerings:
                if not o.available:
                    continue
                labels = type_labels | {"karpenter.sh/capacity-type": o.capacity_type, ZONE: o.zone}
                if reqs.first_violation(labels) is not None:
                    continue
                candidates.append(Candidate(pool.name, t.name, o.capacity_type, o.zone, o.price, capacity))
                labels_of.append(labels)
                taints_of.append(pool.taints())
                pool_index.append(pi)
    for node in existing:
        candidates.append(Candidate("", str(node.labels.get("node.kubernetes.io/instance-type", "")),
                                    str(node.labels.get("karpenter.sh/capacity-type", "")),
                                    str(node.labels.get(ZONE, "")), 0.0, node.free, existing=node.name))
        labels_of.append(dict(node.labels))
        taints_of.append(node.taints)
        pool_index.append(-1)
    cap = np.array([c.capacity.as_tuple() for c in candidates], dtype=np.int64).reshape(-1, 4)
    req = np.array([g.requests.as_tuple() for g in groups], dtype=np.int64).reshape(-1, 4)
    compat = np.zeros((len(groups), len(candidates)), dtype=bool)
    for gi, g in enumerate(groups):
        fits = np.all(cap >= req[gi], axis=1)
        for ci in np.nonzero(fits)[0]:
            labels = labels_of[ci]
            if untolerated(taints_of[ci], g.tolerations) is None and any(
                    r.first_violation(labels) is None for r in g.requirements):
                compat[gi, ci] = True
    pool_of = np.array(pool_index, dtype=np.int64)
    problem = Problem(
        groups=list(groups), candidates=candidates, cap=cap,
        price=np.array([c.price for c in candidates], dtype=float), req=req,
        count=np.array([g.count for g in groups], dtype=np.int64), compat=compat, pool_of=pool_of,
        pools=list(pools), pool_limits=[p.limit() for p in pools],
    )
    for gi, g in enumerate(groups):
        if not compat[gi].any():
            problem.unschedulable[gi] = why_unschedulable(g, pools, catalog, daemonset_overhead)
    return problem


def why_unschedulable(g: PodGroup, pools: Sequence[NodePool], catalog: Sequence[InstanceType],
                      overhead: Resources) -> str:
    for r in g.requirements:
        conflict = r.conflict()
        if conflict:
            return f"its node requirements contradict each other ({conflict})"
    if not pools:
        return "no NodePool"
    reasons = []
    for pool in pools:
        taint = untolerated(pool.taints(), g.tolerations)
        if taint is not None:
            reasons.append(f"NodePool {pool.name}: taint {taint.key}={taint.value}:{taint.effect} not tolerated")
            continue
        merged = [pool.requirements().intersect(r) for r in g.requirements]
        if all(m.conflict() for m in merged):
            reasons.append(f"NodePool {pool.name}: {merged[0].conflict()}")
            continue
        types = [t for t in catalog if any(m.first_violation({**t.labels, **dict(pool.spec.template.metadata.labels),
                                                              "karpenter.sh/nodepool": pool.name}) is None
                                           or _only_offering_keys(m, t) for m in merged)]
        if not types:
            first = catalog[0] if catalog else None
            detail = merged[0].first_violation(dict(first.labels)) if first else "empty catalog"
            reasons.append(f"NodePool {pool.name}: no instance type satisfies the requirements ({detail})")
            continue
        biggest = max((t.allocatable - overhead for t in types), key=lambda r: (r.gpu, r.cpu_m, r.memory_mib))
        if not g.requests.fits_in(biggest):
            reasons.append(f"NodePool {pool.name}: requests ({g.requests}) exceed the largest allowed instance "
                           f"type ({biggest})")
            continue
        reasons.append(f"NodePool {pool.name}: no offering (capacity type / zone) satisfies the requirements")
    return "; ".join(reasons)


def _only_offering_keys(req: Requirements, t: InstanceType) -> bool:
    labels = dict(t.labels)
    return all(vs.allows(labels.get(k)) for k, vs in req.by_key.items()
               if k not in ("karpenter.sh/capacity-type", ZONE, "karpenter.sh/nodepool"))
