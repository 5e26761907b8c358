"""The packing problem as arrays: candidate node offerings × pod groups, with compatibility.

A candidate is one (NodePool, instance type, capacity type, zone) a new node could be, with its
price, the capacity left for pods after DaemonSet overhead (what packing fills) and the node's
capacity (what NodePool limits count, as Karpenter does). Existing nodes with free room are
candidates too, at price 0 and at most one copy each. Compatibility (node labels against pod
requirements, taints against tolerations, requests against capacity) is computed once here;
the LP bound, the surge packer and the Karpenter-style baseline all read the same arrays.

Before that, `resolve_constraints` turns the pods' Kubernetes terms into what the packer checks
per node: topology spread and zone anti-affinity become per-domain groups pinned by a node
requirement (domains as Karpenter builds them: every NodePool's values for the key, narrowed by
the pod's own node affinity), hostname spread / anti-affinity / hostPorts become a per-node cap
and pairs of groups that may not share a node, pod affinity becomes a shared domain or "only on
nodes that hold group X".
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provisioner.catalog import InstanceType
from provisioner.nodepool import NodePool
from provisioner.pods import (
    CAPACITY_TYPE,
    HOSTNAME,
    ZONE,
    PodAffinityTerm,
    PodGroup,
    SpreadConstraint,
    ports_conflict,
    selects,
)
from provisioner.requirements import Requirements, Taint, Toleration, ValueSet, untolerated
from provisioner.resources import CORE, Resources

BIG = 2**62
OFFERING_KEYS = (CAPACITY_TYPE, ZONE)
_MEMO_MAX = 16  # entries per memo below (candidate blocks, type rows per pool); Pareto sets keep 256


def _bounded_put(memo: dict[Any, Any], key: object, value: object, limit: int = _MEMO_MAX) -> None:
    """Memos stay small (a block over the whole catalog holds thousands of candidates): the oldest
    entry goes when one is full."""
    if len(memo) >= limit:
        del memo[next(iter(memo))]
    memo[key] = value


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
    capacity: Resources  # room for pods (allocatable − DaemonSets)
    existing: str = ""  # name of an existing node, "" for a new one
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)  # the node's labels


@dataclass
class Problem:
    groups: list[PodGroup]
    candidates: list[Candidate]
    cap: np.ndarray  # (C, D) int64: room for pods
    price: np.ndarray  # (C,)
    req: np.ndarray  # (G, D) int64
    count: np.ndarray  # (G,) int64
    compat: np.ndarray  # (G, C) bool
    pool_of: np.ndarray  # (C,) int index into pools
    pools: list[NodePool]
    limits: np.ndarray  # (P, D) int64, BIG where the pool sets no limit
    limit_cap: np.ndarray  # (C, D) int64: what one node of the candidate counts against its pool's limits
    dims: list[str] = field(default_factory=lambda: list(CORE))
    node_cap: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (G,) per-node max
    exclusive: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))  # (G, G)
    needs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (G,) group to share a node with
    unschedulable: dict[int, str] = field(default_factory=dict)  # group index → reason
    dropped: list[tuple[PodGroup, str]] = field(default_factory=list)  # pods no domain can take
    left_reasons: dict[int, str] = field(default_factory=dict)  # why a group's leftover pods wait
    held_back: dict[int, int] = field(default_factory=dict)  # pods set aside before packing (they wait)
    cache: dict[object, object] = field(default_factory=dict)  # derived arrays computed once per problem

    def has_limit(self, pi: int) -> bool:
        return bool((self.limits[pi] < BIG).any())

    @property
    def pool_limits(self) -> list[Resources | None]:
        """Per pool, its limits as Resources (None without limits) — for callers that print them."""
        out: list[Resources | None] = []
        for pi in range(len(self.pools)):
            if not self.has_limit(pi):
                out.append(None)
                continue
            amounts = {d: int(v) for d, v in zip(self.dims, self.limits[pi], strict=True)}
            out.append(Resources.from_amounts(amounts, amounts["pods"]))
        return out


# --- constraint resolution -------------------------------------------------------------------------

def _domains(key: str, pools: Sequence[NodePool], catalog: Sequence[InstanceType]) -> set[str]:
    """Karpenter's domain universe for a topology key: values every NodePool allows, by its
    requirements and template labels, across the instance types (offerings for zone/capacity type)."""
    out: set[str] = set()
    for pool in pools:
        reqs = pool.requirements()
        vs = reqs.by_key.get(key)
        if key in OFFERING_KEYS:
            values = {o.zone if key == ZONE else o.capacity_type for t in catalog for o in t.offerings if o.available}
        else:
            values = {t.labels[key] for t in catalog if key in t.labels}
            if vs is not None and vs.include is not None:
                values |= set(vs.include)
        out |= {v for v in values if vs is None or vs.allows(v)}
    return out


def _allowed_by_pod(g: PodGroup, key: str, value: str) -> bool:
    return any(r.by_key.get(key) is None or r.by_key[key].allows(value) for r in g.requirements)


def _pin(g: PodGroup, key: str, values: Sequence[str], count: int, names: list[str], suffix: str) -> PodGroup:
    pin = Requirements.from_terms([{"key": key, "operator": "In", "values": list(values)}])
    return dataclasses.replace(g, name=f"{g.name}{suffix}", count=count,
                               requirements=tuple(r.intersect(pin) for r in g.requirements),
                               pod_names=tuple(names), zone_max_skew=None, spread=())


def _split(g: PodGroup, key: str, domains: list[str], per_domain: list[int], reason: str,
           dropped: list[tuple[PodGroup, str]]) -> list[PodGroup]:
    names = g.names()
    out, start = [], 0
    for d, n in zip(domains, per_domain, strict=True):
        if n > 0:
            out.append(_pin(g, key, [d], n, names[start:start + n], f"@{d}"))
            start += n
    if start < len(names):
        dropped.append((dataclasses.replace(g, count=len(names) - start, pod_names=tuple(names[start:])), reason))
    return out


def _even(total: int, domains: int, max_per: int | None = None) -> list[int]:
    base, extra = divmod(total, domains) if domains else (0, 0)
    counts = [base + (1 if i < extra else 0) for i in range(domains)]
    return [min(c, max_per) for c in counts] if max_per is not None else counts


def resolve_constraints(groups: Sequence[PodGroup], pools: Sequence[NodePool], catalog: Sequence[InstanceType]
                        ) -> tuple[list[PodGroup], list[tuple[PodGroup, str]]]:
    """Spread, zone-level (anti-)affinity and hostname caps, per group; returns (groups, dropped)."""
    universe: dict[str, list[str]] = {}

    def domains_for(g: PodGroup, key: str) -> list[str]:
        if key not in universe:
            universe[key] = sorted(_domains(key, pools, catalog))
        return [d for d in universe[key] if _allowed_by_pod(g, key, d)]

    dropped: list[tuple[PodGroup, str]] = []
    out: list[PodGroup] = []
    for g in groups:
        cap = g.node_cap()
        parts = [g]
        for c in g.spread:
            if not selects(c, g, g):
                continue  # spreading against other pods only: not modelled (documented divergence)
            if c.topology_key == HOSTNAME:
                cap = c.max_skew if cap is None else min(cap, c.max_skew)
                continue
            next_parts = []
            for part in parts:
                doms = domains_for(part, c.topology_key)
                if not doms:
                    dropped.append((part, f"no {c.topology_key} domain allowed for its topology spread"))
                    continue
                few = c.when_unsatisfiable == "DoNotSchedule" and c.min_domains is not None \
                    and len(doms) < c.min_domains
                per = _even(part.count, len(doms), c.max_skew if few else None)
                why = (f"topology spread on {c.topology_key}: {len(doms)} domain(s) < minDomains {c.min_domains}, "
                       f"at most maxSkew {c.max_skew} per domain")
                next_parts += _split(part, c.topology_key, doms, per, why, dropped)
            parts = next_parts
        if g.zone_max_skew is not None and g.count > 1:
            next_parts = []
            for part in parts:
                doms = domains_for(part, ZONE)
                next_parts += _split(part, ZONE, doms, _even(part.count, len(doms)), "no zone", dropped) if doms \
                    else [part]
            parts = next_parts
        for t in g.pod_anti_affinity:
            if t.topology_key == HOSTNAME or not selects(t, g, g):
                continue
            next_parts = []
            for part in parts:  # at most one of these pods per domain of the key
                doms = [d for d in domains_for(part, t.topology_key)]
                per = [1] * min(len(doms), part.count) + [0] * max(0, len(doms) - part.count)
                next_parts += _split(part, t.topology_key, doms, per,
                                     f"pod anti-affinity on {t.topology_key}: one pod per domain and only "
                                     f"{len(doms)} domain(s)", dropped)
            parts = next_parts
        for t in g.pod_affinity:
            if t.topology_key == HOSTNAME or not selects(t, g, g) or any(
                    o is not g and selects(t, g, o) for o in groups):
                continue
            next_parts = []
            for part in parts:  # every pod in one domain: the first one allowed
                doms = domains_for(part, t.topology_key)
                next_parts += [_pin(part, t.topology_key, doms[:1], part.count, part.names(), "")] if doms \
                    else [part]
            parts = next_parts
        single = any(t.topology_key == HOSTNAME and selects(t, g, g) and not any(
            o is not g and selects(t, g, o) for o in groups) for t in g.pod_affinity)
        if single:
            parts = [dataclasses.replace(p, single_node=True) for p in parts]
        hostname_anti = any(t.topology_key == HOSTNAME and selects(t, g, g) for t in g.pod_anti_affinity)
        if hostname_anti or ports_conflict(g.host_ports, g.host_ports):
            cap = 1
        out += [dataclasses.replace(p, per_node_max=cap, one_per_node=cap == 1) for p in parts]
    return _cross_group_domains(out, domains_for, dropped), dropped


def _domain_values(g: PodGroup, key: str, domains: list[str]) -> list[str]:
    """The domains of `key` the group can still land in (its requirements narrowed by pins)."""
    return [d for d in domains if _allowed_by_pod(g, key, d)]


def _cross_group_domains(groups: list[PodGroup], domains_for: Any,
                         dropped: list[tuple[PodGroup, str]]) -> list[PodGroup]:
    """Zone-level (any non-hostname key) pod affinity and anti-affinity between groups.

    Groups are taken in Karpenter's queue order (CPU, then memory, largest first). A group related
    to others (anti-affinity in either direction, affinity in either direction) is committed to one
    domain, its first allowed, when it is placed; later groups avoid (anti) or join (affinity) the
    domains of the related groups placed before them. Karpenter reaches the same state over two
    batches (it commits a domain only when the node is created); surge commits at planning time."""
    out = list(groups)
    order = sorted(range(len(out)), key=lambda i: (-out[i].requests.cpu_m, -out[i].requests.memory_mib, i))
    keys = {t.topology_key for g in out for t in (*g.pod_affinity, *g.pod_anti_affinity)} - {HOSTNAME}
    alive = [True] * len(out)
    for key in sorted(keys):
        def anti(a: int, b: int, key: str = key) -> bool:
            return any(t.topology_key == key and selects(t, out[a], out[b]) for t in out[a].pod_anti_affinity) or \
                any(t.topology_key == key and selects(t, out[b], out[a]) for t in out[b].pod_anti_affinity)

        def follows(a: int, b: int, key: str = key) -> bool:
            return any(t.topology_key == key and selects(t, out[a], out[b]) for t in out[a].pod_affinity) or \
                any(t.topology_key == key and selects(t, out[b], out[a]) for t in out[b].pod_affinity)

        placed: dict[int, list[str]] = {}
        for i in order:
            if not alive[i]:
                continue
            g = out[i]
            doms = [d for d in domains_for(g, key)]
            allowed = list(doms)
            for j, dj in placed.items():
                if anti(i, j):
                    allowed = [d for d in allowed if d not in dj]
            free = list(allowed)
            for j, dj in placed.items():
                if follows(i, j) and not anti(i, j):
                    allowed = [d for d in allowed if d in dj]
            if not allowed and any(t.topology_key == key and selects(t, g, g) for t in g.pod_affinity):
                allowed = free  # it matches its own affinity: like a first pod, it may open its own domain
            related = any(j != i and (anti(i, j) or follows(i, j)) for j in range(len(out)) if alive[j])
            if not allowed:
                if related:
                    dropped.append((g, f"pod (anti-)affinity on {key}: no {key} domain is left for it"))
                    alive[i] = False
                continue
            if related:
                allowed = allowed[:1]
            if allowed != doms:
                out[i] = _pin(g, key, allowed, g.count, g.names(), "")
            placed[i] = allowed
    return [g for g, ok in zip(out, alive, strict=True) if ok]


def pair_constraints(groups: Sequence[PodGroup]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(exclusive[G, G]: may not share a node, needs[G]: must share a node with that group or -1,
    reasons for groups whose required pod affinity selects no pod at all)."""
    n = len(groups)
    exclusive = np.zeros((n, n), dtype=bool)
    needs = np.full(n, -1, dtype=np.int64)
    reasons: dict[int, str] = {}
    with_terms = [i for i, g in enumerate(groups) if g.pod_anti_affinity or g.host_ports or g.pod_affinity
                  or g.spread]
    for i in with_terms:
        g = groups[i]
        for j, o in enumerate(groups):
            if j == i:
                continue
            if g.host_ports and o.host_ports and ports_conflict(g.host_ports, o.host_ports):
                exclusive[i, j] = exclusive[j, i] = True
            for t in g.pod_anti_affinity:
                if t.topology_key == HOSTNAME and selects(t, g, o):
                    exclusive[i, j] = exclusive[j, i] = True
            for c in g.spread:  # hostname spread, maxSkew 1, over pods of several groups: one of them per node
                if (c.topology_key == HOSTNAME and c.max_skew == 1 and c.when_unsatisfiable == "DoNotSchedule"
                        and selects(c, g, g) and selects(c, g, o)):
                    exclusive[i, j] = exclusive[j, i] = True
        for t in g.pod_affinity:
            targets = [j for j, o in enumerate(groups) if j != i and selects(t, g, o)]
            if not targets and not selects(t, g, g):
                reasons[i] = f"its required pod affinity ({t.topology_key}) selects no pending or running pod"
            elif targets and t.topology_key == HOSTNAME:
                needs[i] = targets[0]
    return exclusive, needs, reasons


