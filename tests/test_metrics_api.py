"""metrics-api against a real aiohttp server, and KEDA's metrics_api scaler tables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from scalers.base import Trigger
from scalers.errors import AuthError, ConfigError, QueryError
from scalers.metrics_api import MetricsApiScaler, endpoint_urls, value_from_response
from tests.fixtures.conformance import vector_cases
from tests.fixtures.http import http_server


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    answer: dict[str, Any] = {"status": 200, "body": "{}", "requests": [], "paths": {}}

    async def handle(request: web.Request) -> web.Response:
        answer["requests"].append(request)
        status, body = answer["paths"].get(request.path, (answer["status"], answer["body"]))
        return web.Response(status=status, text=body)

    async with http_server(handle) as url:
        yield url, answer


def scaler(meta: dict[str, str], auth: dict[str, str] | None = None, index: int = 0) -> MetricsApiScaler:
    return MetricsApiScaler(Trigger(type="metrics-api", name="m", metadata=meta, auth_params=auth or {}, index=index))


@pytest.mark.conformance("metrics-api.json")
@pytest.mark.parametrize("case", vector_cases("metrics-api.json"))
async def test_metrics_api_table(case: dict[str, Any], api: tuple[str, dict[str, Any]]) -> None:
    table, url, answer = case["table"], *api
    if table.startswith("TestAggregate"):
        for ep in case["inputs"]["endpoints"]:
            answer["paths"][ep["path"]] = (ep["status"], ep["body"])
        s = scaler(case["metadata"] | {"url": url + "/api/v1/"})
        urls = [url + ep["path"] for ep in case["inputs"]["endpoints"]]
        try:
            if case["expect_error"]:
                with pytest.raises(QueryError, match=case["expected"]["error"]):
                    await s.aggregate_urls(urls)
            else:
                assert await s.aggregate_urls(urls) == case["expected"]["value"]
        finally:
            await s.close()
        return
    if table == "TestGetEndpointsUrlsFromServiceURL_SelectorFiltersCorrectly":
        assert endpoint_urls(case["inputs"]["serviceURL"], [
            sl for sl in case["inputs"]["slices"]
            if sl["metadata"]["labels"]["kubernetes.io/service-name"] == "my-service"]) == case["expected"]["urls"]
        return
    if table == "TestGetValueFromResponse":
        i = case["inputs"]
        if case["expect_error"]:
            with pytest.raises(ValueError):
                value_from_response(i["body"].encode(), i["valueLocation"], i["format"])
        else:
            assert value_from_response(i["body"].encode(), i["valueLocation"], i["format"]) == case["expected"]["value"]
        return
    if table == "metricsAPIMetricIdentifiers":
        s = scaler(case["metadata"], index=case["expected"]["triggerIndex"])
        assert s.metric_specs()[0].name == case["name"]
        return
    if table in ("TestBearerAuth", "TestGetMetricValueErrorMessage"):
        path = case["inputs"].get("path", "/")
        answer["body"], answer["status"] = case["inputs"].get("body", ""), case["inputs"].get("status", 200)
        s = scaler({**case["metadata"], "url": url + path}, case.get("authParams"))
        try:
            if case["expect_error"]:
                with pytest.raises(QueryError) as err:
                    await s.metrics()
                assert err.value.cause == case["expected"]["error"]
            else:
                assert list((await s.metrics()).values.values()) == [case["expected"]["value"]]
                for k, v in case["inputs"]["expect_header"].items():
                    assert answer["requests"][-1].headers[k] == v
        finally:
            await s.close()
        return
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            scaler(case["metadata"], case.get("authParams"))
    else:
        scaler(case["metadata"], case.get("authParams"))


async def test_reads_formats_and_auth_from_a_live_server(api: tuple[str, dict[str, Any]]) -> None:
    url, answer = api
    answer["body"] = "queue:\n  depth: 1.5k\n"
    s = scaler({"url": url + "/m", "valueLocation": "queue.depth", "format": "yaml", "targetValue": "100",
                "activationTargetValue": "2000", "authMode": "apiKey", "method": "query"}, {"apiKey": "k1"})
    try:
        reading = await s.metrics()
        assert reading.values == {"s0-metric-api-queue-depth": 1500.0} and not reading.active
        assert answer["requests"][-1].query["api_key"] == "k1"
        answer["status"] = 401
        with pytest.raises(AuthError):
            await s.metrics()
    finally:
        await s.close()
    answer["status"], answer["body"] = 200, "<stats><queue><depth>7</depth></queue></stats>"
    x = scaler({"url": url, "valueLocation": "queue.depth", "format": "xml", "targetValue": "1", "authMode": "basic"},
               {"username": "u", "password": "p"})
    try:
        assert list((await x.metrics()).values.values()) == [7.0]
        assert answer["requests"][-1].headers["Authorization"].startswith("Basic ")
    finally:
        await x.close()


async def test_aggregate_from_kube_service_endpoints(api: tuple[str, dict[str, Any]], k8s_api: Any) -> None:
    """The Service's EndpointSlices come from the API emulator, its pods' endpoints from a real server."""
    from kubernetes_asyncio import client

    from scalers import kube_source

    url, answer = api
    port = url.rsplit(":", 1)[1]
    case = next(c for c in vector_cases("metrics-api.json")
                if c.values[0]["table"] == "TestGetEndpointsUrlsFromServiceURL_SelectorFiltersCorrectly").values[0]
    for sl in case["inputs"]["slices"]:  # upstream's two slices, pointed at the local server
        sl = json.loads(json.dumps(sl).replace("10.0.0.1", "127.0.0.1").replace("8080", port))
        k8s_api.emulator.put("discovery.k8s.io/v1", "endpointslices", sl)
    answer["paths"]["/metrics"] = (200, '{"count": 7}')
    async with client.ApiClient(k8s_api.configuration) as api_client:
        kube_source.use(api_client)
        s = scaler({"url": f"http://my-service.my-namespace.svc:{port}/metrics", "valueLocation": "count",
                    "targetValue": "1", "aggregateFromKubeServiceEndpoints": "true", "aggregationType": "sum"})
        try:
            assert (await s.metrics()).values == {"s0-metric-api-count": 7.0}
        finally:
            await s.close()
            kube_source.use(None)
