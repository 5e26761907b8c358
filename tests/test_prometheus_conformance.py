"""KEDA's prometheus scaler test tables, case by case. Query-result cases are answered by a real
local HTTP server with the table's status and body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from scalers.base import Trigger
from scalers.errors import ConfigError, QueryError
from scalers.prometheus import PrometheusScaler, parse_prometheus_config
from tests.fixtures.conformance import vector_cases
from tests.fixtures.http import http_server

BASE = {"serverAddress": "http://localhost:9090", "threshold": "100", "query": "up"}


@pytest.fixture
async def canned() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """An HTTP server answering every request with whatever `answer` currently holds."""
    answer: dict[str, Any] = {"status": 200, "body": "{}", "requests": []}

    async def handle(request: web.Request) -> web.Response:
        answer["requests"].append(request)
        return web.Response(status=answer["status"], text=answer["body"], content_type="application/json")

    async with http_server(handle) as url:
        yield url, answer


@pytest.mark.conformance("prometheus.json")
@pytest.mark.parametrize("case", vector_cases("prometheus.json"))
async def test_prometheus_table(case: dict[str, Any], canned: tuple[str, dict[str, Any]]) -> None:
    table = case["table"]
    if table == "testPromQueryResult":
        url, answer = canned
        inp = case["inputs"]
        answer.update(status=inp["responseStatus"], body=inp["bodyStr"])
        meta = BASE | {"serverAddress": url, "ignoreNullValues": str(inp["ignoreNullValues"]).lower(),
                       "unsafeSsl": str(inp["unsafeSsl"]).lower()}
        scaler = PrometheusScaler(Trigger(type="prometheus", metadata=meta))
        try:
            if case["expect_error"]:
                with pytest.raises(QueryError):
                    await scaler.query()
            else:
                assert await scaler.query() == case["expected"]["expectedValue"]
        finally:
            await scaler.close()
        return
    pod_identity = (case.get("inputs") or {}).get("podIdentityProvider", "")
    trigger = Trigger(type="prometheus", metadata=case["metadata"], auth_params=case.get("authParams") or {},
                      pod_identity=pod_identity, index=(case.get("expected") or {}).get("triggerIndex", 0))
    if table == "prometheusMetricIdentifiers":
        assert PrometheusScaler(trigger).metric_specs()[0].name == case["name"]
        return
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            parse_prometheus_config(trigger)
        return
    cfg = parse_prometheus_config(trigger)
    if table == "testPrometheusAuthMetadata":
        wanted = [m.strip() for m in case["metadata"].get("authModes", "").split(",") if m.strip()]
        assert cfg.auth_modes == wanted


async def test_query_carries_namespace_parameters_and_auth(canned: tuple[str, dict[str, Any]]) -> None:
    url, answer = canned
    answer["body"] = '{"data":{"result":[{"value":[1,"7"]}]}}'
    meta = BASE | {"serverAddress": url, "namespace": "team-a", "queryParameters": "dedup=true",
                   "customHeaders": "X-Scope-OrgID=tenant", "authModes": "bearer", "activationThreshold": "7"}
    scaler = PrometheusScaler(Trigger(type="prometheus", metadata=meta, auth_params={"bearerToken": "tok"}))
    try:
        reading = await scaler.metrics()
    finally:
        await scaler.close()
    assert reading.values == {"s0-prometheus": 7.0} and not reading.active  # 7 is not above 7
    request = answer["requests"][-1]
    assert request.path == "/api/v1/query"
    assert (request.query["query"], request.query["namespace"], request.query["dedup"]) == ("up", "team-a", "true")
    assert request.headers["Authorization"] == "Bearer tok" and request.headers["X-Scope-OrgID"] == "tenant"
