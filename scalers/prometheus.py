"""`prometheus`: scale on the value of one PromQL instant query.

The query must produce exactly one sample: several series are an error, because adding or
averaging them silently would scale on a number nobody wrote down. An empty answer, NaN and
infinities read as 0 when `ignoreNullValues` is true (the default), as errors otherwise.
"""

from __future__ import annotations

import math
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import param, url_port_error
from scalers.errors import AuthError, FieldError, NotFoundError, QueryError, UnreachableError
from scalers.gcp_auth import SCOPE_MONITORING_READ, GcpAuthError, GcpTokenSource, gcp_authorization
from scalers.http import parse_json, read_body, snippet
from scalers.http_auth import close_http

AUTH_MODES = ("tls", "bearer", "basic", "custom")


@dataclass(frozen=True, kw_only=True)
class PrometheusConfig:
    server_address: str = param("serverAddress")
    query: str = param("query")
    threshold: float = param("threshold")
    activation_threshold: float = param("activationThreshold", default=0)
    namespace: str = param("namespace", optional=True)
    custom_headers: dict[str, str] = param("customHeaders", optional=True)
    query_parameters: dict[str, str] = param("queryParameters", optional=True)
    ignore_null_values: bool = param("ignoreNullValues", default=True)
    unsafe_ssl: bool = param("unsafeSsl", default=False)
    timeout_ms: int = param("timeout", optional=True)
    cortex_org_id: str = param("cortexOrgID", optional=True, deprecated="use customHeaders instead")
    auth_modes: list[str] = param("authModes", optional=True)
    # auth params
    bearer_token: str = param("bearerToken", ("authParams",), optional=True)
    username: str = param("username", ("authParams",), optional=True)
    password: str = param("password", ("authParams",), optional=True)
    ca: str = param("ca", ("authParams",), optional=True)
    cert: str = param("cert", ("authParams",), optional=True)
    key: str = param("key", ("authParams",), optional=True)
    key_password: str = param("keyPassword", ("authParams",), optional=True)
    custom_auth_header: str = param("customAuthHeader", ("authParams",), optional=True)
    custom_auth_value: str = param("customAuthValue", ("authParams",), optional=True)

    def validate(self) -> list[FieldError]:
        errors = []
        bad_port = url_port_error(self.server_address)
        if bad_port:
            errors.append(FieldError("serverAddress", bad_port))
        if self.timeout_ms < 0:
            errors.append(FieldError("timeout", f"got {self.timeout_ms}, expected milliseconds >= 0"))
        for mode in self.auth_modes:
            if mode not in AUTH_MODES:
                errors.append(FieldError("authModes", f"got {mode!r}, expected any of {list(AUTH_MODES)}"))
        modes = set(self.auth_modes)
        if "tls" in modes and not (self.cert and self.key):
            errors.append(FieldError("cert", "authModes tls needs cert and key in the authentication"))
        if "bearer" in modes and not self.bearer_token:
            errors.append(FieldError("bearerToken", "authModes bearer needs bearerToken in the authentication"))
        if "basic" in modes and not self.username:
            errors.append(FieldError("username", "authModes basic needs username in the authentication"))
        if "custom" in modes and not (self.custom_auth_header and self.custom_auth_value):
            errors.append(FieldError("customAuthHeader", "authModes custom needs customAuthHeader and customAuthValue"))
        return errors


def parse_prometheus_config(trigger: Trigger) -> PrometheusConfig:
    cfg = parse_trigger_config(PrometheusConfig, trigger)
    if trigger.pod_identity and trigger.pod_identity != "none" and cfg.auth_modes:
        from scalers.errors import ConfigError

        raise ConfigError(trigger.label, [FieldError("authModes", "cannot be combined with pod identity "
                                                                  f"{trigger.pod_identity!r}")])
    return cfg


def value_from_response(body: Any, ignore_null_values: bool) -> float:
    """The single sample of an instant-query answer (`data.result[0].value[1]`)."""
    if not isinstance(body, dict):
        raise ValueError("answer is not a JSON object")
    results = (body.get("data") or {}).get("result") or []
    if len(results) > 1:
        raise ValueError(f"query returned {len(results)} series, expected one (aggregate it, e.g. sum(...))")
    if not results:
        if ignore_null_values:
            return 0.0
        raise ValueError("query returned no series (set ignoreNullValues to read this as 0)")
    sample = results[0].get("value") or []
    if not sample:
        if ignore_null_values:
            return 0.0
        raise ValueError("query returned a series without a value")
    if len(sample) < 2:
        raise ValueError(f"malformed sample {sample!r}, expected [timestamp, value]")
    value = float(sample[1])
    if math.isnan(value) or math.isinf(value):
        if ignore_null_values:
            return 0.0
        raise ValueError(f"query returned {sample[1]}")
    return value


