"""The pure parts of cost reports: price split, allocation rules, chunking, what-if load inference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.cost.allocation import (
    DEFAULT_CPU_HOURLY,
    DEFAULT_GPU_HOURLY,
    DEFAULT_RAM_HOURLY,
    GIB,
    IDLE,
    Chunk,
    CostInputError,
    NodeInfo,
    PodInfo,
    PodUsage,
    Spec,
    allocate,
    split_price,
)
from autoscaler.cost.collect import chunk_from, parse_duration, plan_chunks
from autoscaler.cost.whatif import arrivals_from_backlog, estimated_wait, fill_gaps


def test_split_follows_opencost_default_ratios_and_adds_up() -> None:
    cpu, ram, gpu = split_price(1.0, 8, 32, 1)
    assert cpu / ram == pytest.approx(DEFAULT_CPU_HOURLY / DEFAULT_RAM_HOURLY)
    assert gpu / ram == pytest.approx(DEFAULT_GPU_HOURLY / DEFAULT_RAM_HOURLY)
    assert 8 * cpu + 32 * ram + gpu == pytest.approx(1.0)
    assert split_price(1.0, 0, 0, 0) == (0.0, 0.0, 0.0)


def price_of(itype: str, capacity: str | None, zone: str | None, at: float) -> tuple[float | None, float | None]:
    od = {"m5.large": 0.096, "m5.xlarge": 0.192}.get(itype)
    return (0.05 if capacity == "spot" and itype == "m5.xlarge" else None if capacity == "spot" else od), od


def spec_of(itype: str) -> Spec | None:
    return {"m5.large": Spec(2, 8 * GIB, 0), "m5.xlarge": Spec(4, 16 * GIB, 0)}.get(itype)


def test_max_of_request_and_usage_per_resource() -> None:
    nodes = {"n": NodeInfo("n", "m5.large", "on-demand", "us-east-1a", None, "p", 2, 8 * GIB, 0)}
    pods = {("a", "p1"): PodInfo("a", "p1", "n", "Deployment/x")}
    # CPU charged by usage (1.5 > 1), memory by request (2 GiB > 1 GiB)
    chunk = Chunk(0, 3600, {"n": 1.0}, [PodUsage("a", "p1", 1.0, 1.0, 1.5, 2 * GIB, 1 * GIB)])
    a = allocate("namespace", 0, 3600, nodes, pods, [chunk], spec_of, price_of)
    cpu, ram, _ = split_price(0.096, 2, 8, 0)
    assert a.groups["a"].cpu == pytest.approx(1.5 * cpu) and a.groups["a"].ram == pytest.approx(2 * ram)
    assert a.total == pytest.approx(0.096)
    assert a.idle == pytest.approx(0.096 - 1.5 * cpu - 2 * ram)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["n1", "n2", "ghost", ""]), st.floats(0, 2), st.floats(0, 3),
                          st.floats(0, 4), st.floats(0, 1), st.sampled_from(["a", "b", ""])), max_size=12),
       st.floats(0, 1), st.floats(0, 1))
def test_every_dollar_is_allocated_or_idle(pods: list[tuple[str, float, float, float, float, str]], h1: float,
                                           h2: float) -> None:
    """Whatever the inputs — unknown nodes, missing namespaces, usage above capacity — allocated +
    idle is the total, and the stacked series adds up in every chunk."""
    nodes = {"n1": NodeInfo("n1", "m5.xlarge", "spot", "us-east-1a", None, "p", None, None, None),
             "n2": NodeInfo("n2", "z9.mega", None, None, None, None, 2, 4 * GIB, 0)}
    usages = [PodUsage(ns, f"p{i}", h, c, u, m * GIB, 0.0, 0.0, node or None)
              for i, (node, h, c, u, m, ns) in enumerate(pods)]
    chunks = [Chunk(0, 3600, {"n1": h1, "n2": h2}, usages), Chunk(3600, 7200, {"n1": 1.0}, usages[::2])]
    a = allocate("workload", 0, 7200, nodes, {}, chunks, spec_of, price_of)
    assert a.allocated + a.idle == pytest.approx(a.total, abs=1e-9)
    for i in range(2):
        assert sum(v[i] for v in a.series.values()) == pytest.approx(a.series_total[i], abs=1e-9)
    assert sum(r["total"] for r in a.rows()) == pytest.approx(a.total, abs=1e-4)


def test_unknowns_are_reported_per_item() -> None:
    nodes = {"n2": NodeInfo("n2", "z9.mega", None, None, None, None, 2, 4 * GIB, 0)}
    chunk = Chunk(0, 3600, {"n2": 1.0}, [PodUsage("a", "p", 1.0, 1, 0, GIB, 0, 0, "elsewhere")])
    a = allocate("label:team", 0, 3600, nodes, {}, [chunk], spec_of, price_of)
    said: dict[str, list[str]] = {}
    for p in a.problems:
        said.setdefault(p.item, []).append(p.message)
    assert any("capacity type" in m for m in said["node n2"]) and any("no known price" in m for m in said["node n2"])
    assert any("no kube_pod_info" in m for m in said["pod a/p"])
    assert any("no metric describes" in m for m in said["pod a/p"])
    assert a.nodes["unknown"].cost.total == pytest.approx(DEFAULT_CPU_HOURLY + DEFAULT_RAM_HOURLY)
    assert set(a.groups) == {"unknown"} and IDLE in {r["name"] for r in a.rows()}
    assert a.nodes["n2"].cost.total == pytest.approx(2 * DEFAULT_CPU_HOURLY + 4 * DEFAULT_RAM_HOURLY)


def test_bad_grouping_and_durations_name_the_option() -> None:
    with pytest.raises(CostInputError, match="--by"):
        allocate("team", 0, 1, {}, {}, [], spec_of, price_of)
    assert parse_duration("1w2d3h", "--window") == 9 * 86400 + 3 * 3600
    for bad in ("7", "d", "7x", "-1d", "0h", "1d 2h"):
        with pytest.raises(CostInputError, match="--window"):
            parse_duration(bad, "--window")


def test_chunks_cover_the_window_in_whole_steps() -> None:
    chunks = plan_chunks(0, 30 * 86400, 300)
    assert chunks[0][0] == 0 and chunks[-1][1] == 30 * 86400
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(chunks))
    assert all((e - s) % 300 == 0 and e - s <= 6 * 3600 for s, e in chunks)
    assert len(plan_chunks(0, 7200, 300)) == 24


def test_arrivals_reproduce_the_recorded_backlog() -> None:
    """Feeding the inferred arrivals through the queue the readings describe gives the readings back."""
    rng = np.random.default_rng(3)
    step, rate = 60.0, 10.0
    replicas = rng.integers(1, 4, 200).astype(float)
    backlog = np.zeros(200)
    for i in range(1, 200):
        arrivals = rng.uniform(0, 3000)
        backlog[i] = backlog[i - 1] + arrivals - min(backlog[i - 1] + arrivals, replicas[i - 1] * rate * step)
    inferred = arrivals_from_backlog(backlog, replicas, rate, step)
    b = [backlog[0]]
    for i, a in enumerate(inferred):
        b.append(b[-1] + a - min(b[-1] + a, replicas[i] * rate * step))
    assert np.allclose(b, backlog)
    assert (inferred >= 0).all()


def test_wait_estimate_and_gap_filling() -> None:
    assert estimated_wait(np.array([0.0, 600.0, 600.0]), np.array([1.0, 1.0, 0.0]), 10.0).tolist() == [
        0.0, 60.0, float("inf")]
    filled, n = fill_gaps(np.array([np.nan, 1.0, np.nan, np.nan, 4.0]))
    assert filled.tolist() == [1.0, 1.0, 1.0, 1.0, 4.0] and n == 3


def test_max_of_request_and_usage_is_taken_per_container() -> None:
    """OpenCost's rule is per container: a sidecar using CPU it did not request is charged its usage
    on top of the main container's request, not hidden by the main container's idle request."""
    pod = {"namespace": "a", "pod": "p"}
    chunk = chunk_from(0, 3600, 300, [({"node": "n"}, 12)], [(pod, 12)], [
        ({**pod, "container": "main", "node": "n", "resource": "cpu"}, 1.0),
        ({**pod, "container": "main", "node": "n", "resource": "memory"}, 2 * GIB),
        ({**pod, "container": "side", "node": "n", "resource": "memory"}, 0.5 * GIB),
    ], [({**pod, "container": "main"}, 0.1 * 3600), ({**pod, "container": "side"}, 1.0 * 3600)],
        [({**pod, "container": "main"}, 1 * GIB), ({**pod, "container": "side"}, 1 * GIB)])
    (u,) = chunk.pods
    assert u.hours == 1.0 and u.node == "n"
    assert u.cpu_request == 1.0 and u.cpu_usage == pytest.approx(1.1)
    assert u.cpu_allocation == pytest.approx(2.0)  # 1 requested (main) + 1 used (side), not max(1, 1.1)
    assert u.memory_allocation == pytest.approx(3 * GIB)  # 2 GiB requested (main) + 1 GiB used (side)
    nodes = {"n": NodeInfo("n", "m5.large", "on-demand", "us-east-1a", None, "p", 2, 8 * GIB, 0)}
    a = allocate("namespace", 0, 3600, nodes, {}, [chunk], spec_of, price_of)
    cpu, ram, _ = split_price(0.096, 2, 8, 0)
    assert a.groups["a"].total == pytest.approx(2.0 * cpu + 3 * ram)