# --- candidates --------------------------------------------------------------------------------------

def _minvalues_floor(key: str, n: int, labels_of: list[dict[str, str]], cap: np.ndarray) -> None:
    """NodePool `minValues`: a node may hold only what at least N instance types with distinct
    values of the key (among the pool's types) can hold, so its NodeClaim keeps N options; it is
    still launched as (and priced at) its cheapest type. A type's room shrinks to r·room, r the
    (N−1)-th best "smallest ratio to this room" over the types of the other values: every load
    that fits is then held by N types of distinct values. Worked per distinct type, not per offering."""
    first_of: dict[str, int] = {}
    for i, lab in enumerate(labels_of):
        first_of.setdefault(lab.get("node.kubernetes.io/instance-type", str(i)), i)
    rows = np.array(list(first_of.values()))
    codes_of: dict[str, int] = {}
    codes = np.array([codes_of.setdefault(labels_of[i].get(key, ""), len(codes_of)) for i in rows])
    index = {name: k for k, name in enumerate(first_of)}
    type_of = np.array([index[lab.get("node.kubernetes.io/instance-type", str(i))] for i, lab in enumerate(labels_of)])
    if len(codes_of) < n:
        cap[:] = -1  # the pool cannot keep N distinct values: never launched
        return
    room = cap[rows].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(room[:, None, :] > 0, room[None, :, :] / np.maximum(room[:, None, :], 1), np.inf)
    r = ratio.min(axis=2)  # r[i, k]: the share of type i's room that type k holds
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.nonzero(np.diff(codes[order]))[0] + 1]
    best = np.maximum.reduceat(r[:, order], starts, axis=1)  # (types, values): column j is value code j
    best[np.arange(len(rows)), codes] = -np.inf
    kth = -np.partition(-best, n - 2, axis=1)[:, n - 2]
    scale = np.clip(kth, 0, 1)[type_of]
    cap[:] = np.where(scale[:, None] > 0, np.floor(cap * scale[:, None]), -1).astype(np.int64)


