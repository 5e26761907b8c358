"""build_problem's memos (per-pool candidate blocks, per-type rows, Pareto sets) never change an answer:
a warm call equals a cold one after the inputs change in place or by replacement, as catalog_now does."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from provisioner import problem as P
from provisioner.catalog import InstanceType, load_catalog
from provisioner.nodepool import NodePool
from provisioner.pods import PodGroup
from provisioner.problem import ExistingNode, Problem, build_problem, pareto_candidates
from provisioner.resources import Resources


@cache
def catalog() -> tuple[InstanceType, ...]:
    return tuple(t for t in load_catalog() if t.category in ("c", "m") and t.generation >= 6)


def pool() -> NodePool:
    return NodePool.model_validate({"metadata": {"name": "p"}, "spec": {"template": {"spec": {"requirements": [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]}}}})


GROUPS = [PodGroup("web", 7, Resources(1500, 3000, 0, 1))]
ROOM = [ExistingNode("n1", {"topology.kubernetes.io/zone": "us-east-1a"}, Resources(4000, 8000, 0, 20))]


def cold(*args: object, **kwargs: object) -> Problem:
    for memo in (P._BLOCKS, P._TYPE_ROWS, P._PARETO):
        memo.clear()
    return build_problem(*args, **kwargs)  # type: ignore[arg-type]


def same(a: Problem, b: Problem) -> None:
    assert a.candidates == b.candidates
    assert [c.labels for c in a.candidates] == [c.labels for c in b.candidates]
    for name in ("cap", "price", "compat", "pool_of", "limit_cap", "req", "limits"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.unschedulable == b.unschedulable


def test_a_repeated_call_reuses_the_block_and_answers_the_same() -> None:
    first = cold(GROUPS, [pool()], catalog(), ROOM)
    again = build_problem(GROUPS, [pool()], catalog(), ROOM)  # an equal pool, a new object: keyed by content
    same(first, again)
    assert len(P._BLOCKS) == 1
    assert all(a is b for a, b in zip(first.candidates, again.candidates, strict=True) if not a.existing)


def test_a_pool_changed_in_place_is_not_served_from_the_memo() -> None:
    p = pool()
    before = cold(GROUPS, [p], catalog())
    p.spec.template.spec.requirements[0].values = ["spot"]  # no spot offerings in the snapshot: nothing left
    p.spec.template.metadata.labels["team"] = "a"
    after = build_problem(GROUPS, [p], catalog())
    same(after, cold(GROUPS, [p], catalog()))
    assert before.candidates and not after.candidates


@pytest.mark.parametrize("overhead", [Resources(), Resources(500, 1024, 0, 3)])
def test_a_type_replaced_like_catalog_now_is_re_walked(overhead: Resources) -> None:
    base = catalog()
    cold(GROUPS, [pool()], base, (), overhead)
    gone = base[0]
    marked = dataclasses.replace(gone, offerings=tuple(dataclasses.replace(o, available=False)
                                                       for o in gone.offerings))
    now = (marked, *base[1:])
    warm = build_problem(GROUPS, [pool()], now, (), overhead)
    same(warm, cold(GROUPS, [pool()], now, (), overhead))
    assert gone.name not in {c.instance_type for c in warm.candidates}
    assert gone.name in {c.instance_type for c in build_problem(GROUPS, [pool()], base, (), overhead).candidates}


def test_pareto_answers_are_the_callers_own() -> None:
    rows = np.array([[True, True, True]])
    cap = np.array([[4, 4], [2, 2], [4, 4]], dtype=np.int64)
    price = np.array([1.0, 1.0, 2.0])
    pool_of = np.zeros(3, dtype=np.int64)
    existing = np.zeros(3, dtype=bool)
    first = pareto_candidates(rows, cap, price, pool_of, existing)
    assert first.tolist() == [0]  # 1 has less room at the same price, 2 the same room dearer
    first[0] = 99
    assert pareto_candidates(rows, cap, price, pool_of, existing).tolist() == [0]
    price[0] = 3.0  # now 1 is no longer dominated by 0, and 2 dominates 0
    assert pareto_candidates(rows, cap, price, pool_of, existing).tolist() == [1, 2]
