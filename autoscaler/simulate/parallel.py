"""Policies side by side on separate cores.

Each policy's run is independent of the others (its own cluster, queue, event heap and RNG seeded
from the assumptions), so running them in worker processes changes nothing in the results — only
the wall time: a year of trace under three policies takes as long as its slowest policy instead of
the sum. Short runs stay in this process, where starting workers would cost more than it saves.
Workers are spawned, not forked: the caller may be running threads (the progress bar's refresher).
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from autoscaler.simulate.policy import Assumptions, Policy
from autoscaler.simulate.run import PolicyResult, Setup, simulate, tick_for
from autoscaler.simulate.trace import Trace

PARALLEL_MIN_TICKS = 1_000_000  # policy-ticks below which worker start-up (imports: ~2 s) is not worth it

_progress: Any = None  # the worker's queue to the parent's progress callback


def _init_worker(progress: Any) -> None:
    global _progress
    _progress = progress


def _run_one(trace: Trace, setup: Setup, policy: Policy, a: Assumptions, notices: Sequence[float]) -> PolicyResult:
    q = _progress
    return simulate(trace, setup, policy, a, (lambda n: q.put(n)) if q is not None else None, notices)


def default_jobs(policies: int) -> int:
    """One worker per policy, at most one per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(policies, cores))


def _cost_rank(policy: Policy) -> int:
    """Slowest first, so the longest run starts at once: the operator decides every tick, the
    KEDA/HPA model on its polls, a static policy almost never."""
    return 0 if policy.reaction == "operator" and not policy.static else 1 if not policy.static else 2


def run_policies(trace: Trace, setup: Setup, policies: Sequence[Policy], a: Assumptions,
                 progress: Callable[[int], None] | None = None, jobs: int | None = None,
                 notices: Sequence[float] = (), min_ticks: int = PARALLEL_MIN_TICKS) -> list[PolicyResult]:
    """`simulate` for each policy, in order; in `jobs` worker processes (default: `default_jobs`)
    when the run is long enough (`min_ticks` policy-ticks). `progress(n)` as for `simulate`."""
    jobs = default_jobs(len(policies)) if jobs is None else max(1, min(jobs, len(policies)))
    ticks = round(trace.span / tick_for(trace, a)) * len(policies)
    if jobs <= 1 or ticks < min_ticks:
        return [simulate(trace, setup, p, a, progress, notices) for p in policies]
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue() if progress is not None else None
    order = sorted(range(len(policies)), key=lambda i: _cost_rank(policies[i]))
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(q,)) as pool:
        futures: dict[int, Future[PolicyResult]] = {
            i: pool.submit(_run_one, trace, setup, policies[i], a, tuple(notices)) for i in order}
        pending: set[Future[PolicyResult]] = set(futures.values())
        while pending:
            _, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            _forward(q, progress)
    _forward(q, progress)  # the workers have exited: what they put is all in the queue now
    return [futures[i].result() for i in range(len(policies))]


def _forward(q: Any, progress: Callable[[int], None] | None) -> None:
    """Hand the workers' progress reports to the caller's callback (in this process)."""
    if q is None or progress is None:
        return
    while True:
        try:
            progress(q.get_nowait())
        except queue_mod.Empty:
            return