_PARETO: dict[tuple[object, ...], np.ndarray] = {}


def pareto_candidates(rows: np.ndarray, cap: np.ndarray, price: np.ndarray, pool_of: np.ndarray,
                      existing: np.ndarray) -> np.ndarray:
    """`_pareto_candidates`, memoised on the arrays' contents: the prune and the LP bound ask it twice
    per plan, and a simulation asks it again for every plan of the same pod shape on the same room."""
    digest = hashlib.blake2b(digest_size=32)  # the key: arrays of 100k-pod problems are megabytes
    for a in (rows, cap, price, pool_of, existing):
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).data)
    key = (digest.digest(),)
    hit = _PARETO.get(key)
    if hit is None:
        hit = _pareto_candidates(rows, cap, price, pool_of, existing)
        hit.flags.writeable = False
        _bounded_put(_PARETO, key, hit, limit=256)  # small: a digest and an index array each
    return hit.copy()


def _pareto_candidates(rows: np.ndarray, cap: np.ndarray, price: np.ndarray, pool_of: np.ndarray,
                       existing: np.ndarray) -> np.ndarray:
    """Candidates worth keeping: existing nodes, and new ones no other candidate dominates.

    Candidates are classed by (pool, the groups they can take) with one np.unique; within a class
    a candidate is dominated when another has at least its room in every resource and costs no more
    (ties keep the first). Classes are compared in blocks with broadcasting — sub-quadratic in the
    number of candidates, since classes (types × capacity types × zones of one pool that suit the same
    groups) hold a few hundred each and exact duplicates (one type in several zones at one price)
    collapse first. Dropping dominated candidates never raises the optimum: any node of one can be
    re-typed to the one that dominates it."""
    used = rows.any(axis=0) if rows.size else np.zeros(len(price), dtype=bool)
    keep = used & existing
    new = np.nonzero(used & ~existing)[0]
    if not len(new):
        return np.nonzero(keep)[0]
    packed = np.packbits(rows[:, new], axis=0).T.astype(np.int64)
    key = np.concatenate([pool_of[new, None].astype(np.int64), packed], axis=1)
    _, cls = np.unique(key, axis=0, return_inverse=True)
    cls = cls.reshape(-1)
    # per class and room, only the cheapest candidate (ties: the first) can be undominated
    room_key = np.concatenate([cls[:, None], cap[new]], axis=1)
    _, room_of = np.unique(room_key, axis=0, return_inverse=True)
    room_of = room_of.reshape(-1)
    order = np.lexsort((new, price[new], room_of))
    firsts = order[np.r_[True, np.diff(room_of[order]) != 0]]
    new, cls = new[firsts], cls[firsts]
    order = np.argsort(cls, kind="stable")
    new, cls = new[order], cls[order]
    bounds = np.r_[0, np.nonzero(np.diff(cls))[0] + 1, len(cls)]
    for a, b in itertools.pairwise(bounds):
        members = new[a:b]
        c, pr = cap[members], price[members]
        dominated = np.zeros(len(members), dtype=bool)
        for s0 in range(0, len(members), 512):  # blocks bound the memory of the pairwise comparison
            blk = slice(s0, s0 + 512)
            ge = np.all(c[None, :, :] >= c[blk, None, :], axis=2)  # [j, k]: k has at least j's room
            better = (pr[None, :] < pr[blk, None]) | ((pr[None, :] == pr[blk, None])
                                                      & np.any(c[None, :, :] > c[blk, None, :], axis=2))
            dominated[blk] = np.any(ge & better, axis=1)
        keep[members[~dominated]] = True
    return np.nonzero(keep)[0]


