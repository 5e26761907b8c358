"""A node plan: which new nodes to launch for which pending pods, at what $/h, against the LP bound."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from provisioner.baseline import baseline_pack
from provisioner.catalog import InstanceType
from provisioner.nodepool import NodePool
from provisioner.packing import OpenNode, pack
from provisioner.pods import PodGroup
from provisioner.problem import ExistingNode, Problem, build_problem
from provisioner.resources import Resources


@dataclass
class PlannedNode:
    instance_type: str
    capacity_type: str
    zone: str
    price_per_hour: float
    pods: list[str]
    nodepool: str = ""
    existing: str = ""
    cpu_utilization: float = 0.0
    memory_utilization: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)  # the node's labels (not in the JSON output)


@dataclass
class Plan:
    nodes: list[PlannedNode]
    cost_per_hour: float
    lower_bound_per_hour: float
    unschedulable: list[dict[str, str]] = field(default_factory=list)
    solve_seconds: float = 0.0
    algorithm: str = "surge"

    @property
    def new_nodes(self) -> list[PlannedNode]:
        return [n for n in self.nodes if not n.existing]

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready values (built field by field: `asdict` deep-copies 45k pod names slowly)."""
        nodes = []
        for n in self.nodes:
            row = {f.name: getattr(n, f.name) for f in fields(PlannedNode) if f.name not in ("labels", "existing")}
            if n.existing:
                row["existing"] = n.existing
            nodes.append(row)
        return {"nodes": nodes, "cost_per_hour": self.cost_per_hour, "lower_bound_per_hour": self.lower_bound_per_hour,
                "unschedulable": self.unschedulable, "solve_seconds": self.solve_seconds, "algorithm": self.algorithm}


def make_plan(
    groups: Sequence[PodGroup],
    pools: Sequence[NodePool],
    catalog: Sequence[InstanceType],
    existing: Sequence[ExistingNode] = (),
    daemonset_overhead: Resources = Resources(),  # noqa: B008 - immutable value
    algorithm: Literal["surge", "karpenter"] = "surge",
) -> Plan:
    """Plan nodes for `groups`. Never raises for bad pods: they come back in `unschedulable`."""
    start = time.perf_counter()  # reported only: nothing the plan decides depends on it
    problem = build_problem(groups, pools, catalog, existing, daemonset_overhead)
    if algorithm == "surge":
        nodes, left, bound, _ = pack(problem)
    else:
        nodes, left = baseline_pack(problem)
        import numpy as np

        from provisioner.bound import solve_lp

        bound = solve_lp(problem, np.asarray(problem.compat.any(axis=1), dtype=bool)).bound
    plan = _render(problem, nodes, left, bound)
    plan.solve_seconds = time.perf_counter() - start
    plan.algorithm = algorithm
    return plan


def _render(p: Problem, nodes: list[OpenNode], left: Mapping[int, int], bound: float) -> Plan:
    names = {g: iter(grp.names()) for g, grp in enumerate(p.groups)}
    planned = []
    for node in nodes:
        c = p.candidates[node.candidate]
        pods = [next(names[g]) for g, n in sorted(node.pods.items()) for _ in range(n)]
        used = sum((p.groups[g].requests.times(n) for g, n in node.pods.items()), Resources())
        planned.append(PlannedNode(c.instance_type, c.capacity_type, c.zone, c.price, pods, c.pool, c.existing,
                                   round(used.cpu_m / max(c.capacity.cpu_m, 1), 4),
                                   round(used.memory_mib / max(c.capacity.memory_mib, 1), 4), dict(c.labels)))
    unschedulable = []
    for g, grp in enumerate(p.groups):
        n = left.get(g, 0) + p.held_back.get(g, 0) if g not in p.unschedulable else grp.count
        if n <= 0:
            continue
        reason = (p.unschedulable.get(g) or p.left_reasons.get(g)
                  or "NodePool limits reached (no room left in any NodePool that fits it)")
        unschedulable += [{"pod": name, "reason": reason} for name in list(names[g])[:n]]
    for grp, reason in p.dropped:
        unschedulable += [{"pod": name, "reason": reason} for name in grp.names()]
    cost = sum(n.price_per_hour for n in planned)
    return Plan(planned, round(cost, 6), round(bound, 6), unschedulable)
