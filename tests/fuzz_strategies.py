"""Hypothesis strategies for fuzzing surge's front door: the real compatibility manifests
(tests/compat/manifests, copied from ../shared/compat/manifests; sources in its SOURCES.md) with
one part mutated — a value's type, its size, its nesting, unicode in keys and values, a key
removed — plus raw byte mutations of the files and scalingModifiers formulas built from
expr-lang's grammar with hostile pieces. Used by tests/test_fuzz.py (short, in CI) and
bench/fuzz.py (long, prints the number of cases tried).

The contract checked: the reader raises only ManifestError, the validator returns results and
never raises, the formula compiler and evaluator raise only FormulaError."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from autoscaler.engine.formula import FormulaError, compile_formula, compute
from autoscaler.manifests.loader import Document
from autoscaler.manifests.reader import Limits, ManifestError, load_bytes
from autoscaler.validate import validate_documents

MANIFESTS = Path(__file__).resolve().parent / "compat" / "manifests"
FILES: dict[str, bytes] = {p.name: p.read_bytes() for p in sorted(MANIFESTS.glob("*.yaml"))}
DOCUMENTS: list[dict[str, Any]] = [d for data in FILES.values() for d in yaml.safe_load_all(data)
                                   if isinstance(d, dict)]
LIMITS = Limits(max_bytes=256 * 1024, max_documents=50, max_depth=48, max_aliases=50, max_nodes=20_000)

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**31 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), _text,
    st.sampled_from(["", " ", "1e999", "-1", "0x10", "NaN", "99999999999", "true", "{}", "[", "\x00", "ÿ",
                     "a" * 5000, "${ENV}", "*/5 * * * *", "http://[::1]:99999", "../../etc/passwd"]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(_text, inner, max_size=4)), max_leaves=12)


def _deep(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of a document (mappings by key, lists by index)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A real manifest with a few of its nodes replaced, removed, renamed, nested or blown up."""
    doc = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        if not where:
            continue
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        key = where[-1]
        action = draw(st.sampled_from(["replace", "remove", "rename", "deep", "wide", "unicode"]))
        if action == "replace":
            parent[key] = draw(_values)
        elif action == "remove":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(_text)] = parent.pop(key)
        elif action == "deep":
            parent[key] = _deep(draw(st.integers(10, 300)))
        elif action == "wide":
            parent[key] = [draw(_scalars)] * draw(st.integers(100, 5000))
        elif action == "unicode":
            parent[key] = draw(st.text(min_size=1, max_size=200))
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """A real manifest file with bytes flipped, inserted, cut or re-encoded."""
    data = bytearray(draw(st.sampled_from(list(FILES.values()))))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "cut", "encode", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([b"&a ", b"*a", b"<<: *a\n", b"---\n", b"!!binary ", b"\t", b"[" * 80,
                                                b"{", b"'", b"\xff\xfe", b"\x00", b"? ", b"%YAML 1.1\n"]))
        elif action == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif action == "encode":
            data = bytearray(bytes(data).decode("utf-8", "replace").encode(draw(st.sampled_from(
                ["utf-16", "utf-16-le", "latin-1", "utf-32"])), "replace"))
        elif action == "repeat":
            data = data * draw(st.integers(2, 20))
    return bytes(data)


NAMES = ["a", "b", "queue_len", "rps"]
_atoms = st.one_of(st.sampled_from(NAMES), st.sampled_from(["1", "0", "2.5", "1e3", "1e999", "0x1f", "1_000",
                                                            "99999999999999999999", "nil", "true", "'s'", ".5", "#"]))
_ops = st.sampled_from(["+", "-", "*", "/", "%", "**", "^", "??", "&&", "||", "and", "or", "==", "!=", "<", ">="])
formulas = st.one_of(
    st.recursive(_atoms, lambda inner: st.one_of(
        st.tuples(inner, _ops, inner).map(" ".join),
        inner.map(lambda x: f"({x})"),
        st.tuples(st.sampled_from(["-", "!", "not ", "+"]), inner).map("".join),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
        st.tuples(st.sampled_from(["min", "max", "abs", "ceil", "floor", "round", "int", "float", "__import__", "exp",
                                   "sum", "mean", "median", "len"]),
                  st.lists(inner, min_size=1, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.lists(inner, max_size=4).map(lambda xs: f"[{', '.join(xs)}]"),
        st.tuples(st.sampled_from(["count", "all", "any", "none", "one", "filter", "map"]),
                  st.lists(inner, max_size=3), inner).map(lambda t: f"{t[0]}([{', '.join(t[1])}], {{# > {t[2]}}})"),
    ), max_leaves=30),
    st.text(st.sampled_from(list("ab()+-*/%?:!<>=&|^ .,'\"0123456789e_x[]{}#")), max_size=80),
    st.integers(1, 3000).map(lambda n: "(" * n + "a" + ")" * n),
    st.integers(1, 3000).map(lambda n: "a" + " + a" * n),
)


def check_reader(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        load_bytes(data, "fuzz.yaml", LIMITS)


def check_validator(doc: dict[str, Any]) -> None:
    results = validate_documents([Document("fuzz.yaml", 0, doc)])
    assert len(results) == 1
    for issue in results[0].errors:
        assert issue.field and issue.message


def check_formula(formula: str, values: dict[str, float | None]) -> None:
    try:
        compile_formula(formula, NAMES)
        result = compute(formula, values)
    except FormulaError:
        return
    assert result == result and abs(result) != float("inf")
