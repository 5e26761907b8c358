"""Scaler reads through a fault-injecting proxy in front of real servers (Prometheus, redis, the
tansu Kafka broker): every fault is a `ScalerError` naming the trigger — never another exception,
never a hang past the read deadline, never a reply held whole in memory — and reads recover
when the fault ends."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import AsyncIterator

import pytest

from scalers.base import Reading, Trigger, read_once
from scalers.batch import poll_cycle
from scalers.errors import QueryError, ScalerError, UnexpectedError, UnreachableError
from scalers.kafka import KafkaScaler
from scalers.prometheus import PrometheusScaler
from scalers.redis_lists import RedisListScaler
from tests.chaos.proxy import FaultProxy
from tests.fixtures.kafka import tansu_binary
from tests.fixtures.prometheus import PrometheusStack
from tests.servers import Server, free_port, run_server

QUERY = "vector(7)"


@pytest.fixture
async def prom_proxy(prometheus: PrometheusStack) -> AsyncIterator[FaultProxy]:
    port = int(prometheus.url.rsplit(":", 1)[1].rstrip("/"))
    proxy = await FaultProxy(port).start()
    yield proxy
    await proxy.stop()


def prom(port: int, timeout_ms: int = 1500) -> PrometheusScaler:
    return PrometheusScaler(Trigger(type="prometheus", name="p", timeout_s=1.0, metadata={
        "serverAddress": f"http://127.0.0.1:{port}", "query": QUERY, "threshold": "5", "timeout": str(timeout_ms)}))


@pytest.mark.parametrize(("mode", "params", "error"), [
    ("notutf8", {}, QueryError),
    ("badstatus", {}, QueryError),
    ("deepjson", {"depth": 100_000}, QueryError),
    ("garbage", {}, QueryError),
    ("http500", {}, QueryError),
    ("hang", {}, UnreachableError),
    ("reset", {}, UnreachableError),
    ("huge", {"size": 200 * 1024 * 1024}, QueryError),
    ("huge", {"size": 200 * 1024 * 1024, "chunked": True}, QueryError),
])
async def test_prometheus_faults_are_scaler_errors(prom_proxy: FaultProxy, mode: str, params: dict[str, object],
                                                   error: type[ScalerError]) -> None:
    scaler = prom(prom_proxy.port)
    try:
        assert (await scaler.metrics()).values["s0-prometheus"] == 7  # through the proxy, untouched
        prom_proxy.set(mode, **params)
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        with pytest.raises(error) as caught:
            await scaler.metrics()
        assert 'prometheus "p"' in str(caught.value)
        assert time.monotonic() - started < 10
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert grown_mb < 64, f"{mode}: peak RSS grew {grown_mb:.0f} MB"
        prom_proxy.set("pass")
        assert (await scaler.metrics()).values["s0-prometheus"] == 7  # recovered
    finally:
        await scaler.close()


class Exploding:
    """A scaler whose read raises what no scaler foresaw (a bug, a library's own exception)."""

    def __init__(self, exc: BaseException | None = None, hang: bool = False) -> None:
        self.trigger = Trigger(type="redis", name="x", metadata={}, timeout_s=0.2)
        self.exc, self.hang = exc, hang

    def metric_specs(self) -> list:  # type: ignore[type-arg]
        from scalers.base import MetricSpec
        return [MetricSpec("s0-x", 1.0)]

    async def metrics(self) -> Reading:
        if self.hang:
            await asyncio.sleep(3600)
        assert self.exc is not None
        raise self.exc

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("exc", [KeyError("value"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
                                 RecursionError("deep"), ZeroDivisionError()])
async def test_any_exception_from_a_read_is_that_triggers_scaler_error(exc: BaseException) -> None:
    outcome = await read_once(Exploding(exc))  # type: ignore[arg-type]
    assert isinstance(outcome, UnexpectedError) and 'redis "x"' in str(outcome)
    [cycle] = await poll_cycle([Exploding(exc)])  # type: ignore[list-item]
    assert isinstance(cycle, ScalerError)


async def test_a_read_that_never_returns_fails_at_its_deadline() -> None:
    started = time.monotonic()
    outcome = await read_once(Exploding(hang=True))  # type: ignore[arg-type]
    assert isinstance(outcome, UnreachableError) and time.monotonic() - started < 5


async def test_redis_batched_reads_fail_per_trigger_and_recover(redis_plain: Server) -> None:
    proxy = await FaultProxy(redis_plain.port).start()
    scalers = [RedisListScaler(Trigger(type="redis", name=f"q{i}", index=0, timeout_s=0.5, metadata={
        "address": f"127.0.0.1:{proxy.port}", "listName": f"chaos-q{i}", "listLength": "5"})) for i in range(3)]
    try:
        assert all(isinstance(o, Reading) for o in await poll_cycle(scalers))
        for mode in ("hang", "garbage", "reset"):
            proxy.set(mode)
            started = time.monotonic()
            outcomes = await poll_cycle(scalers)
            assert all(isinstance(o, ScalerError) for o in outcomes), (mode, outcomes)
            assert time.monotonic() - started < 6
            proxy.set("pass")
            for _ in range(3):  # a client may need one failed read to drop a poisoned connection
                outcomes = await poll_cycle(scalers)
                if all(isinstance(o, Reading) for o in outcomes):
                    break
            assert all(isinstance(o, Reading) for o in outcomes), (mode, outcomes)
    finally:
        for s in scalers:
            await s.close()
        await proxy.stop()


async def test_kafka_reads_fail_per_trigger_and_recover() -> None:
    # a broker of its own that advertises the proxy: every connection the client opens goes through it
    broker_port = free_port()
    proxy = await FaultProxy(broker_port).start()
    argv = [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{proxy.port}", "--storage-engine", "memory://tansu/"]
    with run_server(argv, broker_port):
        await _kafka_faults(proxy)


async def _kafka_faults(proxy: FaultProxy) -> None:
    scaler = KafkaScaler(Trigger(type="kafka", name="k", timeout_s=1.0, metadata={
        "bootstrapServers": f"127.0.0.1:{proxy.port}", "consumerGroup": "chaos", "topic": "chaos-topic",
        "lagThreshold": "5"}))
    try:
        first = await read_once(scaler)
        for mode in ("hang", "garbage", "reset"):
            proxy.set(mode)
            started = time.monotonic()
            [outcome] = await poll_cycle([scaler])
            assert isinstance(outcome, ScalerError), (mode, outcome)
            assert time.monotonic() - started < 12
            proxy.set("pass")
        assert type(await read_once(scaler)) is type(first)  # same outcome as before the faults
    finally:
        await scaler.close()
        await proxy.stop()


def test_input_size_limits_are_errors_naming_the_field() -> None:
    """One object's metadata must not take the operator's memory: `0-2000000000` is refused at once."""
    from scalers.errors import ConfigError
    from scalers.registry import build_scaler

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        build_scaler(Trigger(type="kafka", name="k", metadata={
            "bootstrapServers": "127.0.0.1:9092", "consumerGroup": "g", "topic": "t",
            "partitionLimitation": "0-2000000000"}))
    assert "partitionLimitation" in str(caught.value) and "at most 100000" in str(caught.value)
    assert time.monotonic() - started < 1
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024 < 32
    with pytest.raises(ConfigError, match="partitionLimitation"):
        build_scaler(Trigger(type="kafka", name="k", metadata={
            "bootstrapServers": "127.0.0.1:9092", "consumerGroup": "g", "topic": "t",
            "partitionLimitation": ",".join(["0-60000", "0-60000"])}))
    ok = build_scaler(Trigger(type="kafka", name="k", metadata={
        "bootstrapServers": "127.0.0.1:9092", "consumerGroup": "g", "topic": "t", "partitionLimitation": "0-3,7"}))
    assert ok.config.partition_limitation == [0, 1, 2, 3, 7]  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["huge", "notutf8", "deepjson", "badstatus"])
async def test_other_http_scalers_refuse_what_prometheus_refuses(mode: str) -> None:
    """metrics-api reads through the same bounded reader: a 200 MB answer stops at the cap."""
    from scalers.metrics_api import MetricsApiScaler

    proxy = await FaultProxy(free_port()).start()  # canned answers: no server behind it
    proxy.set(mode, size=200 * 1024 * 1024)
    scaler = MetricsApiScaler(Trigger(type="metrics-api", name="m", timeout_s=2.0, metadata={
        "url": f"http://127.0.0.1:{proxy.port}/v", "valueLocation": "v", "targetValue": "5"}))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        outcome = await read_once(scaler)
        assert isinstance(outcome, ScalerError) and 'metrics-api "m"' in str(outcome)
        assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024 < 64
    finally:
        await scaler.close()
        await proxy.stop()
