"""Replica-engine throughput: decisions per second for 10,000 ScaledObjects on one core (pure engine).

Each object has two triggers and a custom scale-down behavior; every object is decided once per
simulated 15 s poll, 20 polls, with load that rises and falls. Prints and writes docs/benchmarks-engine.md.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.engine.decide import EngineState, ScalingSpec, TriggerReading, TriggerSpec, decide  # noqa: E402
from autoscaler.engine.hpa import DEFAULT_SCALE_UP, Behavior, Policy, Rules  # noqa: E402

OBJECTS = 10_000
POLLS = 20


def main() -> None:
    spec = ScalingSpec(
        triggers=(TriggerSpec("queue", "AverageValue", 10), TriggerSpec("rps", "AverageValue", 100)),
        min_replicas=0, max_replicas=50, cooldown_seconds=120,
        behavior=Behavior(DEFAULT_SCALE_UP, Rules(60, "Max", (Policy("Pods", 2, 30),))),
    )
    states = [EngineState(created_at=0) for _ in range(OBJECTS)]
    replicas = [0] * OBJECTS
    decisions = 0
    start = time.process_time()
    for poll in range(POLLS):
        now = 15.0 * poll
        for i in range(OBJECTS):
            load = max(0.0, 200 * math.sin((poll + i % 7) / 3))
            readings = {"queue": TriggerReading(load, load > 0), "rps": TriggerReading(load * 4, load > 0)}
            d = decide(spec, readings, replicas[i], replicas[i], states[i], now)
            states[i] = d.state
            if d.replicas is not None:
                replicas[i] = d.replicas
            decisions += 1
    cpu = time.process_time() - start
    rate = decisions / cpu
    table = ("| objects | polls | decisions | CPU seconds | decisions / s (one core) | µs / decision |\n"
             "|---:|---:|---:|---:|---:|---:|\n"
             f"| {OBJECTS} | {POLLS} | {decisions} | {cpu:.2f} | {rate:,.0f} | {1e6 / rate:.1f} |")
    print(table)
    (ROOT / "docs" / "benchmarks-engine.md").write_text(
        f"# Replica engine throughput\n\nMeasured by `bench/engine.py` ({platform.machine()}, Python "
        f"{platform.python_version()}), CPU time of one process.\n\n{table}\n")


if __name__ == "__main__":
    main()