def _prune(problem: Problem) -> Problem:
    """The problem restricted to the candidates worth keeping (every later stage is linear in them)."""
    existing = np.array([bool(c.existing) for c in problem.candidates], dtype=bool)
    idx = pareto_candidates(problem.compat[problem.compat.any(axis=1)], problem.cap, problem.price, problem.pool_of,
                            existing)
    if len(idx) == len(problem.candidates):
        return problem
    return dataclasses.replace(problem, candidates=[problem.candidates[i] for i in idx], cap=problem.cap[idx],
                               price=problem.price[idx], compat=problem.compat[:, idx], pool_of=problem.pool_of[idx],
                               limit_cap=problem.limit_cap[idx])


def build_problem(
    groups: Sequence[PodGroup],
    pools: Sequence[NodePool],
    catalog: Sequence[InstanceType],
    existing: Sequence[ExistingNode] = (),
    daemonset_overhead: Resources = Resources(),  # noqa: B008 - immutable value
) -> Problem:
    pools = sorted(pools, key=lambda p: (-p.spec.weight, p.name))
    groups, dropped = resolve_constraints(groups, pools, catalog)
    ext = sorted({k for g in groups for k, _ in g.requests.extended}
                 | {k for p in pools for k in p.limit_amounts() if k not in CORE})
    dims = [*CORE, *ext]
    candidates: list[Candidate] = []
    labels_of: list[dict[str, str]] = []
    taints_of: list[tuple[Taint, ...]] = []
    pool_index: list[int] = []
    cap_blocks: list[np.ndarray] = []
    limit_blocks: list[np.ndarray] = []
    for pi, pool in enumerate(pools):
        block = _pool_block(pool, catalog, daemonset_overhead, tuple(ext))
        candidates += block.candidates
        labels_of += block.labels_of
        taints_of += [block.taints] * len(block.candidates)
        pool_index += [pi] * len(block.candidates)
        cap_blocks.append(block.cap)
        limit_blocks.append(block.limit_cap)
    cap_rows: list[tuple[int, ...]] = []
    limit_rows: list[tuple[int, ...]] = []
    for node in existing:
        candidates.append(Candidate("", str(node.labels.get("node.kubernetes.io/instance-type", "")),
                                    str(node.labels.get(CAPACITY_TYPE, "")),
                                    str(node.labels.get(ZONE, "")), 0.0, node.free, existing=node.name,
                                    labels=dict(node.labels)))
        labels_of.append(dict(node.labels))
        taints_of.append(node.taints)
        pool_index.append(-1)
        cap_rows.append(node.free.vector(ext))
        limit_rows.append(tuple(0 for _ in dims))
    cap = np.concatenate([*cap_blocks, np.array(cap_rows, dtype=np.int64).reshape(-1, len(dims))])
    req = np.array([g.requests.vector(ext) for g in groups], dtype=np.int64).reshape(-1, len(dims))
    compat = np.zeros((len(groups), len(candidates)), dtype=bool)
    table = _LabelTable(labels_of, taints_of)
    minvalue_reasons: dict[int, str] = {}
    for gi, g in enumerate(groups):
        fits = np.all(cap >= req[gi], axis=1)
        row = np.zeros(len(candidates), dtype=bool)
        for term in g.requirements:  # Karpenter tries the terms in order, relaxing to the next on failure
            row = table.match((term,), g.tolerations) & fits
            if row.any():
                break
        for pref in g.preferred:  # Karpenter honours preferred node affinity while it can
            narrowed = row & table.match(tuple(r.intersect(pref) for r in g.requirements), g.tolerations)
            if narrowed.any():
                row = narrowed
                break
        compat[gi] = row
    for pi, pool in enumerate(pools):  # minValues over the types each group's pods allow (NodePool ∩ pod)
        in_pool = np.array(pool_index, dtype=np.int64) == pi if pool_index else np.zeros(0, dtype=bool)
        for key, n in pool.min_values():
            for gi in range(len(groups)):
                cols = np.nonzero(compat[gi] & in_pool)[0]
                if len(cols) and len({labels_of[c].get(key) for c in cols}) < n:
                    compat[gi, cols] = False
                    minvalue_reasons[gi] = (f"NodePool {pool.name}: minValues requirement is not met for label(s) "
                                            f"{key} ({n} distinct values needed among the types its pods allow)")
    exclusive, needs, affinity_reasons = pair_constraints(groups)
    node_cap = np.array([g.node_cap() if g.node_cap() is not None else BIG for g in groups], dtype=np.int64)
    limits = np.array([[pool.limit_amounts().get(d, BIG) for d in dims] for pool in pools],
                      dtype=np.int64).reshape(-1, len(dims))
    problem = Problem(
        groups=list(groups), candidates=candidates, cap=cap,
        price=np.array([c.price for c in candidates], dtype=float), req=req,
        count=np.array([g.count for g in groups], dtype=np.int64), compat=compat,
        pool_of=np.array(pool_index, dtype=np.int64), pools=list(pools), limits=limits,
        limit_cap=np.concatenate([*limit_blocks, np.array(limit_rows, dtype=np.int64).reshape(-1, len(dims))]),
        dims=dims, node_cap=node_cap,
        exclusive=exclusive, needs=needs, dropped=dropped,
    )
    for gi, reason in affinity_reasons.items():
        problem.compat[gi] = False
        problem.unschedulable[gi] = reason
    for gi, g in enumerate(groups):
        if not compat[gi].any() and gi not in problem.unschedulable:
            problem.unschedulable[gi] = minvalue_reasons.get(gi) or why_unschedulable(g, pools, catalog,
                                                                                      daemonset_overhead)
    return _prune(problem)


