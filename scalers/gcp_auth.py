"""Google OAuth2 access tokens for triggers that read Google APIs (Managed Prometheus, ...).

Chosen as KEDA's GetGCPAuthorization chooses: `podIdentity.provider: gcp` → Google's default
credentials of the operator (GOOGLE_APPLICATION_CREDENTIALS, else the GKE metadata server);
otherwise service-account JSON from the `GoogleApplicationCredentials` auth parameter, from the
env var named by `credentialsFromEnv`, or from the file named by `credentialsFromEnvFile`.
Service-account JSON is exchanged with the JWT-bearer grant (RS256, signed with `cryptography`);
tokens are cached until a minute before they expire.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scalers.base import Trigger

SCOPE_MONITORING_READ = "https://www.googleapis.com/auth/monitoring.read"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class GcpAuthError(Exception):
    """No token could be obtained; the message says from where and why."""


@dataclass(frozen=True)
class GcpAuthorization:
    pod_identity: bool = False
    credentials_json: str = ""
    credentials_file: str = ""


def gcp_authorization(trigger: Trigger) -> GcpAuthorization | None:
    """KEDA's order; None when the trigger asks for no Google credentials."""
    meta, env = trigger.metadata, trigger.resolved_env
    if trigger.pod_identity == "gcp":
        return GcpAuthorization(pod_identity=True)
    if trigger.auth_params.get("GoogleApplicationCredentials"):
        return GcpAuthorization(credentials_json=trigger.auth_params["GoogleApplicationCredentials"])
    if meta.get("credentialsFromEnv"):
        return GcpAuthorization(credentials_json=env.get(meta["credentialsFromEnv"], ""))
    if meta.get("credentialsFromEnvFile"):
        return GcpAuthorization(credentials_file=env.get(meta["credentialsFromEnvFile"], ""))
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_assertion(info: Mapping[str, Any], scopes: list[str], now: float) -> str:
    """The RS256 JWT a service account presents to its token_uri."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    header = {"alg": "RS256", "typ": "JWT", "kid": info.get("private_key_id", "")}
    claims = {"iss": info["client_email"], "scope": " ".join(scopes), "aud": info["token_uri"],
              "iat": int(now), "exp": int(now) + 3600}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(str(info["private_key"]).encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GcpAuthError("service account private_key is not an RSA key")
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


class GcpTokenSource:
    """Access tokens for one trigger's Google credentials."""

    def __init__(self, auth: GcpAuthorization, scopes: list[str], timeout_s: float,
                 environ: Mapping[str, str] | None = None) -> None:
        self.auth, self.scopes, self.timeout_s = auth, scopes, timeout_s
        self.environ = os.environ if environ is None else environ
        self._token = ""
        self._expires_at = 0.0

    def _service_account(self) -> dict[str, Any] | None:
        text = self.auth.credentials_json
        path = self.auth.credentials_file or (self.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
                                              if self.auth.pod_identity else "")
        if not text and path:
            try:
                with open(path) as f:
                    text = f.read()
            except OSError as exc:
                raise GcpAuthError(f"cannot read Google credentials file {path!r}: {exc.strerror or exc}") from None
        if not text:
            if self.auth.pod_identity:
                return None  # the metadata server (GKE workload identity)
            raise GcpAuthError("the Google credentials are empty (GoogleApplicationCredentials / credentialsFromEnv)")
        try:
            info: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GcpAuthError(f"Google credentials are not JSON: {exc}") from None
        missing = [k for k in ("client_email", "private_key") if not info.get(k)]
        if info.get("type") != "service_account" or missing:
            raise GcpAuthError(f"Google credentials must be a service_account key (missing {missing or ['type']})")
        info.setdefault("token_uri", "https://oauth2.googleapis.com/token")
        return info

    async def token(self) -> str:
        if self._token and time.time() < self._expires_at - 60:
            return self._token
        import aiohttp

        info = self._service_account()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                if info is None:
                    host = self.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
                    url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                    request = session.get(url, params={"scopes": ",".join(self.scopes)},
                                          headers={"Metadata-Flavor": "Google"})
                else:
                    assertion = signed_assertion(info, self.scopes, time.time())
                    request = session.post(str(info["token_uri"]),
                                           data={"grant_type": JWT_BEARER, "assertion": assertion})
                async with request as resp:
                    body = await resp.json(content_type=None)
                    if resp.status != 200 or "access_token" not in body:
                        raise GcpAuthError(f"token endpoint answered {resp.status}: {str(body)[:200]}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            where = "the metadata server" if info is None else str(info["token_uri"])
            raise GcpAuthError(f"cannot get a Google token from {where}: {exc or type(exc).__name__}") from None
        self._token = str(body["access_token"])
        self._expires_at = time.time() + float(body.get("expires_in", 3600))
        return self._token
