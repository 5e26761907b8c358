"""OAUTHBEARER tokens for the kafka trigger: OAuth 2 client-credentials, cached until near expiry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiokafka.abc import AbstractTokenProvider

from scalers.http import parse_json, read_body

if TYPE_CHECKING:
    from scalers.kafka import TokenProvider


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    """username/password act as client id/secret, as KEDA's OAuthBearer provider does."""

    def __init__(self, spec: TokenProvider, timeout_s: float) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self._token = ""
        self._expires_at = 0.0

    async def token(self) -> str:
        if self._token and time.monotonic() < self._expires_at - 30:
            return self._token
        import aiohttp

        data = {"grant_type": "client_credentials"}
        if self.spec.scopes:
            data["scope"] = " ".join(self.spec.scopes)
        auth = aiohttp.BasicAuth(self.spec.client_id, self.spec.client_secret)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            self.spec.endpoint, data=data, auth=auth
        ) as resp:
            resp.raise_for_status()
            body = parse_json(await read_body(resp, "kafka oauth", "token endpoint"), "kafka oauth", "token endpoint")
        self._token = str(body["access_token"])
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))
        return self._token

    def extensions(self) -> dict[str, str]:
        return dict(self.spec.extensions)