@dataclass(frozen=True)
class _PoolBlock:
    """One NodePool's new-node candidates (every allowed type × offering × custom-label variant),
    with their labels, the pool's taints and their rows of room (minValues applied) and capacity."""
    candidates: tuple[Candidate, ...]
    labels_of: tuple[dict[str, str], ...]
    taints: tuple[Taint, ...]
    cap: np.ndarray  # (n, D) int64, read-only
    limit_cap: np.ndarray  # (n, D) int64, read-only


_Row = tuple[Candidate, dict[str, str], tuple[int, ...], tuple[int, ...]]  # candidate, labels, room, capacity
_BLOCKS: dict[tuple[object, ...], tuple[tuple[InstanceType, ...], _PoolBlock]] = {}
_TYPE_ROWS: dict[tuple[object, ...], dict[int, tuple[InstanceType, tuple[_Row, ...]]]] = {}


def _pool_block(pool: NodePool, catalog: Sequence[InstanceType], overhead: Resources,
                ext: tuple[str, ...]) -> _PoolBlock:
    """The pool's candidate block, memoised: it depends only on the pool, the catalog, the DaemonSet
    overhead and the extended-resource columns, which stay the same from one plan to the next while
    the pods and existing nodes change (a simulated year plans tens of thousands of times over one
    catalog of ~500 types). The pool is keyed by content (a NodePool is a mutable model); the catalog
    by the identity of its instance types, which are frozen values — the entry holds them, so an id
    cannot be reused while it is cached. Bounded: the oldest entry goes first."""
    pool_key = pool.model_dump_json()
    key = (pool_key, tuple(map(id, catalog)), overhead, ext)
    hit = _BLOCKS.get(key)
    if hit is not None:
        return hit[1]
    block = _offerings(pool, pool_key, catalog, overhead, list(ext))
    _bounded_put(_BLOCKS, key, (tuple(catalog), block))
    return block


