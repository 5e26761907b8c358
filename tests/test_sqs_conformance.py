"""KEDA's aws_sqs_queue scaler tables, case by case.

`awsSQSGetMetricTestData` rows are answered by a real local HTTP server speaking SQS's JSON
protocol with the row's attributes (or an error), as KEDA's mockSqs answers them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from scalers.aws_auth import NO_ACCESS_KEY, NO_SECRET_KEY
from scalers.aws_sqs import SqsQueueScaler, sum_attributes
from scalers.base import Trigger
from scalers.errors import ConfigError, QueryError
from tests.fixtures.conformance import vector_cases
from tests.fixtures.http import http_server


def trigger(case: dict[str, Any], index: int = 0, **extra_meta: str) -> Trigger:
    pi = dict((case.get("inputs") or {}).get("podIdentity") or {})
    provider = pi.pop("provider", "none")
    return Trigger(type="aws-sqs-queue", metadata={**case["metadata"], **extra_meta},
                   auth_params=case.get("authParams") or {}, resolved_env=case.get("resolvedEnv") or {},
                   pod_identity="" if provider == "none" else provider, pod_identity_params=pi, index=index)


@pytest.fixture
async def sqs_api() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """GetQueueAttributes over HTTP (awsJson1_0), answering with `answer`."""
    answer: dict[str, Any] = {"attributes": {}, "error": None, "asked": []}

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.text() or "{}")
        answer["asked"].append(body.get("AttributeNames"))
        if answer["error"]:
            return web.Response(status=500, content_type="application/x-amz-json-1.0", text=json.dumps(
                {"__type": "com.amazonaws.sqs#InternalError", "message": answer["error"]}))
        return web.Response(content_type="application/x-amz-json-1.0",
                            text=json.dumps({"Attributes": answer["attributes"]}))

    async with http_server(handle, "POST") as url:
        yield url, answer


@pytest.mark.conformance("aws-sqs-queue.json")
@pytest.mark.parametrize("case", vector_cases("aws-sqs-queue.json"))
async def test_sqs_table(case: dict[str, Any], sqs_api: tuple[str, dict[str, Any]]) -> None:
    table = case["table"]
    if table == "TestProcessQueueLengthFromSqsQueueAttributesOutput":
        names, attributes = case["inputs"]["attributeNames"], case["inputs"]["attributes"]
        if case["expect_error"]:
            with pytest.raises(ValueError):
                sum_attributes(names, attributes)
        else:
            assert sum_attributes(names, attributes) == case["expected"]["result"]
        return
    if table == "awsSQSMetricIdentifiers":
        scaler = SqsQueueScaler(trigger(case, case["expected"]["triggerIndex"]))
        assert scaler.metric_specs()[0].name == case["name"]
        return
    if table == "awsSQSGetMetricTestData":
        url, answer = sqs_api
        answer["attributes"] = case["inputs"]["getQueueAttributes"].get("attributes", {})
        answer["error"] = case["inputs"]["getQueueAttributes"].get("error")
        scaler = SqsQueueScaler(trigger(case, case["index"], awsEndpoint=url))
        try:
            if case["expected"]["error"]:
                with pytest.raises(QueryError):
                    await scaler.metrics()
            else:
                reading = await scaler.metrics()
                assert list(reading.values.values()) == [float(case["expected"]["value"])]
        finally:
            await scaler.close()
        return
    if case["expect_error"]:
        with pytest.raises(ConfigError) as err:
            SqsQueueScaler(trigger(case))
        comment = case.get("comment", "")
        if "missing Access Key Id" in comment:  # upstream returns ErrAwsNoAccessKey here
            assert NO_ACCESS_KEY in str(err.value)
        elif "missing Secret Access Key" in comment:  # ErrAwsNoSecretAccessKey
            assert NO_SECRET_KEY in str(err.value)
    else:
        scaler = SqsQueueScaler(trigger(case))
        if table == "TestQueueURLFromEnvResolution":
            assert scaler.config.queue_url == case["expected"]["QueueURL"]
