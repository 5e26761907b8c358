"""nats-jetstream: KEDA's table (mock /jsz answers served by a real HTTP server) and the trigger
against a real nats-server with JetStream."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from aiohttp import web

from scalers.base import Trigger
from scalers.batch import poll_cycle
from scalers.errors import ConfigError, NotFoundError, ScalerError
from scalers.nats_jetstream import SESSIONS, JetStreamConfig, NatsJetStreamScaler
from tests.fixtures.conformance import vector_cases
from tests.fixtures.http import http_server
from tests.fixtures.nats import Nats

FILE = "nats-jetstream.json"


@pytest.fixture
async def jsz() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    answer: dict[str, Any] = {"body": "{}"}

    async def handle(request: web.Request) -> web.Response:
        answer["query"] = dict(request.query)
        return web.Response(text=answer["body"], content_type="application/json")

    async with http_server(handle) as url:
        yield url.removeprefix("http://"), answer


def trig(case: dict[str, Any], index: int = 0, **meta: str) -> Trigger:
    return Trigger(type="nats-jetstream", metadata={**case["metadata"], **meta},
                   auth_params=case.get("authParams") or {}, index=index, timeout_s=2)


@pytest.mark.conformance(FILE)
@pytest.mark.parametrize("case", vector_cases(FILE))
async def test_nats_jetstream_table(case: dict[str, Any], jsz: tuple[str, dict[str, Any]]) -> None:
    table, expected, inputs = case["table"], case.get("expected") or {}, case.get("inputs") or {}
    if table == "TestGetNATSJetStreamEndpoint":
        cfg = JetStreamConfig(stream="s", consumer="c", endpoint=inputs["endpoint"], account=inputs["id"],
                              account_id="", lag_threshold=10, activation_lag_threshold=0,
                              use_https=inputs["useHttps"])
        assert cfg.monitoring_url.startswith(expected["prefix"])
        return
    if table == "testNATSJetStreamMockResponses":
        endpoint, answer = jsz
        answer["body"] = json.dumps(inputs["response"])
        unresolvable = case["metadata"]["natsServerMonitoringEndpoint"].startswith("asdf")
        s = NatsJetStreamScaler(trig(case, **({} if unresolvable else {"natsServerMonitoringEndpoint": endpoint})))
        try:
            if case["expect_error"]:
                with pytest.raises(ScalerError):
                    await s.metrics()
            else:
                assert (await s.metrics()).active is expected["isActive"]
                assert answer["query"] == {"acc": "$G", "config": "true", "consumers": "true"}
        finally:
            await s.close()
        return
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            NatsJetStreamScaler(trig(case))
        return
    s = NatsJetStreamScaler(trig(case, expected.get("triggerIndex", 0)))
    if table == "natsJetStreamMetricIdentifiers":
        assert s.metric_specs()[0].name == case["name"]


async def test_pull_consumer_backlog(nats_server: Nats) -> None:
    stream = f"orders{uuid.uuid4().hex[:6]}"
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream}.*"])
    sub = await js.pull_subscribe(f"{stream}.*", durable="workers", stream=stream)
    for i in range(12):
        await js.publish(f"{stream}.new", str(i).encode())
    msgs = await sub.fetch(2, timeout=5)  # 2 delivered, not yet acked: still counted
    meta = {"natsServerMonitoringEndpoint": nats_server.monitoring_endpoint, "account": "$G", "stream": stream,
            "consumer": "workers", "lagThreshold": "5", "activationLagThreshold": "11"}
    a = NatsJetStreamScaler(Trigger(type="nats-jetstream", name="a", metadata=meta))
    b = NatsJetStreamScaler(Trigger(type="nats-jetstream", name="b", index=1,
                                    metadata={**meta, "activationLagThreshold": "0"}))
    try:
        ra, rb = await poll_cycle([a, b])
        assert not isinstance(ra, Exception) and ra.values == {f"s0-nats-jetstream-{stream}": 12.0} and ra.active
        assert not isinstance(rb, Exception) and rb.values == {f"s1-nats-jetstream-{stream}": 12.0}
        assert a._session is b._session
        for m in msgs:
            await m.ack()
        await nc.flush()
        assert (await a.metrics()).values == {f"s0-nats-jetstream-{stream}": 10.0}
        missing = NatsJetStreamScaler(Trigger(type="nats-jetstream", metadata={**meta, "consumer": "nobody"}))
        with pytest.raises(NotFoundError, match="consumer 'nobody' not found"):
            await missing.metrics()
        await missing.close()
    finally:
        await a.close()
        await b.close()
        await nc.close()
    assert len(SESSIONS) == 0
