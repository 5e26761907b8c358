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
    groups (existing nodes are kept): see `problem.pareto_candidates`."""
    from provisioner.problem import pareto_candidates

    return pareto_candidates(p.compat[schedulable], p.cap, p.price, p.pool_of,
                             np.array([bool(c.existing) for c in p.candidates], dtype=bool))


def lp_candidates(p: Problem, schedulable: np.ndarray) -> np.ndarray:
    """Candidates the LP needs. In the relaxation nodes come in fractions, so a candidate is useless
    when another of its pool gives at least as much of every resource per dollar and takes every
    group it takes: any fractional use of it is replaced by the other at no more cost. A group capped
    per node (anti-affinity, hostPorts) also needs as many nodes, so for candidates that take one the
    other must not cost more. Pools with limits keep all their candidates (a bigger node counts more
    against the limit). Vectorised: one pairwise comparison per pool plus one matrix product for
    "takes every group it takes"."""
    key = ("lp_candidates", schedulable.tobytes())
    if key in p.cache:
        return np.asarray(p.cache[key], dtype=np.int64)
    base = useful_candidates(p, schedulable)
    existing = np.array([bool(p.candidates[c].existing) for c in base], dtype=bool)
    rows = p.compat[schedulable][:, base]
    capped = (p.node_cap < p.count)[schedulable]
    keep = np.ones(len(base), dtype=bool)
    for pi in range(len(p.pools)):
        if p.has_limit(pi):
            continue
        members = np.nonzero((p.pool_of[base] == pi) & ~existing)[0]
        if len(members) < 2:
            continue
        price = np.maximum(p.price[base[members]], 1e-12)
        per_dollar = p.cap[base[members]] / price[:, None]  # (m, D)
        comp = rows[:, members].astype(np.float32)  # (G, m)
        takes_capped = (rows[:, members] & capped[:, None]).any(axis=0)
        missing = comp.T @ (1.0 - comp)  # [j, k]: groups j takes that k does not
        for s0 in range(0, len(members), 512):
            blk = slice(s0, s0 + 512)
            ge = np.all(per_dollar[None, :, :] >= per_dollar[blk, None, :] * (1 - 1e-12), axis=2)
            strictly = np.any(per_dollar[None, :, :] > per_dollar[blk, None, :] * (1 + 1e-12), axis=2) | (
                np.arange(len(members))[None, :] < np.arange(len(members))[blk, None])
            cost_ok = ~takes_capped[blk, None] | (price[None, :] <= price[blk, None])
            dom = ge & strictly & (missing[blk] == 0) & cost_ok
            np.fill_diagonal(dom[:, s0:s0 + 512], False)
            keep[members[blk]] &= ~dom.any(axis=1)
    p.cache[key] = base[keep]
    return base[keep]


def solve_lp(p: Problem, schedulable: np.ndarray, rounds: int = 30, add: int = 40) -> LPResult:
    """The LP over every useful candidate, solved by adding candidates to a small working set.

    Start: for every group its cheapest candidate per pod. Each round solves the LP on the working
    set and prices every other candidate c with the duals π: no fractional node of c can be worth
    more than min over resources d of cap[c,d] · max_g π_g / req[g,d] (the value of the pods that
    fill that resource best); candidates whose bound exceeds their price may improve the optimum and
    join. When none may, the working-set optimum is the optimum over all candidates (the bound
    ignores node caps and limits, so it only ever lets more in). Deterministic: a round budget,
    candidates ranked by (gain, index)."""
    groups = np.nonzero(schedulable)[0]
    if len(groups) == 0:
        return LPResult(0.0, np.zeros(len(p.groups)), True)
    every = lp_candidates(p, schedulable)
    if len(every) <= 150:
        return _solve(p, groups, every)
    existing = np.array([bool(p.candidates[c].existing) for c in every], dtype=bool)
    work = set(every[existing].tolist())
    for g in groups:
        cs = every[p.compat[g, every] & ~existing]
        if not len(cs):
            continue
        need = p.req[g]
        dims = np.nonzero(need)[0]
        per_node = np.min(p.cap[cs][:, dims] // need[dims], axis=1) if len(dims) else np.full(len(cs), p.count[g])
        per_node = np.maximum(np.minimum(per_node, p.node_cap[g]), 1)
        work.add(int(cs[np.lexsort((cs, p.price[cs] / per_node))[0]]))
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(rounds):
            ws = np.array(sorted(work), dtype=np.int64)
            res = _solve(p, groups, ws)
            if not res.ok:
                return _solve(p, groups, every)
            pi = np.maximum(res.duals, 0.0)
            out = np.array([c for c in every if c not in work], dtype=np.int64)
            if not len(out):
                return res
            comp = p.compat[:, out] & schedulable[:, None]  # (G, n)
            ratio = np.where(p.req > 0, pi[:, None] / np.maximum(p.req, 1), np.where(pi[:, None] > 0, np.inf, 0))
            best = np.stack([np.max(np.where(comp, ratio[:, d:d + 1], 0.0), axis=0) for d in range(len(p.dims))],
                            axis=1)  # (n, D): best value per unit of each resource on c
            bound = np.min(np.where(np.isinf(best), np.inf, best * p.cap[out]), axis=1)
            gain = bound - p.price[out]
            cand = np.nonzero(gain > 1e-9 * np.maximum(p.price[out], 1e-9))[0]
            if not len(cand):
                return res
            ranked = cand[np.lexsort((out[cand], -gain[cand]))][:add]
            work |= set(out[ranked].tolist())
    return _solve(p, groups, np.array(sorted(work), dtype=np.int64))


def _solve(p: Problem, groups: np.ndarray, cands: np.ndarray) -> LPResult:
    """The LP above on these groups and candidates (matrices built with numpy, solved by HiGHS)."""
    sub = p.compat[np.ix_(groups, cands)]
    gi_idx, cj_idx = np.nonzero(sub)  # pairs: z[k] = pods of groups[gi] on cands[cj]
    nz, ny, ndim, ng = len(gi_idx), len(cands), len(p.dims), len(groups)
    cost = np.concatenate([np.zeros(nz), p.price[cands]])
    a_eq = coo_matrix((np.ones(nz), (gi_idx, np.arange(nz))), shape=(ng, nz + ny)).tocsr()
    b_eq = p.count[groups].astype(float)
    # capacity rows: one per (candidate, resource): Σ req·z − cap·y ≤ 0
    req = p.req[groups[gi_idx]]  # (nz, D)
    kk, dd = np.nonzero(req)
    r_cap = cj_idx[kk] * ndim + dd
    rows = [r_cap, np.arange(ny * ndim)]
    cols = [kk, nz + np.repeat(np.arange(ny), ndim)]
    vals = [req[kk, dd].astype(float), -p.cap[cands].reshape(-1).astype(float)]
    r = ny * ndim
    capped = np.nonzero(p.node_cap[groups[gi_idx]] < p.count[groups[gi_idx]])[0]  # z ≤ node_cap·y
    if len(capped):
        rr = r + np.arange(len(capped))
        rows += [rr, rr]
        cols += [capped, nz + cj_idx[capped]]
        vals += [np.ones(len(capped)), -p.node_cap[groups[gi_idx[capped]]].astype(float)]
        r += len(capped)
    b_ub = [0.0] * r
    for pi in range(len(p.pools)):
        members = np.nonzero(p.pool_of[cands] == pi)[0]
        for d, lim in enumerate(p.limits[pi]):
            if lim >= BIG or not len(members):
                continue
            rows.append(np.full(len(members), r))
            cols.append(nz + members)
            vals.append(p.limit_cap[cands[members], d].astype(float))
            b_ub.append(float(lim))
            r += 1
    a_ub = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, nz + ny)).tocsr()
    bounds = [(0, None)] * nz + [(0, 1 if p.candidates[c].existing else None) for c in cands]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    duals = np.zeros(len(p.groups))
    if res.status != 0:
        return LPResult(0.0, duals, False)
    duals[groups] = res.eqlin.marginals
    return LPResult(float(res.fun), duals, True)
