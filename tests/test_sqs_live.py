"""The aws-sqs-queue trigger against moto_server."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from scalers.aws_sqs import SqsQueueScaler, queue_name
from scalers.base import Trigger
from scalers.errors import ConfigError, NotFoundError, UnreachableError
from tests.servers import Server, free_port

AUTH = {"awsAccessKeyID": "testing", "awsSecretAccessKey": "testing"}


def sqs(server: Server):  # type: ignore[no-untyped-def]
    return boto3.client("sqs", endpoint_url=f"http://{server.address}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def scaler(server: Server, url: str, **meta: str) -> SqsQueueScaler:
    return SqsQueueScaler(Trigger(type="aws-sqs-queue", name="q", auth_params=AUTH, metadata={
        "queueURL": url, "awsRegion": "us-east-1", "awsEndpoint": f"http://{server.address}"} | meta))


async def test_visible_in_flight_and_delayed(moto_server: Server) -> None:
    client = sqs(moto_server)
    url = client.create_queue(QueueName=f"jobs-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    for i in range(6):
        client.send_message(QueueUrl=url, MessageBody=str(i))
    client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    client.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=60)  # 2 in flight

    async def value(**meta: str) -> float:
        s = scaler(moto_server, url, **meta)
        try:
            return next(iter((await s.metrics()).values.values()))
        finally:
            await s.close()

    assert await value() == 6.0  # 4 visible + 2 in flight
    assert await value(scaleOnInFlight="false") == 4.0
    assert await value(scaleOnDelayed="true") == 7.0
    s = scaler(moto_server, url, activationQueueLength="6")
    assert not (await s.metrics()).active
    await s.close()


async def test_missing_queue_is_not_found(moto_server: Server) -> None:
    s = scaler(moto_server, f"http://{moto_server.address}/123456789012/nope")
    with pytest.raises(NotFoundError, match='aws-sqs-queue "q"'):
        await s.metrics()
    await s.close()


async def test_unreachable_endpoint() -> None:
    port = free_port()
    s = SqsQueueScaler(Trigger(type="aws-sqs-queue", name="q", auth_params=AUTH, timeout_s=0.5, metadata={
        "queueURL": f"http://127.0.0.1:{port}/1/x", "awsRegion": "us-east-1", "awsEndpoint": f"http://127.0.0.1:{port}"}))
    start = time.monotonic()
    with pytest.raises(UnreachableError):
        await s.metrics()
    assert time.monotonic() - start < 10
    await s.close()


def test_config_rules() -> None:
    assert queue_name("https://sqs.eu-west-1.amazonaws.com/123/orders") == "orders"
    with pytest.raises(ConfigError, match="queueURL"):
        SqsQueueScaler(Trigger(type="aws-sqs-queue", auth_params=AUTH, metadata={
            "queueURL": "https://sqs.eu-west-1.amazonaws.com/orders", "awsRegion": "eu-west-1"}))
    with pytest.raises(ConfigError, match="awsAccessKeyID not found"):
        SqsQueueScaler(Trigger(type="aws-sqs-queue", metadata={"queueURL": "orders", "awsRegion": "eu-west-1"}))
    ok = SqsQueueScaler(Trigger(type="aws-sqs-queue", pod_identity="aws", metadata={
        "queueURL": "https://sqs.eu-west-1.amazonaws.com/1/orders", "awsRegion": "eu-west-1", "queueLength": "3"}))
    assert ok.metric_specs()[0].name == "s0-aws-sqs-orders" and ok.metric_specs()[0].target == 3
    with pytest.raises(ConfigError, match="awsRegion: is required"):
        SqsQueueScaler(Trigger(type="aws-sqs-queue", pod_identity="aws", metadata={"queueURL": "orders"}))


async def test_identity_owner_operator_reads_with_the_operators_credentials(moto_server: Server) -> None:
    """identityOwner: operator takes no keys from the trigger: the operator's own (env) credentials."""
    client = sqs(moto_server)
    url = client.create_queue(QueueName=f"op-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody="x")
    s = SqsQueueScaler(Trigger(type="aws-sqs-queue", metadata={
        "queueURL": url, "awsRegion": "us-east-1", "awsEndpoint": f"http://{moto_server.address}",
        "identityOwner": "operator"}))
    try:
        assert s.auth.access_key_id == "" and not s.auth.pod_identity_owner
        assert next(iter((await s.metrics()).values.values())) == 1.0
    finally:
        await s.close()


def test_older_key_spelling_is_accepted() -> None:
    s = SqsQueueScaler(Trigger(type="aws-sqs-queue", auth_params={"awsAccessKeyId": "a", "awsSecretAccessKey": "b"},
                               metadata={"queueURL": "orders", "awsRegion": "eu-west-1"}))
    assert (s.auth.access_key_id, s.auth.secret_access_key) == ("a", "b")
