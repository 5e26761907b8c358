"""Fuzzing in CI: mutated real manifests against the reader, the validator and the formula
compiler — no exception but the documented ones, every case within a deadline, memory bounded.
(bench/fuzz.py runs the same strategies for longer and prints how many cases it tried.)"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_strategies import (
    DOCUMENTS,
    FILES,
    check_formula,
    check_reader,
    check_validator,
    formulas,
    mutated_bytes,
    mutated_documents,
)

FUZZ = settings(max_examples=150, deadline=timedelta(seconds=5), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PEAK_GROWTH = 256 * 1024 * 1024


@pytest.fixture(autouse=True)
def bounded_memory() -> Iterator[None]:
    """The process's peak resident size may not grow by more than PEAK_GROWTH over a whole run."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < PEAK_GROWTH, f"peak resident size grew by {grown / 1e6:.0f} MB"


def test_the_corpus_is_the_real_manifests() -> None:
    assert len(FILES) >= 20 and len(DOCUMENTS) >= 25
    assert {d["kind"] for d in DOCUMENTS} >= {"ScaledObject", "TriggerAuthentication", "HTTPScaledObject"}


@FUZZ
@given(mutated_bytes())
def test_reader_raises_only_manifest_errors(data: bytes) -> None:
    check_reader(data)


@FUZZ
@given(mutated_documents())
def test_reader_and_validator_on_mutated_documents(doc: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True).encode()
    except (yaml.YAMLError, RecursionError):
        text = b"{}"
    check_reader(text)
    check_validator(doc)


@FUZZ
@given(formulas, st.dictionaries(st.sampled_from(["a", "b", "queue_len", "rps"]),
                                 st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))))
def test_formula_compiler_raises_only_formula_errors(formula: str, values: dict[str, float | None]) -> None:
    check_formula(formula, {"a": 1.0, "b": 2.0, "queue_len": 0.0, "rps": 3.0} | values)