def _offerings(pool: NodePool, pool_key: str, catalog: Sequence[InstanceType], overhead: Resources,
               ext: list[str]) -> _PoolBlock:
    """Every (type, offering, variant) the pool allows and whose room after `overhead` is positive.

    Rows are memoised per instance type too: `catalog_now` rebuilds the catalog when an offering is
    marked unavailable but keeps every other type object, so only the changed types are re-walked."""
    dims = len(CORE) + len(ext)
    extra = dict(pool.spec.template.metadata.labels) | {"karpenter.sh/nodepool": pool.name}
    known = {k for t in catalog for k in t.labels} | set(OFFERING_KEYS) | set(extra)
    reqs, variants = _custom_labels(pool.requirements(), known)
    context = (pool_key, overhead, tuple(ext), frozenset(known))
    memo = _TYPE_ROWS.get(context)
    if memo is None or len(memo) > 4 * len(catalog) + 64:  # stale type versions pile up: start over
        memo = {}
        _bounded_put(_TYPE_ROWS, context, memo)
    # the type's own keys are checked once per type; per offering only zone, capacity type, custom keys
    offer_keys = [k for k in reqs.by_key if k in OFFERING_KEYS or k in variants[0]]
    type_keys = [(k, vs) for k, vs in reqs.by_key.items() if k not in OFFERING_KEYS and k not in variants[0]]
    rows: list[_Row] = []
    for t in catalog:
        hit = memo.get(id(t))
        if hit is None or hit[0] is not t:
            hit = (t, _type_rows(t, pool.name, extra, reqs, variants, offer_keys, type_keys, overhead, ext))
            memo[id(t)] = hit  # holds t, so its id is not reused while the entry lives
        rows += hit[1]
    candidates = tuple(r[0] for r in rows)
    labels_of = [r[1] for r in rows]
    cap = np.array([r[2] for r in rows], dtype=np.int64).reshape(-1, dims)
    for key, n in pool.min_values():
        if n > 1 and len(candidates):
            _minvalues_floor(key, n, labels_of, cap)
    limit_cap = np.array([r[3] for r in rows], dtype=np.int64).reshape(-1, dims)
    cap.flags.writeable = False
    limit_cap.flags.writeable = False
    return _PoolBlock(candidates, tuple(labels_of), pool.taints(), cap, limit_cap)


