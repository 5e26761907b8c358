"""Requirement algebra and taints, per Kubernetes' node-selector semantics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.requirements import Requirements, Taint, Toleration, untolerated, value_set


@pytest.mark.parametrize(("op", "values", "label", "allowed"), [
    ("In", ["a", "b"], "a", True), ("In", ["a"], None, False), ("NotIn", ["a"], "a", False),
    ("NotIn", ["a"], None, True), ("Exists", [], "x", True), ("Exists", [], None, False),
    ("DoesNotExist", [], None, True), ("DoesNotExist", [], "x", False), ("Gt", ["4"], "5", True),
    ("Gt", ["4"], "4", False), ("Lt", ["4"], "3", True), ("Gt", ["4"], "abc", False), ("Lt", ["4"], None, False),
])
def test_operators(op: str, values: list[str], label: str | None, allowed: bool) -> None:
    assert value_set(op, values).allows(label) is allowed


def test_intersection_and_conflict() -> None:
    pool = Requirements.from_terms([{"key": "arch", "operator": "In", "values": ["amd64", "arm64"]},
                                    {"key": "gen", "operator": "Gt", "values": ["4"]}])
    pod = Requirements.from_terms([{"key": "arch", "operator": "In", "values": ["arm64"]},
                                   {"key": "gen", "operator": "Lt", "values": ["7"]}])
    both = pool.intersect(pod)
    assert both.first_violation({"arch": "arm64", "gen": "6"}) is None
    assert "gen" in (both.first_violation({"arch": "arm64", "gen": "7"}) or "")
    clash = pool.intersect(Requirements.from_terms([{"key": "arch", "operator": "In", "values": ["s390x"]}]))
    assert clash.conflict() is not None
    with pytest.raises(ValueError, match="unknown operator"):
        value_set("Near", ["x"])


def test_taints() -> None:
    gpu = Taint("nvidia.com/gpu", "", "NoSchedule")
    assert untolerated([gpu], []) == gpu
    assert untolerated([gpu], [Toleration("nvidia.com/gpu", "Exists")]) is None
    assert untolerated([gpu], [Toleration("", "Exists")]) is None  # tolerate everything
    assert untolerated([Taint("a", "1", "PreferNoSchedule")], []) is None
    assert untolerated([Taint("a", "1", "NoExecute")], [Toleration("a", "Equal", "2")]) is not None


@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4), st.lists(st.sampled_from(["a", "b", "c", "d"]),
       max_size=4), st.sampled_from(["a", "b", "c", "d", None]))
def test_intersection_is_conjunction(xs: list[str], ys: list[str], label: str | None) -> None:
    a, b = value_set("In", xs), value_set("NotIn", ys)
    assert a.intersect(b).allows(label) == (a.allows(label) and b.allows(label))
