"""rabbitmq: KEDA's rabbitmq scaler tables (HTTP rows answered by a real local server), and the
trigger against a real broker over AMQP and the management API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aiohttp import web

from scalers.base import Trigger
from scalers.batch import poll_cycle
from scalers.errors import AuthError, ConfigError, NotFoundError, ScalerError
from scalers.rabbitmq import CONNECTIONS, RabbitMQScaler, anonymize, compose, vhost_and_path
from tests.fixtures.conformance import vector_cases
from tests.fixtures.http import http_server
from tests.fixtures.rabbitmq import Broker

FILE = "rabbitmq.json"


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    answer: dict[str, Any] = {"status": 200, "body": "{}", "paths": []}

    async def handle(request: web.Request) -> web.Response:
        answer["paths"].append(request.raw_path)
        return web.Response(status=answer["status"], text=answer["body"])

    async with http_server(handle) as url:
        yield url, answer


def trigger(case: dict[str, Any], env: dict[str, str] | None = None, index: int = 0) -> Trigger:
    pi = dict((case.get("inputs") or {}).get("podIdentity") or {})
    return Trigger(type="rabbitmq", metadata=case["metadata"], auth_params=case.get("authParams") or {},
                   resolved_env=env if env is not None else case.get("resolvedEnv") or {}, index=index,
                   pod_identity=pi.pop("provider", ""), pod_identity_params=pi)


@pytest.mark.conformance(FILE)
@pytest.mark.parametrize("case", vector_cases(FILE))
async def test_rabbitmq_table(case: dict[str, Any], api: tuple[str, dict[str, Any]]) -> None:
    table, expected, inputs = case["table"], case.get("expected") or {}, case.get("inputs") or {}
    if table == "getVhostAndPathFromURLTestData":
        assert vhost_and_path(inputs["rawPath"], inputs["overrideVhost"]) == (
            expected["resolvedVhostPath"], expected["resolvedPath"])
        return
    if table in ("TestGetSum", "TestGetAverage", "TestGetMaximum", "TestGetComposedQueue"):
        if case["expect_error"]:
            with pytest.raises(ValueError):
                compose(inputs["queues"], inputs["operation"])
            return
        got = compose(inputs["queues"], inputs["operation"])
        assert (got.messages, got.messages_ready) == (expected["messages"], expected["ready"])
        assert got.publish_rate == pytest.approx(expected["publishRate"], abs=0.001)
        assert got.deliver_get_rate == pytest.approx(expected["deliverRate"], abs=0.001)
        return
    if table == "anonymizeRabbitMQErrorTestData":
        assert "error inspecting RabbitMQ: " + anonymize(inputs["error"]) == expected["message"]
        return
    if "response" in inputs:
        url, answer = api
        answer["status"], answer["body"] = inputs["status"], inputs["response"]
        s = RabbitMQScaler(trigger(case, {"myHostSecret": url, "plainHost": url}))
        try:
            if case["expect_error"]:
                with pytest.raises(ScalerError) as err:
                    await s.metrics()
                if inputs["status"] != 200:
                    assert inputs["response"] in str(err.value)
            else:
                reading = await s.metrics()
                if "isActive" in expected:
                    assert reading.active is expected["isActive"]
                if "value" in expected:
                    assert list(reading.values.values()) == [expected["value"]]
            if "expectedRequest" in inputs:
                assert answer["paths"][-1] == inputs["expectedRequest"]
            if table == "testQueueInfoTestDataSingleVhost":
                vhost, _ = vhost_and_path("", case["metadata"].get("vhostName", ""))
                assert answer["paths"][-1] == f"/api/queues{vhost}/evaluate_trials"
        finally:
            await s.close()
        return
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            RabbitMQScaler(trigger(case))
        return
    s = RabbitMQScaler(trigger(case, index=expected.get("triggerIndex", 0)))
    if table == "rabbitMQMetricIdentifiers":
        assert s.metric_specs()[0].name == case["name"]
    if table == "testDefaultQueueLength":
        assert s.value == expected["value"] and s.mode == "QueueLength"
    if table == "testRabbitMQAuthParamData":
        assert s.config.tls == expected["enableTLS"]
        if s.config.tls == "enable":
            for key in ("ca", "cert", "key"):
                assert getattr(s.config, key) == case["authParams"].get(key, "")
            assert s.config.key_password == case["authParams"].get("keyPassword", "")
        uses_wi = s.trigger.pod_identity == "azure-workload" and bool(s.config.workload_identity_resource)
        assert uses_wi is expected["workloadIdentity"]
    if "unsafeSsl" in case["metadata"]:
        assert s.config.unsafe_ssl is (case["metadata"]["unsafeSsl"] == "true")


async def publish(broker: Broker, queue: str, n: int, vhost: str = "/") -> None:
    url = broker.amqp_url if vhost == "/" else broker.amqp_url.rstrip("/") + "/" + vhost
    conn = await aio_pika.connect(url)
    async with conn:
        channel = await conn.channel()
        await channel.declare_queue(queue, durable=False)
        for i in range(n):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)


async def test_amqp_and_management_api(rabbitmq_server: Broker) -> None:
    b = rabbitmq_server
    queue = f"jobs-{uuid.uuid4().hex[:6]}"
    await publish(b, queue, 7)
    amqp = [RabbitMQScaler(Trigger(type="rabbitmq", name=f"a{i}", index=i, resolved_env={"RMQ": b.amqp_url},
                                   metadata={"queueName": queue, "hostFromEnv": "RMQ", "mode": "QueueLength",
                                             "value": "5"})) for i in range(2)]
    http = RabbitMQScaler(Trigger(type="rabbitmq", name="h", auth_params={"username": "guest", "password": "guest"},
                                  metadata={"queueName": queue, "host": b.http_url + "/", "mode": "QueueLength",
                                            "value": "5", "activationValue": "10"}))
    rate = RabbitMQScaler(Trigger(type="rabbitmq", name="r", metadata={
        "queueName": queue, "host": f"http://guest:guest@127.0.0.1:{b.http_port}", "protocol": "http",
        "mode": "MessageRate", "value": "100"}))
    try:
        # the management API's counters lag the broker by up to a few seconds
        for _ in range(100):
            outcomes = await poll_cycle([*amqp, http, rate])
            if all(not isinstance(o, Exception) and next(iter(o.values.values())) == 7.0 for o in outcomes[:3]):
                break
            await asyncio.sleep(0.2)
        r0, r1, rh, rr = outcomes
        assert not isinstance(r0, Exception) and r0.values == {"s0-rabbitmq-" + queue: 7.0} and r0.active
        assert not isinstance(r1, Exception) and r1.values == {"s1-rabbitmq-" + queue: 7.0}
        assert not isinstance(rh, Exception) and rh.values == {"s0-rabbitmq-" + queue: 7.0} and not rh.active
        assert not isinstance(rr, Exception) and rr.active  # 7 messages waiting > activation 0
        assert amqp[0]._conn is amqp[1]._conn  # one AMQP connection for both triggers on this broker
        assert http._conn is rate._conn  # one HTTP session for the management API
        missing = RabbitMQScaler(Trigger(type="rabbitmq", resolved_env={"RMQ": b.amqp_url},
                                         metadata={"queueName": "nope-" + queue, "hostFromEnv": "RMQ"}))
        with pytest.raises(NotFoundError):
            await missing.metrics()
        assert not isinstance((await amqp[0].metrics()), Exception)  # the shared connection survives
        await missing.close()
        wrong = RabbitMQScaler(Trigger(type="rabbitmq", auth_params={"username": "guest", "password": "nope"},
                                       metadata={"queueName": queue, "host": b.http_url}))
        with pytest.raises(AuthError):
            await wrong.metrics()
        await wrong.close()
        bad_amqp = RabbitMQScaler(Trigger(type="rabbitmq", metadata={
            "queueName": queue, "host": f"amqp://guest:wrong@127.0.0.1:{b.amqp_port}/"}))
        with pytest.raises(AuthError) as err:
            await bad_amqp.metrics()
        assert "wrong" not in str(err.value)  # credentials are masked in messages
        await bad_amqp.close()
    finally:
        for s in (*amqp, http, rate):
            await s.close()
    assert len(CONNECTIONS) == 0
    assert json.dumps({"ok": True})
