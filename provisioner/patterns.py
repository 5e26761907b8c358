"""Column generation over node patterns, then an integer program over the patterns found.

A pattern is a candidate node with a pod count per group. The master LP chooses how many nodes
of each pattern cover every pod at least once; its duals price pods, and new patterns are sought
for every candidate with several greedy fills (a heuristic pricing step: it finds improving
patterns, it does not prove none exist). HiGHS then solves the integer version over the patterns
generated, within a time limit; surplus pods are dropped from the chosen nodes afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from provisioner.problem import BIG, Problem

Pattern = tuple[int, tuple[int, ...]]  # (candidate, counts per group)


def _fills(p: Problem, live: np.ndarray, remaining: np.ndarray, value: np.ndarray, allowed: np.ndarray) -> list:
    from provisioner.packing import _fill

    orders = [np.lexsort((np.arange(len(value)), -value))]
    orders += [np.lexsort((np.arange(len(value)), -value / np.maximum(p.req[:, d], 1))) for d in range(len(p.dims))
               if d != 3 and p.req[:, d].any()]
    return [_fill(p, live, remaining, o, allowed, p.cap[live]) for o in orders]


def generate(p: Problem, start: Sequence[Pattern], demand: np.ndarray, allowed: np.ndarray,
             rounds: int = 25, per_round: int = 40, focus: np.ndarray | None = None) -> list[Pattern]:
    columns: dict[Pattern, None] = dict.fromkeys(start)
    pool = focus if focus is not None else np.arange(len(p.candidates))
    live = np.array([i for i in pool if not p.candidates[i].existing and allowed[:, i].any()], dtype=np.int64)
    rows = np.nonzero(demand > 0)[0]
    for _ in range(rounds):
        cols = list(columns)
        a = np.array([[c[1][g] for c in cols] for g in rows], dtype=float)
        price = np.array([p.price[c[0]] for c in cols])
        res = linprog(price, A_ub=-a, b_ub=-demand[rows].astype(float), bounds=(0, None), method="highs")
        if res.status != 0:
            break
        duals = np.zeros(len(p.groups))
        duals[rows] = -res.ineqlin.marginals
        if not len(live):
            break
        fills = _fills(p, live, demand, duals, allowed)
        worths = np.stack([f @ duals for f in fills])
        pick = np.argmax(worths, axis=0)
        reduced = p.price[live] - worths[pick, np.arange(len(live))]
        best = np.argsort(reduced, kind="stable")[:per_round]
        added = 0
        for j in best:
            if reduced[j] >= -1e-7:
                break
            pattern = (int(live[j]), tuple(int(x) for x in fills[int(pick[j])][j]))
            if pattern not in columns:
                columns[pattern] = None
                added += 1
        if added == 0:
            break
    return list(columns)



def solve_rounded(p: Problem, columns: Sequence[Pattern], demand: np.ndarray
                  ) -> tuple[list[tuple[Pattern, int]] | None, np.ndarray]:
    """Whole nodes of the master LP's solution (each pattern rounded down); returns them and the
    demand they leave, for a greedy pass. Deterministic and fast where the integer program is not."""
    rows = np.nonzero(demand > 0)[0]
    if not len(rows):
        return [], np.zeros_like(demand)
    a = np.array([[c[1][g] for c in columns] for g in rows], dtype=float)
    price = np.array([p.price[c[0]] for c in columns])
    res = linprog(price, A_ub=-a, b_ub=-demand[rows].astype(float), bounds=(0, None), method="highs")
    if res.status != 0:
        return None, demand
    counts = np.floor(res.x + 1e-9).astype(np.int64)
    chosen = [(columns[j], int(n)) for j, n in enumerate(counts) if n > 0]
    covered = np.zeros_like(demand)
    for (_, pattern), n in chosen:
        covered += np.array(pattern, dtype=np.int64) * n
    return chosen, np.maximum(demand - covered, 0)


def solve_integer(p: Problem, columns: Sequence[Pattern], demand: np.ndarray, node_limit: int = 2000
                  ) -> list[tuple[Pattern, int]] | None:
    """Fewest dollars of whole nodes over the generated patterns covering every pod (HiGHS MIP).
    Bounded by a branch-and-bound node budget, not wall-clock time: the same input gives the same
    plan on a loaded machine."""
    rows = np.nonzero(demand > 0)[0]
    if not len(rows):
        return []
    a = np.array([[c[1][g] for c in columns] for g in rows], dtype=float)
    price = np.array([p.price[c[0]] for c in columns])
    constraints = [LinearConstraint(a, lb=demand[rows].astype(float), ub=np.inf)]
    for pi in range(len(p.pools)):
        if not p.has_limit(pi):
            continue
        in_pool = np.array([p.pool_of[c[0]] == pi for c in columns], dtype=float)
        for d, lim in enumerate(p.limits[pi]):
            if lim < BIG:
                capd = np.array([p.limit_cap[c[0], d] for c in columns], dtype=float) * in_pool
                constraints.append(LinearConstraint(capd[None, :], lb=-np.inf, ub=float(lim)))
    res = milp(price, constraints=constraints, integrality=np.ones(len(columns)), bounds=Bounds(0, np.inf),
               options={"node_limit": node_limit, "mip_rel_gap": 0.002})
    if res.x is None:
        return None
    counts = [int(x + 0.5) for x in res.x]
    return [(columns[j], n) for j, n in enumerate(counts) if n > 0]
