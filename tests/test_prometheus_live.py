"""The prometheus trigger against a real Prometheus scraping a real exporter."""

from __future__ import annotations

import time

import pytest

from scalers.base import Trigger
from scalers.errors import QueryError, UnreachableError
from scalers.prometheus import PrometheusScaler
from tests.fixtures.prometheus import PrometheusStack
from tests.servers import free_port


async def read(url: str, query: str, **extra: str) -> tuple[float, bool]:
    scaler = PrometheusScaler(Trigger(type="prometheus", name="p", metadata={
        "serverAddress": url, "query": query, "threshold": "10"} | extra))
    try:
        reading = await scaler.metrics()
        return reading.values["s0-prometheus"], reading.active
    finally:
        await scaler.close()


async def test_gauge_and_rate(prometheus: PrometheusStack) -> None:
    prometheus.queue_depth.labels(queue="a").set(42)
    prometheus.queue_depth.labels(queue="b").set(8)
    prometheus.requests.inc(5)
    prometheus.wait_for('surge_test_queue_depth{queue="a"} == 42')
    assert await read(prometheus.url, 'surge_test_queue_depth{queue="a"}') == (42.0, True)
    assert await read(prometheus.url, "sum(surge_test_queue_depth)", activationThreshold="50") == (50.0, False)
    value, _ = await read(prometheus.url, "sum(rate(surge_test_requests_total[10s]))")
    assert value >= 0.0


async def test_several_series_is_a_query_error_naming_the_trigger(prometheus: PrometheusStack) -> None:
    prometheus.queue_depth.labels(queue="a").set(1)
    prometheus.queue_depth.labels(queue="b").set(1)
    prometheus.wait_for('count(surge_test_queue_depth) == 2')
    with pytest.raises(QueryError, match=r'prometheus "p".*2 series'):
        await read(prometheus.url, "surge_test_queue_depth")


async def test_missing_series_reads_zero_or_fails_per_ignore_null_values(prometheus: PrometheusStack) -> None:
    assert await read(prometheus.url, "no_such_metric") == (0.0, False)
    with pytest.raises(QueryError, match="no series"):
        await read(prometheus.url, "no_such_metric", ignoreNullValues="false")


async def test_unreachable_prometheus() -> None:
    start = time.monotonic()
    with pytest.raises(UnreachableError, match='prometheus "p"'):
        await read(f"http://127.0.0.1:{free_port()}", "up", timeout="500")
    assert time.monotonic() - start < 5
