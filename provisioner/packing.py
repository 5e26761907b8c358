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
    anti-affinity, hostPorts), groups that may not share a node, and "only beside group X".
    Only groups with pods left and at least one allowed candidate are visited."""
    n = len(cands)
    counts_t = np.zeros((len(p.groups), n), dtype=np.int64)  # (G, n): one contiguous row per group
    active = order[remaining[order] > 0]
    if not len(active):
        return counts_t.T
    okm = allowed[np.ix_(active, cands)]
    keep = okm.any(axis=1)
    active, okm = active[keep], okm[keep]
    if not len(active):
        return counts_t.T
    room_t = np.array(room.T, dtype=np.int64, order="C")  # (D, n): one contiguous row per resource
    # a negative room (a type that is never launched) fits nothing in that resource and never changes:
    # read it as 0 (same fills, no clipping per group) and keep those nodes out of the "full" test
    open_ = ~(room_t < 0).any(axis=0)
    np.maximum(room_t, 0, out=room_t)
    pairs = bool(p.exclusive.any()) or bool((p.needs >= 0).any())
    floor = p.req[active].min(axis=0)  # no group asks for less than this: a node below it is full
    floor_col = floor[:, None]
    dims_of = _dims_of(p)
    need_col = p.req[:, :, None]
    limit = np.maximum(np.minimum(remaining[active], p.node_cap[active]), 0).tolist()
    everywhere = okm.all(axis=1).tolist()
    for i, g in enumerate(active.tolist()):
        if i % 8 == 7 and not ((room_t >= floor_col).all(axis=0) & open_).any():
            break
        if pairs:  # before this group's row is written
            ok = np.ones(n, dtype=bool)
            blocked = p.exclusive[g]
            if blocked.any():
                ok &= ~counts_t[blocked].any(axis=0)
            if p.needs[g] >= 0:
                ok &= counts_t[p.needs[g]] > 0
        dims = dims_of[g]
        per = counts_t[g]  # filled in place
        if dims:
            d0, n0 = dims[0]
            np.floor_divide(room_t[d0], n0, out=per)
            for d, nd in dims[1:]:
                np.minimum(per, room_t[d] // nd if nd != 1 else room_t[d], out=per)
            np.minimum(per, limit[i], out=per)
        else:
            per[:] = limit[i]
        if not everywhere[i]:
            per *= okm[i]
        if pairs:
            per *= ok
        if dims:
            room_t -= need_col[g] * per
    return counts_t.T


def _dims_of(p: Problem) -> list[list[tuple[int, int]]]:
    """Per group, the resources it requests and how much, as (dimension, amount) (computed once per problem)."""
    key = "fill_dims"
    if key not in p.cache:
        p.cache[key] = [[(int(d), int(r[d])) for d in np.nonzero(r)[0]] for r in p.req]
    return p.cache[key]  # type: ignore[return-value]


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
    focus = _focus(p, schedulable)
    small = int((remaining > 0).sum()) <= SMALL_GROUPS
    allowed = preferred_pool_mask(p, set())
    greedy_nodes, greedy_left = list(nodes), remaining.copy()
    _greedy(p, value, order, greedy_nodes, greedy_left, np.zeros((len(p.pools), len(p.dims)), dtype=np.int64), focus)
    _shrink(p, greedy_nodes)
    best = (float(sum(p.price[n.candidate] for n in greedy_nodes)), greedy_nodes, greedy_left)
    # distinct patterns of the greedy plan (thousands of nodes share a few hundred)
    distinct = dict.fromkeys((n.candidate, tuple(sorted(n.pods.items()))) for n in best[1][len(nodes):])
    start = []
    for c, items in distinct:
        row = [0] * len(p.groups)
        for g, k in items:
            row[g] = k
        start.append((c, tuple(row)))
    # column generation from the best plan's patterns, then an integer program over them
    demand = remaining.copy()
    # only when every greedy node sits in its pods' preferred NodePool (weights honoured, no limit hit)
    if start and all(allowed[g, c] for c, items in distinct for g, _ in items):
        from provisioner.patterns import generate, solve_integer, solve_rounded

        columns = generate(p, start, demand, allowed, focus=focus,
                           rounds=25 if small else 8)
        if small:
            chosen = solve_integer(p, columns, demand)
            left = np.zeros_like(demand)
        else:  # large: whole nodes of the master LP, the fractional rest packed greedily
            chosen, left = solve_rounded(p, columns, demand)
        if chosen is not None:
            cg_nodes = list(nodes) + _trim(p, chosen, demand)
            if left.any():
                _greedy(p, value, order, cg_nodes, left, _pool_use(p, cg_nodes), focus)
            _shrink(p, cg_nodes)
            cost = float(sum(p.price[n.candidate] for n in cg_nodes))
            if cost < best[0] - 1e-9:
                best = (cost, cg_nodes, left)
    _, nodes, remaining = best
    return nodes, {g: int(n) for g, n in enumerate(remaining) if n > 0}, lp.bound, lp.ok


SMALL_GROUPS = 40  # up to this many pod groups, the integer program over the patterns; above, LP rounding
NEAR_BEST, PICKS_PER_ROUND = 0.98, 16  # large problems: patterns within 2 % of the best value per $ taken together
LARGE_ROUNDS = 300  # large problems: greedy rounds before the tail is packed group by group


def _focus(p: Problem, schedulable: np.ndarray) -> np.ndarray:
    """Candidates the greedy fills: the LP's useful ones (no other gives more of every resource per
    dollar) plus, per group, the cheapest per pod — small nodes for remainders. Shrinking re-types
    every node over all candidates afterwards."""
    from provisioner.bound import lp_candidates

    keep = set(lp_candidates(p, schedulable).tolist())
    new = np.array([not c.existing for c in p.candidates], dtype=bool)
    for g in np.nonzero(schedulable)[0]:
        cs = np.nonzero(p.compat[g] & new)[0]
        if not len(cs):
            continue
        need = p.req[g]
        dims = np.nonzero(need)[0]
        per_node = np.min(p.cap[cs][:, dims] // need[dims], axis=1) if len(dims) else np.full(len(cs), p.count[g])
        per_node = np.maximum(np.minimum(np.minimum(per_node, p.node_cap[g]), p.count[g]), 1)
        keep.add(int(cs[np.lexsort((cs, p.price[cs] / per_node))[0]]))
    return np.array(sorted(c for c in keep if new[c]), dtype=np.int64)


def _pool_use(p: Problem, nodes: list[OpenNode]) -> np.ndarray:
    used = np.zeros((len(p.pools), len(p.dims)), dtype=np.int64)
    for n in nodes:
        if p.pool_of[n.candidate] >= 0:
            used[p.pool_of[n.candidate]] += p.limit_cap[n.candidate]
    return used


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
        groups = [g for g, k in enumerate(counts) if k]
        full = min((int(left[g]) // counts[g] for g in groups), default=0)
        full = min(full, n)
        if full:  # whole copies of the pattern: one dict, copied
            pods = {g: counts[g] for g in groups}
            out += [OpenNode(c, dict(pods)) for _ in range(full)]
            for g in groups:
                left[g] -= counts[g] * full
        for _ in range(n - full):
            pods = {}
            for g in groups:
                take = min(counts[g], int(left[g]))
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
            used: np.ndarray, focus: np.ndarray | None = None) -> None:
    # several fill orders: by value, then by value per unit of each resource (per cpu only for large problems)
    dims = [d for d in range(len(p.dims)) if d != 3 and p.req[:, d].any()]
    if int((remaining > 0).sum()) > SMALL_GROUPS:
        dims = dims[:1]
    orders = [order] + [_with_targets_first(p, np.lexsort((np.arange(len(value)), -value / np.maximum(p.req[:, d], 1))))
                        for d in dims]
    exhausted: set[int] = set()
    new = focus if focus is not None else np.array([i for i, c in enumerate(p.candidates) if not c.existing],
                                                   dtype=np.int64)
    masks: dict[frozenset[int], np.ndarray] = {}
    large = int((remaining > 0).sum()) > SMALL_GROUPS
    rounds = 0
    while remaining.sum() > 0 and len(new):
        rounds += 1
        if large and rounds > LARGE_ROUNDS and not any(p.has_limit(pi) for pi in range(len(p.pools))):
            _alone(p, remaining, masks.get(frozenset(exhausted), preferred_pool_mask(p, exhausted)), new, nodes)
            return
        key = frozenset(exhausted)
        if key not in masks:
            masks[key] = preferred_pool_mask(p, exhausted)
        allowed = masks[key]
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
        # the best pattern, and (large problems) other near-best ones in the same round: fewer rounds
        picks = [best]
        if len(remaining) > SMALL_GROUPS:
            near = np.nonzero(score >= score[best] * NEAR_BEST)[0]
            picks += [int(j) for j in near[np.lexsort((near, -score[near]))] if j != best][:PICKS_PER_ROUND - 1]
        for rank, j in enumerate(picks):
            c = int(live[j])
            pattern = fills[int(pick[j])][j]
            groups = np.nonzero(pattern)[0]
            if not len(groups):
                continue
            reps = int(min(remaining[g] // pattern[g] for g in groups))
            if rank and reps < 1:
                continue  # an earlier pick of this round took the pods it counted on
            pi = int(p.pool_of[c])
            if p.has_limit(pi):
                left = p.limits[pi] - used[pi]
                fit = min((left[d] // p.limit_cap[c, d] for d in range(len(p.dims)) if p.limit_cap[c, d] > 0),
                          default=reps)
                reps = int(min(reps, fit))
                if rank and reps < 1:
                    continue
            reps = max(reps, 1)
            pods = {int(g): int(pattern[g]) for g in groups}
            nodes.extend(OpenNode(c, dict(pods)) for _ in range(reps))
            remaining -= np.minimum(pattern * reps, remaining)
            used[pi] += p.limit_cap[c] * reps


def _alone(p: Problem, remaining: np.ndarray, allowed: np.ndarray, cands: np.ndarray, nodes: list[OpenNode]) -> None:
    """The tail of a large greedy: each group's pods on its cheapest-per-pod candidate, alone (the
    last node partly full; shrinking re-types it). A deterministic round budget instead of hundreds
    of one-node rounds."""
    for g in np.nonzero(remaining > 0)[0]:
        cs = cands[allowed[g, cands]]
        need = p.req[g]
        dims = np.nonzero(need)[0]
        if not len(cs):
            continue
        per = np.min(p.cap[cs][:, dims] // need[dims], axis=1) if len(dims) else np.full(len(cs), remaining[g])
        per = np.minimum(np.minimum(per, p.node_cap[g]), remaining[g])
        ok = per > 0
        if p.needs[g] >= 0 or p.exclusive[g].any() or not ok.any():
            continue  # pairs need the full greedy: leave them (they stay pending only if it never ran)
        cs, per = cs[ok], per[ok]
        j = np.lexsort((cs, p.price[cs] / per))[0]
        full, rest = divmod(int(remaining[g]), int(per[j]))
        nodes.extend(OpenNode(int(cs[j]), {int(g): int(per[j])}) for _ in range(full))
        if rest:
            nodes.append(OpenNode(int(cs[j]), {int(g): rest}))
        remaining[g] = 0


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