def _type_rows(t: InstanceType, pool_name: str, extra: dict[str, str], reqs: Requirements,
               variants: list[dict[str, str]], offer_keys: list[str], type_keys: list[tuple[str, ValueSet]],
               overhead: Resources, ext: list[str]) -> tuple[_Row, ...]:
    """One type's candidates in one pool: nothing when its labels or its room rule it out."""
    type_labels = dict(t.labels) | extra
    if any(not vs.allows(type_labels.get(k)) for k, vs in type_keys):
        return ()
    capacity = t.allocatable - overhead
    if min(capacity.cpu_m, capacity.memory_mib, capacity.pods) <= 0:
        return ()
    room, full = capacity.vector(ext), t.capacity.vector(ext)
    out: list[_Row] = []
    for o, variant in itertools.product(t.offerings, variants):
        if not o.available:
            continue
        labels = type_labels | variant | {CAPACITY_TYPE: o.capacity_type, ZONE: o.zone}
        if any(not reqs.by_key[k].allows(labels.get(k)) for k in offer_keys):
            continue
        out.append((Candidate(pool_name, t.name, o.capacity_type, o.zone, o.price, capacity, labels=labels),
                    labels, room, full))
    return tuple(out)

def _custom_labels(reqs: Requirements, known: set[str]) -> tuple[Requirements, list[dict[str, str]]]:
    """A NodePool requirement on a key no instance type defines (`team In [a, b]`) labels the node
    with one of its values, as Karpenter does: one candidate variant per combination. Such keys
    without values (NotIn, Exists) constrain nothing the catalog knows, so they are dropped."""
    custom = {k: vs for k, vs in reqs.by_key.items() if k not in known}
    if not custom:
        return reqs, [{}]
    keep = Requirements({k: vs for k, vs in reqs.by_key.items() if k not in custom or vs.include is not None})
    valued = [(k, sorted(vs.include)) for k, vs in custom.items() if vs.include is not None]
    variants = [dict(zip([k for k, _ in valued], combo, strict=True))
                for combo in itertools.product(*[v for _, v in valued])]
    return keep, variants or [{}]


