"""The long fuzz run: the strategies of tests/test_fuzz.py (mutated real manifests, mutated bytes,
hostile formulas) for a fixed budget of cases each, counting cases tried, documented errors seen,
and anything else (which is a bug). Prints a table and writes docs/benchmarks-fuzz.md.

    .venv/bin/python bench/fuzz.py [CASES_PER_TARGET]   (default 5000)
"""

from __future__ import annotations

import platform
import resource
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from autoscaler.engine.formula import FormulaError, compile_formula, compute  # noqa: E402
from autoscaler.manifests.reader import ManifestError, load_bytes  # noqa: E402
from tests.fuzz_strategies import (  # noqa: E402
    LIMITS,
    NAMES,
    check_validator,
    formulas,
    mutated_bytes,
    mutated_documents,
)


def run(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], bool], cases: int) -> dict[str, Any]:
    """Feed `cases` generated inputs to `check` (True: a documented error); count what happened."""
    counts: Counter[str] = Counter()
    bugs: list[str] = []
    slowest = 0.0

    @settings(max_examples=cases, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(value: Any) -> None:
        nonlocal slowest
        start = time.perf_counter()
        try:
            counts["documented error" if check(value) else "accepted"] += 1
        except Exception as exc:
            counts["BUG"] += 1
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            bugs.append(f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}: {exc}"[:200])
        slowest = max(slowest, time.perf_counter() - start)

    start = time.perf_counter()
    one()
    elapsed = time.perf_counter() - start
    return {"target": name, "cases": sum(counts.values()), "accepted": counts["accepted"],
            "errors": counts["documented error"], "bugs": counts["BUG"], "seconds": elapsed,
            "slowest_ms": slowest * 1000, "examples": sorted(set(bugs))[:5]}


def reader(data: bytes) -> bool:
    try:
        load_bytes(data, "fuzz.yaml", LIMITS)
    except ManifestError:
        return True
    return False


def validator(doc: dict[str, Any]) -> bool:
    check_validator(doc)
    return False


def formula(text: str) -> bool:
    try:
        compile_formula(text, NAMES)
        compute(text, {"a": 1.0, "b": 0.0, "queue_len": None, "rps": 3.0})
    except FormulaError:
        return True
    return False


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rows = [run("reader: mutated manifest bytes", mutated_bytes(), reader, cases),
            run("validator: mutated manifest documents", mutated_documents(), validator, cases),
            run("formula compiler + evaluator", formulas, formula, cases)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = ["# Fuzzing surge's front door (bench/fuzz.py)", "",
             f"Python {platform.python_version()} on {platform.machine()}; {cases} generated cases per target; "
             f"peak resident size of the whole run {peak:.0f} MB. Strategies: tests/fuzz_strategies.py (the real "
             "compatibility manifests, mutated). A bug is any exception other than the documented ManifestError / "
             "FormulaError, or the validator raising at all.", "",
             "| target | cases tried | accepted | documented errors | bugs | seconds | slowest case (ms) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['cases']} | {r['accepted']} | {r['errors']} | {r['bugs']} | "
                     f"{r['seconds']:.1f} | {r['slowest_ms']:.0f} |")
        lines += [f"  - {e}" for e in r["examples"]]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "docs" / "benchmarks-fuzz.md").write_text(text)
    if any(r["bugs"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
