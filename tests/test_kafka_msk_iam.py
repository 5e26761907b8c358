"""The MSK IAM signer against AWS's published SigV4 test suite (query-signed requests), and the
token's shape."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from scalers.aws_msk_iam import MskIamTokenProvider, msk_token, presign
from scalers.base import Trigger
from scalers.errors import ConfigError, ScalerError
from scalers.kafka import KafkaConnection, KafkaScaler, client_settings

SUITE = Path(__file__).parent / "compat" / "aws-sigv4"
# Not presigned-URL cases: botocore moves a form-encoded POST body into the query string, and
# post-sts-header-after adds the session token after signing. Cases with "normalize": false
# (S3-style literal paths) are skipped too: botocore always normalises the path, which is what
# every non-S3 service, MSK included, expects; the MSK token's path is "/" either way.
NOT_PRESIGNABLE_BY_BOTOCORE = {"post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters",
                               "post-sts-header-after"}


def parse_request(text: str) -> tuple[str, str, list[tuple[str, str]], str]:
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" HTTP/", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line.startswith((" ", "\t")) and headers:  # a continuation line (multiline value)
            name, value = headers[-1]
            headers[-1] = (name, value + "\n" + line)
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, target, headers, body


CASES = sorted(p.name for p in SUITE.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", CASES)
def test_aws_sigv4_query_signed_vectors(name: str) -> None:
    if name in NOT_PRESIGNABLE_BY_BOTOCORE:
        pytest.skip("form-encoded POST bodies: not a presigned-URL case")
    ctx = json.loads((SUITE / name / "context.json").read_text())
    if not ctx.get("normalize", True):
        pytest.skip("S3-style unnormalised path")
    method, target, headers, body = parse_request((SUITE / name / "request.txt").read_text())
    _, expected_target, _, _ = parse_request((SUITE / name / "query-signed-request.txt").read_text())
    host = next(v for k, v in headers if k.lower() == "host")
    request = AWSRequest(method=method, url=f"https://{host}{target}", data=body or None)
    for k, v in headers:
        if k.lower() != "host":
            request.headers[k] = v
    creds = ReadOnlyCredentials(ctx["credentials"]["access_key_id"], ctx["credentials"]["secret_access_key"],
                                ctx["credentials"].get("token"))
    now = datetime.fromisoformat(ctx["timestamp"].replace("Z", "+00:00"))
    url = presign(request, creds, ctx["service"], ctx["region"], ctx["expiration_in_seconds"], now)
    got = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    want = parse_qs(urlsplit(expected_target).query)["X-Amz-Signature"][0]
    assert got == want


def test_msk_token_shape() -> None:
    creds = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session")
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    token, expires = msk_token(creds, "eu-west-1", now)
    assert "=" not in token and expires == now.timestamp() + 900
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "kafka.eu-west-1.amazonaws.com", "/")
    assert query["Action"] == ["kafka-cluster:Connect"] and query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Credential"] == ["AKIDEXAMPLE/20261202/eu-west-1/kafka-cluster/aws4_request"]
    assert query["X-Amz-Date"] == ["20261202T090000Z"] and query["X-Amz-Security-Token"] == ["session"]
    assert query["X-Amz-SignedHeaders"] == ["host"] and "User-Agent" in query
    assert parts.query.startswith("Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256")
    # deterministic for a given instant; a different instant signs differently
    assert msk_token(creds, "eu-west-1", now)[0] == token
    assert msk_token(creds, "eu-west-1", datetime(2026, 12, 2, 9, 1, tzinfo=UTC))[0] != token


def kafka_trigger(**meta: str) -> Trigger:
    return Trigger(type="kafka", name="k", metadata={"bootstrapServers": "127.0.0.1:1", "consumerGroup": "g",
                                                     "topic": "t", **meta},
                   auth_params={"sasl": "oauthbearer", "tls": "enable",
                                "saslTokenProvider": "aws_msk_iam", "awsAccessKeyId": "AKIDEXAMPLE",
                                "awsSecretAccessKey": "secret"})


async def test_kafka_trigger_uses_the_msk_signer() -> None:
    scaler = KafkaScaler(kafka_trigger(awsRegion="eu-west-1"))
    assert scaler.config.aws_auth is not None and scaler.config.aws_auth.access_key_id == "AKIDEXAMPLE"
    conn = KafkaConnection(client_settings(scaler.config), scaler.config, 1.0)
    provider = conn._kwargs()["sasl_oauth_token_provider"]
    assert isinstance(provider, MskIamTokenProvider)
    token = await provider.token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect")
    assert await provider.token() == token  # cached until shortly before expiry


def test_kafka_msk_iam_needs_credentials_as_keda_does() -> None:
    trig = Trigger(type="kafka", metadata={"bootstrapServers": "b:1", "consumerGroup": "g", "topic": "t",
                                           "awsRegion": "eu-west-1"},
                   auth_params={"sasl": "oauthbearer", "tls": "enable", "saslTokenProvider": "aws_msk_iam"})
    with pytest.raises(ConfigError, match="awsAccessKeyID not found"):
        KafkaScaler(trig)
    operator = dataclasses.replace(trig, metadata={**trig.metadata, "identityOwner": "operator"})
    assert KafkaScaler(operator).config.aws_auth is not None


async def test_gssapi_says_why_it_cannot_connect() -> None:
    trig = Trigger(type="kafka", name="krb", metadata={"bootstrapServers": "127.0.0.1:1", "consumerGroup": "g",
                                                       "topic": "t"},
                   auth_params={"sasl": "gssapi", "username": "u", "password": "p", "realm": "R",
                                "kerberosConfig": "[libdefaults]"})
    scaler = KafkaScaler(trig)
    with pytest.raises(ScalerError, match="'gssapi' Python package") as err:
        await scaler.metrics()
    assert 'kafka "krb"' in str(err.value)
    await scaler.close()
