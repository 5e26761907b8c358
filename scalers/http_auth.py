"""KEDA's shared HTTP authentication config (`authModes`: apiKey, basic, tls, bearer, custom) and
Kubernetes quantities, for triggers that read an HTTP API (metrics-api, rabbitmq management)."""

from __future__ import annotations

import base64
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalers.base import Trigger, parse_trigger_config
from scalers.config import Source, param
from scalers.errors import FieldError

AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
META_OR_AUTH: tuple[Source, ...] = ("triggerMetadata", "authParams")
AUTH: tuple[Source, ...] = ("authParams",)


@dataclass(frozen=True, kw_only=True)
class HttpAuth:
    modes: list[str] = param("authMode", META_OR_AUTH, optional=True, enum=AUTH_MODES,
                             exclusive_set=("bearer", "basic", "oauth"))
    modes_alias: list[str] = param("authModes", META_OR_AUTH, optional=True, enum=AUTH_MODES,
                                   exclusive_set=("bearer", "basic", "oauth"))
    username: str = param("username", AUTH, optional=True)
    password: str = param("password", AUTH, optional=True)
    cert: str = param("cert", AUTH, optional=True)
    key: str = param("key", AUTH, optional=True)
    ca: str = param("ca", AUTH, optional=True)
    api_key: str = param("apiKey", META_OR_AUTH, optional=True)
    method: str = param("method", META_OR_AUTH, default="header", enum=("header", "query"))
    key_param_name: str = param("keyParamName", META_OR_AUTH, optional=True)
    custom_auth_header: str = param("customAuthHeader", AUTH, optional=True)
    custom_auth_value: str = param("customAuthValue", AUTH, optional=True)
    bearer_token: str = param("bearerToken", AUTH, optional=True)
    token: str = param("token", AUTH, optional=True)

    @property
    def enabled(self) -> set[str]:
        return set(self.modes or self.modes_alias)

    @property
    def bearer(self) -> str:
        return self.bearer_token or self.token

    def validate(self) -> list[FieldError]:
        on = self.enabled
        if "bearer" in on and not self.bearer:
            return [FieldError("token", "bearer token is required when bearer auth is enabled")]
        if "basic" in on and not self.username:
            return [FieldError("username", "username is required when basic auth is enabled")]
        if "tls" in on and not (self.cert and self.key):
            return [FieldError("cert", "cert and key are required when tls auth is enabled")]
        if "custom" in on and not (self.custom_auth_header and self.custom_auth_value):
            return [FieldError("customAuthHeader", "customAuthHeader and customAuthValue are required when custom "
                                                   "auth is enabled")]
        if "apiKey" in on and not self.api_key:
            return [FieldError("apiKey", "apiKey is required when apiKey auth is enabled")]
        if "oauth" in on:
            return [FieldError("authModes", "oauth is not supported by surge for this trigger yet", unsupported=True)]
        return []

    def headers(self) -> dict[str, str]:
        on, out = self.enabled, {}
        if "apiKey" in on and self.method != "query":
            out[self.key_param_name or "X-API-KEY"] = self.api_key
        if "bearer" in on:
            out["Authorization"] = f"Bearer {self.bearer}"
        if "basic" in on:
            out["Authorization"] = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if "custom" in on:
            out[self.custom_auth_header] = self.custom_auth_value
        return out

    def query(self) -> dict[str, str]:
        if "apiKey" in self.enabled and self.method == "query":
            return {self.key_param_name or "api_key": self.api_key}
        return {}

    def ssl_context(self, unsafe: bool, workdir: tempfile.TemporaryDirectory[str] | None) -> ssl.SSLContext | bool:
        if not unsafe and "tls" not in self.enabled:
            return True
        ctx = ssl.create_default_context(cadata=self.ca or None)
        if "tls" in self.enabled and workdir is not None:
            cert, key = Path(workdir.name, "cert.pem"), Path(workdir.name, "key.pem")
            cert.write_text(self.cert)
            key.write_text(self.key)
            key.chmod(0o600)
            ctx.load_cert_chain(str(cert), str(key))
        if unsafe:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def parse_http_auth(trigger: Trigger) -> HttpAuth:
    """The trigger's HTTP authentication; ConfigError naming the bad key otherwise."""
    return parse_trigger_config(HttpAuth, trigger)


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "n": 1e-9, "u": 1e-6,
           "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(text: str) -> float:
    """Kubernetes' resource.ParseQuantity, as a float ("64", "1k", "500m", "1.5Gi", "1e3")."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    if exponent:
        return float(number + exponent)
    return float(number) * _SUFFIX.get(suffix or "", 1)


async def close_http(owner: Any) -> None:
    """Close an HTTP reader's `_session` (aiohttp) and remove its `_workdir` (TLS files)."""
    if owner._session is not None:
        session, owner._session = owner._session, None
        await session.close()
    if owner._workdir is not None:
        owner._workdir.cleanup()
        owner._workdir = None
