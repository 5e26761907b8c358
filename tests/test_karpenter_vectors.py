"""Karpenter's own scheduling cases (tests/karpenter/vectors, built by tests/karpenter/build_vectors.py from
kubernetes-sigs/karpenter pkg/controllers/provisioning/scheduling/*_test.go) through surge's planner.

A vector with a `divergence` documents a case where surge knowingly decides differently (the reason is in
the vector and in docs/compatibility.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.karpenter.runner import check

VECTORS = sorted((Path(__file__).parent / "karpenter" / "vectors").glob("*.json"))
CASES: list[dict[str, Any]] = [v for f in VECTORS for v in json.loads(f.read_text())]
PARAMS = [pytest.param(v, id=f"{v['id']} {v['title'][:60]}", marks=[
    pytest.mark.conformance(f"karpenter-{v['id'].split('_test.go')[0]}.json"),
    *([pytest.mark.xfail(reason=v["divergence"], strict=True)] if v.get("divergence") else [])]) for v in CASES]


def test_enough_cases_from_each_file() -> None:
    by_file = {f.stem: len(json.loads(f.read_text())) for f in VECTORS}
    assert sum(by_file.values()) >= 150 and set(by_file) == {"suite", "topology", "instance_selection"}, by_file


@pytest.mark.parametrize("vector", PARAMS)
def test_karpenter_case(vector: dict[str, Any]) -> None:
    """Counted per source file in docs/compatibility-counts.json; a documented divergence is a
    strict xfail, so a fix shows up."""
    fails = check(vector)
    assert not fails, fails


def test_compatibility_doc_counts_the_vectors() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "compatibility.md").read_text()
    diverging = sum(1 for v in CASES if v.get("divergence"))
    assert f"{len(CASES)} Karpenter scheduling cases" in doc
    assert f"{len(CASES) - diverging} pass, {diverging} documented divergence" in doc
