"""surge's packer: LP-priced greedy patterns, repeated, then each node shrunk to the cheapest fit.

1. Existing nodes with free room take pods first (they cost nothing more).
2. The LP relaxation (bound.py) prices each pod group at the margin (its dual).
3. Repeatedly: for every candidate, fill a node greedily with the remaining pods (vectorized over
   all candidates at once); pick the candidate whose filled pods are worth most per dollar; open
   as many identical nodes of that pattern as the remaining pods allow.
4. Repair: every opened node is re-typed to the cheapest candidate that still holds its pods.
5. Column generation (patterns.py) seeded with the greedy plan's patterns, then an integer program
   over all patterns found; the cheaper of the two plans is kept.
Deterministic for equal input: ties break on price, then on candidate order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from provisioner.bound import solve_lp
from provisioner.problem import Problem


@dataclass
class OpenNode:
    candidate: int
    pods: dict[int, int] = field(default_factory=dict)  # group → count


def _fill(p: Problem, cands: np.ndarray, remaining: np.ndarray, order: np.ndarray,
          allowed: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Greedy fill of every candidate in `cands` at once; returns counts (len(cands), G).

    Vectorised over candidates; per group it honours the per-node cap (hostname spread,
    anti-affinity, hostPorts), groups that may not share a node, and "only beside group X"."""
    counts = np.zeros((len(cands), len(p.groups)), dtype=np.int64)
    room = room.copy()
    pairs = bool(p.exclusive.any()) or bool((p.needs >= 0).any())
    for g in order:
        if remaining[g] <= 0:
            continue
        ok = allowed[g, cands]
        if not ok.any():
            continue
        need = p.req[g]
        dims = np.nonzero(need)[0]
        if len(dims):
            per = np.min(room[:, dims] // need[dims], axis=1)
            per = np.minimum(per, remaining[g])
        else:
            per = np.full(len(cands), remaining[g], dtype=np.int64)
        per = np.minimum(per, p.node_cap[g])
        if pairs:
            blocked = p.exclusive[g]
            if blocked.any():
                ok = ok & ~(counts[:, blocked] > 0).any(axis=1)
            if p.needs[g] >= 0:
                ok = ok & (counts[:, p.needs[g]] > 0)
        per = np.where(ok, np.maximum(per, 0), 0)
        counts[:, g] = per
        room -= per[:, None] * need[None, :]
    return counts


def place_single_node_groups(p: Problem, remaining: np.ndarray) -> list[OpenNode]:
    """Self pod affinity on hostname: every pod of the group on one node (the first one Karpenter
    opens); the node is the candidate holding the most of them, cheapest on ties; the rest wait."""
    nodes = []
    for g, grp in enumerate(p.groups):
        if not grp.single_node or remaining[g] <= 0:
            continue
        cands = np.nonzero(p.compat[g] & np.array([not c.existing for c in p.candidates], dtype=bool))[0]
        if not len(cands):
            continue
        need = p.req[g]
        dims = np.nonzero(need)[0]
        fit = np.min(p.cap[cands][:, dims] // need[dims], axis=1) if len(dims) else np.full(len(cands), remaining[g])
        fit = np.minimum(np.minimum(fit, remaining[g]), p.node_cap[g])
        best = cands[np.lexsort((cands, p.price[cands], -fit))[0]]
        k = int(np.minimum(np.minimum(fit, remaining[g]), p.node_cap[g])[list(cands).index(best)])
        if k <= 0:
            continue
        nodes.append(OpenNode(int(best), {g: k}))
        if remaining[g] > k:
            p.held_back[g] = int(remaining[g] - k)
            p.left_reasons[g] = (f"self pod affinity on kubernetes.io/hostname: all its pods share one node and "
                                 f"only {k} fit on the largest allowed type")
        remaining[g] = 0
    return nodes


def preferred_pool_mask(p: Problem, exhausted: set[int]) -> np.ndarray:
    """compat restricted to each group's highest-weight pool that still has room (NodePool weight)."""
    allowed = np.zeros_like(p.compat)
    for g in range(len(p.groups)):
        for pi in range(len(p.pools)):
            if pi in exhausted:
                continue
            mask = p.compat[g] & (p.pool_of == pi)
            if mask.any():
                allowed[g] = mask
                break
    return allowed


def pack(p: Problem) -> tuple[list[OpenNode], dict[int, int], float, bool]:
    """Returns (nodes, pods left per group, LP bound, LP solved)."""
    remaining = p.count.copy()
    schedulable = np.asarray(p.compat.any(axis=1), dtype=bool)
    remaining[~schedulable] = 0
    lp = solve_lp(p, schedulable)
    value = lp.duals.copy()
    if not lp.ok or not np.any(value > 0):
        # no prices: value pods by their share of the cheapest $ per cpu and memory
        value = p.req[:, 0] / 1000 * 0.02 + p.req[:, 1] / 1024 * 0.005 + p.req[:, 2] * 0.5 + 1e-6
    order = _with_targets_first(p, np.lexsort((-p.req[:, 1], -p.req[:, 0], -value)))
    nodes: list[OpenNode] = []
    single = place_single_node_groups(p, remaining)

    existing = np.array([i for i, c in enumerate(p.candidates) if c.existing], dtype=np.int64)
    if len(existing):
        allowed = p.compat
        counts = _fill(p, existing, remaining, order, allowed, p.cap[existing])
        # _fill offers each node all the remaining pods; existing nodes take them in turn
        counts = np.minimum(counts, np.maximum(remaining[None, :] - (np.cumsum(counts, axis=0) - counts), 0))
        for row, c in zip(counts, existing, strict=True):
            if row.any():
                nodes.append(OpenNode(int(c), {int(g): int(n) for g, n in enumerate(row) if n}))
                remaining -= row

    nodes += single
    greedy_nodes, greedy_left = list(nodes), remaining.copy()
    _greedy(p, value, order, greedy_nodes, greedy_left, np.zeros((len(p.pools), len(p.dims)), dtype=np.int64))
    _shrink(p, greedy_nodes)
    best = (float(sum(p.price[n.candidate] for n in greedy_nodes)), greedy_nodes, greedy_left)
    # column generation from the best plan's patterns, then an integer program over them
    demand = remaining.copy()
    seed = best[1][len(nodes):]
    start = [(n.candidate, tuple(n.pods.get(g, 0) for g in range(len(p.groups)))) for n in seed]
    allowed = preferred_pool_mask(p, set())
    # only when every greedy node sits in its pods' preferred NodePool (weights honoured, no limit hit)
    if start and all(allowed[g, c] for c, counts in start for g, k in enumerate(counts) if k):
        from provisioner.patterns import generate, solve_integer

        columns = generate(p, list(dict.fromkeys(start)), demand, allowed)
        chosen = solve_integer(p, columns, demand)
        if chosen is not None:
            cg_nodes = list(nodes) + _trim(p, chosen, demand)
            _shrink(p, cg_nodes)
            cost = float(sum(p.price[n.candidate] for n in cg_nodes))
            if cost < best[0] - 1e-9:
                best = (cost, cg_nodes, np.zeros_like(best[2]))
    _, nodes, remaining = best
    return nodes, {g: int(n) for g, n in enumerate(remaining) if n > 0}, lp.bound, lp.ok


def _with_targets_first(p: Problem, order: np.ndarray) -> np.ndarray:
    """Groups other groups must sit beside (hostname pod affinity) are filled before them."""
    targets = [int(t) for t in p.needs if t >= 0]
    if not targets:
        return order
    first = [g for g in order if g in set(targets)]
    return np.array(first + [g for g in order if g not in set(targets)], dtype=np.int64)


def _trim(p: Problem, chosen: list[tuple[tuple[int, tuple[int, ...]], int]], demand: np.ndarray) -> list[OpenNode]:
    """Nodes from chosen patterns, dropping pods beyond the demand (patterns may over-cover)."""
    left = demand.copy()
    out = []
    for (c, counts), n in sorted(chosen, key=lambda item: -p.price[item[0][0]]):
        for _ in range(n):
            pods = {}
            for g, k in enumerate(counts):
                take = min(k, int(left[g]))
                if take > 0:
                    pods[g] = int(take)
                    left[g] -= take
            if pods:
                out.append(OpenNode(c, pods))
    return out


def _within_limits(p: Problem, cands: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Which candidates still fit under their NodePool's limits: the node's capacity (not its
    allocatable) against what the pool's limits leave, as Karpenter counts them."""
    ok = np.ones(len(cands), dtype=bool)
    for pi in range(len(p.pools)):
        if not p.has_limit(pi):
            continue
        left = p.limits[pi] - used[pi]
        in_pool = p.pool_of[cands] == pi
        ok &= ~in_pool | np.all(p.limit_cap[cands] <= left, axis=1)
    return ok


def _greedy(p: Problem, value: np.ndarray, order: np.ndarray, nodes: list[OpenNode], remaining: np.ndarray,
            used: np.ndarray) -> None:
    orders = [order] + [_with_targets_first(p, np.lexsort((np.arange(len(value)), -value / np.maximum(p.req[:, d], 1))))
                        for d in range(len(p.dims)) if d != 3 and p.req[:, d].any()]
    exhausted: set[int] = set()
    new = np.array([i for i, c in enumerate(p.candidates) if not c.existing], dtype=np.int64)
    while remaining.sum() > 0 and len(new):
        allowed = preferred_pool_mask(p, exhausted)
        live = new[allowed[:, new].any(axis=0) & np.array([int(p.pool_of[c]) not in exhausted for c in new])]
        live = live[_within_limits(p, live, used)]
        if not len(live):
            newly = {int(p.pool_of[c]) for c in new if int(p.pool_of[c]) not in exhausted}
            if not newly:
                break
            exhausted |= {pi for pi in newly if p.has_limit(pi)}  # no type fits what is left
            if not exhausted & newly:
                break
            continue
        # several fill orders (value, value per cpu / memory / GPU): each candidate keeps its best
        fills = [_fill(p, live, remaining, o, allowed, p.cap[live]) for o in orders]
        worths = np.stack([f @ value for f in fills])
        pick = np.argmax(worths, axis=0)
        worth = worths[pick, np.arange(len(live))]
        pods = np.stack([f.sum(axis=1) for f in fills])[pick, np.arange(len(live))]
        # equal value per dollar: the fuller node wins (fewer nodes, as Karpenter's first fit gives)
        score = np.where(worth > 0, worth / np.maximum(p.price[live], 1e-9) * (1 + 1e-9 * pods), -1.0)
        best = int(np.argmax(score))
        if score[best] <= 0:
            break
        c = int(live[best])
        pattern = fills[int(pick[best])][best]
        groups = np.nonzero(pattern)[0]
        reps = int(min(remaining[g] // pattern[g] for g in groups))
        pi = int(p.pool_of[c])
        if p.has_limit(pi):
            left = p.limits[pi] - used[pi]
            fit = min((left[d] // p.limit_cap[c, d] for d in range(len(p.dims)) if p.limit_cap[c, d] > 0),
                      default=reps)
            reps = int(min(reps, fit))
        reps = max(reps, 1)
        for _ in range(reps):
            nodes.append(OpenNode(c, {int(g): int(pattern[g]) for g in groups}))
        remaining -= pattern * reps
        used[pi] += p.limit_cap[c] * reps


def _shrink(p: Problem, nodes: list[OpenNode]) -> None:
    """Re-type each new node to the cheapest candidate of its pool that holds its pods."""
    cache: dict[tuple[int, tuple[tuple[int, int], ...]], int] = {}
    for node in nodes:
        cand = p.candidates[node.candidate]
        if cand.existing:
            continue
        key = (node.candidate, tuple(sorted(node.pods.items())))
        if key not in cache:
            need = sum((p.req[g] * n for g, n in node.pods.items()), np.zeros(len(p.dims), dtype=np.int64))
            ok = (p.pool_of == p.pool_of[node.candidate]) & np.all(p.cap >= need, axis=1)
            if p.has_limit(int(p.pool_of[node.candidate])):  # a bigger node could break the limits
                ok &= np.all(p.limit_cap <= p.limit_cap[node.candidate], axis=1)
            for g in node.pods:
                ok &= p.compat[g]
            options = np.nonzero(ok)[0]
            best = node.candidate
            if len(options):
                cheapest = options[np.lexsort((options, p.price[options]))][0]
                if p.price[cheapest] < p.price[best]:
                    best = int(cheapest)
            cache[key] = best
        node.candidate = cache[key]
