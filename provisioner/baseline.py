"""The Karpenter-style packer, as Karpenter documents its scheduler, for comparison.

Pods are queued by CPU, then memory, largest first. Each pod goes to the first in-flight node
that can still take it; a new in-flight node starts out allowing every compatible instance type
(of the highest-weight NodePool) and the set narrows as pods are added; at launch a node becomes
the cheapest type left in its set. Identical pods are placed in bulk, which gives the same result
as placing them one by one in queue order. NodePool limits are honoured as Karpenter does: a new
node may only use types whose capacity fits what the pool has left, and opening it subtracts its
largest option's capacity. Requests, per-node caps, exclusive pairs and pod affinity are the
same arrays surge's packer reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provisioner.packing import OpenNode, place_single_node_groups, preferred_pool_mask
from provisioner.problem import BIG, Problem


@dataclass
class _InFlight:
    mask: np.ndarray  # candidates still possible
    used: np.ndarray  # (4,)
    pods: dict[int, int]
    existing: int = -1


def baseline_pack(p: Problem) -> tuple[list[OpenNode], dict[int, int]]:
    remaining = p.count.copy()
    remaining[~p.compat.any(axis=1)] = 0
    single = place_single_node_groups(p, remaining)
    allowed = preferred_pool_mask(p, set())
    existing = [i for i, c in enumerate(p.candidates) if c.existing]
    is_existing = np.array([bool(c.existing) for c in p.candidates], dtype=bool)
    left_of = np.vstack([p.limits.copy(), np.full((1, len(p.dims)), BIG, dtype=np.int64)])  # row -1: existing
    nodes: list[_InFlight] = []
    for c in existing:
        mask = np.zeros(len(p.candidates), dtype=bool)
        mask[c] = True
        nodes.append(_InFlight(mask, np.zeros(len(p.dims), dtype=np.int64), {}, c))
    queue = sorted(range(len(p.groups)), key=lambda g: (-p.req[g, 0], -p.req[g, 1], g))
    for g in queue:
        need = p.req[g]
        usable = allowed[g] | (p.compat[g] & is_existing)
        for node in nodes:
            if remaining[g] <= 0:
                break
            _place(p, node, g, need, usable, remaining)
        while remaining[g] > 0:
            node = _InFlight(usable & ~is_existing, np.zeros(len(p.dims), dtype=np.int64), {})
            # NodePool limits: only types whose capacity fits what the pool has left
            node.mask &= np.all(p.limit_cap <= left_of[np.maximum(p.pool_of, 0)], axis=1)
            if not node.mask.any() or not _place(p, node, g, need, usable, remaining):
                break
            nodes.append(node)
            opts = np.nonzero(node.mask)[0]  # Karpenter subtracts the largest option's capacity
            for pi in set(p.pool_of[opts].tolist()):
                left_of[pi] -= p.limit_cap[opts[p.pool_of[opts] == pi]].max(axis=0)
    out = []
    for node in nodes:
        if not node.pods:
            continue
        options = np.nonzero(node.mask)[0]
        cheapest = options[np.lexsort((options, p.price[options]))][0]
        out.append(OpenNode(int(cheapest), dict(node.pods)))
    return single + out, {g: int(n) for g, n in enumerate(remaining) if n > 0}


def _place(p: Problem, node: _InFlight, g: int, need: np.ndarray, usable: np.ndarray, remaining: np.ndarray) -> bool:
    mask = node.mask & usable
    if not mask.any():
        return False
    if p.exclusive.size and any(node.pods.get(int(o), 0) for o in np.nonzero(p.exclusive[g])[0]):
        return False
    if p.needs.size and p.needs[g] >= 0 and not node.pods.get(int(p.needs[g]), 0):
        return False
    room = p.cap[mask] - node.used
    per = np.full(len(room), remaining[g], dtype=np.int64)
    for d in range(len(p.dims)):
        if need[d] > 0:
            per = np.minimum(per, room[:, d] // need[d])
    per = np.minimum(per, p.node_cap[g] - node.pods.get(g, 0))
    k = int(per.max()) if len(per) else 0
    if k <= 0:
        return False
    node.used = node.used + need * k
    node.pods[g] = node.pods.get(g, 0) + k
    remaining[g] -= k
    node.mask = mask & np.all(p.cap >= node.used, axis=1)
    return True
