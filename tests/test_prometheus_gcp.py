"""prometheus with Google credentials (Managed Prometheus): a token is fetched and sent.

A local aiohttp server plays Google's token endpoint (checking the JWT's RS256 signature with the
service account's public key), the GKE metadata server, and the Prometheus query API (which
answers only with the right bearer token).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from scalers.base import Trigger
from scalers.errors import AuthError
from scalers.prometheus import PrometheusScaler
from tests.fixtures.http import http_server

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture
async def google() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    seen: dict[str, Any] = {"queries": []}

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/token":
            form = await request.post()
            header, claims, sig = str(form["assertion"]).split(".")
            KEY.public_key().verify(unb64(sig), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
            seen["claims"] = json.loads(unb64(claims))
            seen["grant"] = form["grant_type"]
            return web.json_response({"access_token": "sa-token", "expires_in": 3600})
        if request.path.endswith("/service-accounts/default/token"):
            seen["flavor"] = request.headers.get("Metadata-Flavor")
            return web.json_response({"access_token": "wi-token", "expires_in": 3600})
        seen["queries"].append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") not in ("Bearer sa-token", "Bearer wi-token"):
            return web.Response(status=401, text="no token")
        return web.json_response({"status": "success", "data": {"resultType": "vector",
                                                                "result": [{"value": [0, "7"]}]}})

    async with http_server(handle) as url:
        yield url, seen


def credentials(url: str) -> str:
    return json.dumps({"type": "service_account", "client_email": "keda@p.iam.gserviceaccount.com",
                       "private_key_id": "k1", "private_key": PEM, "token_uri": f"{url}/token"})


def scaler(url: str, **kw: Any) -> PrometheusScaler:
    return PrometheusScaler(Trigger(type="prometheus", name="gmp", metadata={
        "serverAddress": url, "query": "sum(up)", "threshold": "5", **kw.pop("metadata", {})}, **kw))


async def test_service_account_json_from_auth_params(google: tuple[str, dict[str, Any]]) -> None:
    url, seen = google
    s = scaler(url, auth_params={"GoogleApplicationCredentials": credentials(url)})
    try:
        assert (await s.metrics()).values == {"s0-prometheus": 7.0}
        await s.metrics()
    finally:
        await s.close()
    assert seen["queries"] == ["Bearer sa-token", "Bearer sa-token"]  # the token is reused
    assert seen["grant"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert seen["claims"]["scope"] == "https://www.googleapis.com/auth/monitoring.read"
    assert seen["claims"]["iss"] == "keda@p.iam.gserviceaccount.com"


async def test_credentials_from_env_and_env_file(google: tuple[str, dict[str, Any]], tmp_path: Any) -> None:
    url, seen = google
    from_env = scaler(url, metadata={"credentialsFromEnv": "GCP_CREDS"},
                      resolved_env={"GCP_CREDS": credentials(url)})
    path = tmp_path / "sa.json"
    path.write_text(credentials(url))
    from_file = scaler(url, metadata={"credentialsFromEnvFile": "GCP_FILE"}, resolved_env={"GCP_FILE": str(path)})
    for s in (from_env, from_file):
        try:
            assert (await s.metrics()).values == {"s0-prometheus": 7.0}
        finally:
            await s.close()
    assert seen["queries"] == ["Bearer sa-token", "Bearer sa-token"]


async def test_pod_identity_gcp_uses_the_metadata_server(google: tuple[str, dict[str, Any]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = google
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GCE_METADATA_HOST", url.removeprefix("http://"))
    s = scaler(url, pod_identity="gcp")
    try:
        assert (await s.metrics()).values == {"s0-prometheus": 7.0}
    finally:
        await s.close()
    assert seen["flavor"] == "Google" and seen["queries"] == ["Bearer wi-token"]


async def test_bad_credentials_are_a_clear_auth_error(google: tuple[str, dict[str, Any]]) -> None:
    url, _ = google
    s = scaler(url, auth_params={"GoogleApplicationCredentials": '{"type": "authorized_user"}'})
    try:
        with pytest.raises(AuthError, match="service_account"):
            await s.metrics()
    finally:
        await s.close()