class _LabelTable:
    """Candidates' labels and taints by column, so a requirement is checked once per distinct value
    instead of once per candidate (thousands of offerings × hundreds of pod shapes)."""

    def __init__(self, labels_of: list[dict[str, str]], taints_of: list[tuple[Taint, ...]]) -> None:
        self.labels_of = labels_of
        self.columns: dict[str, tuple[list[str | None], np.ndarray]] = {}
        taint_codes: dict[tuple[Taint, ...], int] = {}
        self.taint_idx = np.array([taint_codes.setdefault(t, len(taint_codes)) for t in taints_of], dtype=np.int64)
        self.taint_sets = list(taint_codes)
        self.cache: dict[object, np.ndarray] = {}

    def _column(self, key: str) -> tuple[list[str | None], np.ndarray]:
        if key not in self.columns:
            codes: dict[str | None, int] = {}
            inv = np.array([codes.setdefault(lab.get(key), len(codes)) for lab in self.labels_of], dtype=np.int64)
            self.columns[key] = (list(codes), inv)
        return self.columns[key]

    def match(self, requirements: Sequence[Requirements], tolerations: Sequence[Toleration]) -> np.ndarray:
        key = (tuple(tuple(sorted(r.by_key.items(), key=lambda kv: kv[0])) for r in requirements), tuple(tolerations))
        if key in self.cache:
            return self.cache[key]
        n = len(self.labels_of)
        any_term = np.zeros(n, dtype=bool)
        for r in requirements:
            ok = np.ones(n, dtype=bool)
            for k, vs in r.by_key.items():
                values, inv = self._column(k)
                ok &= np.array([vs.allows(v) for v in values], dtype=bool)[inv] if values else ok
            any_term |= ok
        tol = np.array([untolerated(ts, tolerations) is None for ts in self.taint_sets], dtype=bool)
        out = any_term & (tol[self.taint_idx] if len(tol) else np.ones(n, dtype=bool))
        self.cache[key] = out
        return out


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
        extra = {**dict(pool.spec.template.metadata.labels), "karpenter.sh/nodepool": pool.name}
        types = [t for t in catalog if any(m.first_violation({**t.labels, **extra}) is None
                                           or _only_offering_keys(m, t) for m in merged)]
        if not types:
            reasons.append(f"NodePool {pool.name}: no instance type satisfies the requirements "
                           f"({_commonest_violation(merged, catalog, extra)})")
            continue
        fitting = [t for t in types if g.requests.fits_in(t.allocatable - overhead)]
        if not fitting:
            biggest = max((t.allocatable - overhead for t in types), key=lambda r: (r.gpu, r.cpu_m, r.memory_mib))
            reasons.append(f"NodePool {pool.name}: requests ({g.requests}) exceed every allowed instance type "
                           f"(largest: {biggest})")
            continue
        reasons.append(f"NodePool {pool.name}: no offering (capacity type / zone) satisfies the requirements")
    return "; ".join(reasons)


def _commonest_violation(merged: Sequence[Requirements], catalog: Sequence[InstanceType],
                         extra: Mapping[str, str]) -> str:
    """The requirement most instance types fail (not the first type's reason): what to relax."""
    from collections import Counter

    keys: Counter[str] = Counter()
    for t in catalog:
        labels = {**t.labels, **extra}
        for key, vs in merged[0].by_key.items():
            if key not in OFFERING_KEYS and not vs.allows(labels.get(key)):
                keys[f"{key} {vs.describe()}"] += 1
                break
    if not keys:
        return "empty catalog" if not catalog else "no type matches"
    what, n = keys.most_common(1)[0]
    return f"{what}: {n} of {len(catalog)} types fail it"


def _only_offering_keys(req: Requirements, t: InstanceType) -> bool:
    labels = dict(t.labels)
    return all(vs.allows(labels.get(k)) for k, vs in req.by_key.items()
               if k not in (CAPACITY_TYPE, ZONE, "karpenter.sh/nodepool"))


__all__ = ["BIG", "Candidate", "ExistingNode", "PodAffinityTerm", "Problem", "SpreadConstraint", "build_problem"]