def request_headers(cfg: PrometheusConfig) -> dict[str, str]:
    headers = dict(cfg.custom_headers)
    if "bearer" in cfg.auth_modes:
        headers["Authorization"] = f"Bearer {cfg.bearer_token}"
    if "custom" in cfg.auth_modes:
        headers[cfg.custom_auth_header] = cfg.custom_auth_value
    return headers


class PrometheusScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_prometheus_config(trigger)
        # Google Managed Prometheus: a bearer token from Google credentials, when no authModes are set
        gcp = gcp_authorization(trigger) if not self.config.auth_modes else None
        self._gcp = GcpTokenSource(gcp, [SCOPE_MONITORING_READ], trigger.timeout_s) if gcp else None
        self._session: Any = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def metric_specs(self) -> list[MetricSpec]:
        return [MetricSpec(metric_name(self.trigger, "prometheus"), self.config.threshold, self.trigger.metric_type)]

    def _ssl(self) -> ssl.SSLContext | bool:
        cfg = self.config
        if not (cfg.unsafe_ssl or "tls" in cfg.auth_modes):
            return True
        ctx = ssl.create_default_context(cadata=cfg.ca or None)
        if "tls" in cfg.auth_modes:
            self._workdir = tempfile.TemporaryDirectory(prefix="surge-prom-")
            cert, key = Path(self._workdir.name, "cert.pem"), Path(self._workdir.name, "key.pem")
            cert.write_text(cfg.cert)
            key.write_text(cfg.key)
            ctx.load_cert_chain(str(cert), str(key), password=cfg.key_password or None)
        if cfg.unsafe_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> Any:
        if self._session is None:
            import aiohttp

            seconds = self.config.timeout_ms / 1000 if self.config.timeout_ms else self.trigger.timeout_s
            auth = (aiohttp.BasicAuth(self.config.username, self.config.password)
                    if "basic" in self.config.auth_modes else None)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=seconds),
                headers=request_headers(self.config),
                auth=auth,
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
            )
        return self._session

    async def query(self, now: datetime | None = None) -> float:
        import aiohttp

        cfg = self.config
        # Sub-second precision: a sample scraped within the current second must count.
        params = {"query": cfg.query, "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if cfg.namespace:
            params["namespace"] = cfg.namespace
        params.update(cfg.query_parameters)
        url = cfg.server_address.rstrip("/") + "/api/v1/query"
        label = self.trigger.label
        headers = {}
        if self._gcp is not None:
            try:
                headers["Authorization"] = f"Bearer {await self._gcp.token()}"
            except GcpAuthError as exc:
                raise AuthError(label, f"gcp: {exc}") from None
        try:
            async with self._connect().get(url, params=params, headers=headers) as resp:
                status = resp.status
                raw = await read_body(resp, label, "prometheus")
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise UnreachableError(label, f"prometheus at {cfg.server_address} unreachable: "
                                          f"{str(exc) or type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:  # e.g. a bad status line or a broken chunked body
            raise QueryError(label, f"prometheus at {cfg.server_address} sent a malformed HTTP reply: "
                                    f"{str(exc) or type(exc).__name__}") from exc
        if status in (401, 403):
            raise AuthError(label, f"prometheus answered {status}: {snippet(raw)}")
        if status == 404:
            raise NotFoundError(label, f"prometheus answered 404 for {url}")
        if not 200 <= status < 300:
            raise QueryError(label, f"prometheus answered {status}: {snippet(raw)}")
        body = parse_json(raw, label, "prometheus")
        try:
            return value_from_response(body, cfg.ignore_null_values)
        except (ValueError, TypeError, AttributeError) as exc:  # a reply of the wrong shape
            raise QueryError(label, f"query {cfg.query!r}: {exc}") from exc

    async def metrics(self) -> Reading:
        value = sanitize(await self.query())
        return Reading({self.metric_specs()[0].name: value}, active=value > self.config.activation_threshold)

    async def close(self) -> None:
        await close_http(self)
