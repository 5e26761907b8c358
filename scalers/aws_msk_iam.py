"""Kafka `sasl: oauthbearer` with `saslTokenProvider: aws_msk_iam`: MSK's IAM token, signed by botocore.

The token MSK accepts is a SigV4 *presigned* URL for `GET https://kafka.<region>.amazonaws.com/
?Action=kafka-cluster:Connect` (service `kafka-cluster`, valid 900 s), with a `User-Agent`
parameter appended, base64url-encoded without padding — what aws-msk-iam-sasl-signer (KEDA's
signer) produces. botocore's SigV4QueryAuth does the signing; the only thing added here is that
the signing time is passed in, so the signer is a pure function that AWS's published SigV4 test
vectors check (tests/compat/aws-sigv4).
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from scalers.aws_auth import AwsAuthorization, boto_session

SERVICE = "kafka-cluster"
EXPIRES_S = 900
USER_AGENT = "surge-aws-msk-iam-signer/1"


class PinnedQueryAuth(SigV4QueryAuth):
    """botocore's presigning, at a given instant instead of the clock's."""

    def __init__(self, credentials: ReadOnlyCredentials, service: str, region: str, expires: int,
                 now: datetime) -> None:
        super().__init__(credentials, service, region, expires=expires)
        self._now = now

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._now.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        self._inject_signature_to_request(request, self.signature(self.string_to_sign(request, canonical), request))


def presign(request: AWSRequest, credentials: ReadOnlyCredentials, service: str, region: str, expires: int,
            now: datetime) -> str:
    """The presigned URL of `request` (its headers are signed too)."""
    PinnedQueryAuth(credentials, service, region, expires, now).add_auth(request)
    return str(request.url)


def msk_token(credentials: ReadOnlyCredentials, region: str, now: datetime) -> tuple[str, float]:
    """(token, expiry as epoch seconds) for MSK IAM authentication in `region`."""
    request = AWSRequest(method="GET", url=f"https://kafka.{region}.amazonaws.com/",
                         params={"Action": "kafka-cluster:Connect"})
    url = presign(request, credentials, SERVICE, region, EXPIRES_S, now) + f"&User-Agent={USER_AGENT}"
    token = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return token, now.timestamp() + EXPIRES_S


class MskIamTokenProvider(AbstractTokenProvider):
    """aiokafka's OAUTHBEARER token source: a fresh MSK token shortly before the last one expires."""

    def __init__(self, auth: AwsAuthorization, region: str, timeout_s: float) -> None:
        self.auth, self.region, self.timeout_s = auth, region, timeout_s
        self._token = ""
        self._expires_at = 0.0

    def _credentials(self) -> Any:
        session = boto_session(self.auth, self.region, None, self.timeout_s)
        creds = session.get_credentials()
        if creds is None:
            raise RuntimeError("aws_msk_iam: no AWS credentials found (trigger authentication, pod identity, or "
                               "the operator's environment)")
        return creds.get_frozen_credentials()

    async def token(self) -> str:
        if self._token and time.time() < self._expires_at - 60:
            return self._token
        creds = await asyncio.to_thread(self._credentials)
        self._token, self._expires_at = msk_token(creds, self.region, datetime.now(UTC))
        return self._token
