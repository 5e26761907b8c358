"""The LP relaxation of the packing problem: a lower bound on $/h, and per-pod marginal values.

Variables: z[g,c] ≥ 0 pods of group g on candidate c, y[c] ≥ 0 (fractional) nodes of candidate c.
  min Σ price[c]·y[c]
  s.t. Σ_c z[g,c] = count[g]                        (every pod placed)
       Σ_g req[g,d]·z[g,c] ≤ cap[c,d]·y[c]          (capacity, per resource d)
       z[g,c] ≤ y[c]  for one-pod-per-node groups    (hostname anti-affinity)
       Σ_{c in pool} cap[c,d]·y[c] ≤ limit[pool,d]   (NodePool limits)
       y[c] ≤ 1 for existing nodes (free, one copy)
       z[g,c] ≤ node_cap[g]·y[c]                     (hostname spread / anti-affinity / hostPorts)
Every integer plan is feasible here, so the optimum bounds every plan from below. The duals of
the placement rows are what one more pod of each group costs at the margin; the packer uses them
to value node patterns. Dominated candidates (same pool, no more capacity, no lower price, no
more compatibility than another) are dropped first: they cannot lower the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from provisioner.problem import BIG, Problem


@dataclass(frozen=True)
class LPResult:
    bound: float
    duals: np.ndarray  # (G,) $/h per pod
    ok: bool


def useful_candidates(p: Problem, schedulable: np.ndarray) -> np.ndarray:
    """Indices of candidates not dominated by another of the same pool and the same compatible
    groups (existing nodes are kept). Candidates are classed by (pool, compatible groups) with one
    np.unique; within a class, sorted by price, each is checked only against the Pareto front kept
    so far — O(n · front) instead of O(n²), and the front stays small (bigger types cost more)."""
    rows = p.compat[schedulable]
    existing = np.array([bool(c.existing) for c in p.candidates], dtype=bool)
    used = rows.any(axis=0) if rows.size else np.zeros(len(p.candidates), dtype=bool)
    keep = used & existing
    new = np.nonzero(used & ~existing)[0]
    if not len(new):
        return np.nonzero(keep)[0]
    packed = np.packbits(rows[:, new], axis=0).T  # (n, ceil(G/8)) compatibility signature
    key = np.concatenate([p.pool_of[new, None].astype(np.int64), packed.astype(np.int64)], axis=1)
    _, cls = np.unique(key, axis=0, return_inverse=True)
    cls = cls.reshape(-1)
    cap, price = p.cap[new], p.price[new]
    order = np.lexsort((new, -cap.sum(axis=1), price, cls))
    front: list[int] = []
    current = -1
    for j in order:
        if cls[j] != current:
            current, front = int(cls[j]), []
        if front:
            f = np.array(front)
            if np.any(np.all(cap[f] >= cap[j], axis=1) & (price[f] <= price[j])):
                continue
        front.append(int(j))
        keep[new[j]] = True
    return np.nonzero(keep)[0]


def solve_lp(p: Problem, schedulable: np.ndarray) -> LPResult:
    groups = np.nonzero(schedulable)[0]
    cands = useful_candidates(p, schedulable)
    if len(groups) == 0:
        return LPResult(0.0, np.zeros(len(p.groups)), True)
    pairs = [(gi, ci) for gi in groups for ci in cands if p.compat[gi, ci]]
    nz, ny = len(pairs), len(cands)
    col_of_c = {c: nz + j for j, c in enumerate(cands)}
    cost = np.concatenate([np.zeros(nz), p.price[cands]])
    rows, cols, vals = [], [], []
    # equality: placement
    g_row = {g: i for i, g in enumerate(groups)}
    for k, (gi, _ci) in enumerate(pairs):
        rows.append(g_row[gi])
        cols.append(k)
        vals.append(1.0)
    a_eq = coo_matrix((vals, (rows, cols)), shape=(len(groups), nz + ny)).tocsr()
    b_eq = p.count[groups].astype(float)
    # inequalities: capacity per (candidate, resource), anti-affinity, pool limits
    rows, cols, vals = [], [], []
    r = 0
    cap_row = {}
    ndim = len(p.dims)
    for j, c in enumerate(cands):
        for d in range(ndim):
            cap_row[(c, d)] = r
            rows.append(r)
            cols.append(nz + j)
            vals.append(-float(p.cap[c, d]))
            r += 1
    for k, (gi, ci) in enumerate(pairs):
        for d in range(ndim):
            if p.req[gi, d]:
                rows.append(cap_row[(ci, d)])
                cols.append(k)
                vals.append(float(p.req[gi, d]))
        if p.node_cap[gi] < p.count[gi]:  # at most node_cap of these pods per node
            rows += [r, r]
            cols += [k, col_of_c[ci]]
            vals += [1.0, -float(p.node_cap[gi])]
            r += 1
    b_ub = [0.0] * r
    for pi in range(len(p.pools)):
        members = [j for j, c in enumerate(cands) if p.pool_of[c] == pi]
        for d, lim in enumerate(p.limits[pi]):
            if lim >= BIG or not members:
                continue
            for j in members:
                rows.append(r)
                cols.append(nz + j)
                vals.append(float(p.limit_cap[cands[j], d]))
            b_ub.append(float(lim))
            r += 1
    a_ub = coo_matrix((vals, (rows, cols)), shape=(r, nz + ny)).tocsr()
    bounds = [(0, None)] * nz + [(0, 1 if p.candidates[c].existing else None) for c in cands]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    duals = np.zeros(len(p.groups))
    if res.status != 0:
        return LPResult(0.0, duals, False)
    duals[groups] = res.eqlin.marginals
    return LPResult(float(res.fun), duals, True)
