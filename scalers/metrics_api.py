"""`metrics-api`: scale on one number read from an HTTP endpoint (JSON, YAML, XML or Prometheus text).

`valueLocation` says where the number is: a gjson-style path for JSON (`components.0.tasks`), the
same dotted path for YAML and XML, a metric selector (`name{label="v"}`) for Prometheus text. A
string value is read as a Kubernetes quantity ("64", "1k", "500m"), as KEDA does.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scalers import kube_source
from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import param
from scalers.cron import keda_normalize
from scalers.errors import AuthError, FieldError, QueryError, ScalerError, UnreachableError
from scalers.http import read_body
from scalers.http_auth import HttpAuth, close_http, parse_http_auth, parse_quantity

FORMATS = ("prometheus", "json", "xml", "yaml")


@dataclass(frozen=True, kw_only=True)
class MetricsApiConfig:
    target_value: float = param("targetValue", optional=True)
    activation_target_value: float = param("activationTargetValue", default=0)
    url: str = param("url")
    format: str = param("format", default="json", enum=FORMATS)
    value_location: str = param("valueLocation")
    unsafe_ssl: bool = param("unsafeSsl", default=False)
    aggregate_from_kube_service_endpoints: bool = param("aggregateFromKubeServiceEndpoints", default=False)
    aggregation_type: str = param("aggregationType", default="average", enum=("average", "sum", "max", "min"))
    timeout: str = param("timeout", optional=True)
    as_metric_source: bool = False

    @property
    def timeout_s(self) -> float | None:
        return duration_s(self.timeout) if self.timeout else None

    def validate(self) -> list[FieldError]:
        errors = []
        if self.target_value == 0 and not self.as_metric_source:
            errors.append(FieldError("targetValue", "no targetValue given in metadata (expected a non-zero number)"))
        if self.timeout:
            try:
                duration_s(self.timeout)
            except ValueError as exc:
                errors.append(FieldError("timeout", str(exc)))
        return errors


_GO_DURATION = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def duration_s(text: str) -> float:
    """KEDA's typed-config duration: a Go duration ("30s", "1m30s") or a number of milliseconds."""
    if _GO_DURATION.match(text):
        return sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(text))
    if re.fullmatch(r"[+-]?\d+", text):
        ms = int(text)
        if ms < 0:
            raise ValueError(f"duration cannot be negative: {ms} milliseconds")
        return ms / 1000
    raise ValueError(f"unable to parse duration value {text!r}: must be either a duration string (e.g. '30s', "
                     "'5m') or a number of milliseconds")


def _number(value: Any, location: str) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise ValueError(f"valueLocation {location!r} must point to a numeric value or a string parseable as a "
                         f"Quantity, got {type(value).__name__}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_quantity(str(value))
    except ValueError:
        raise ValueError(f"valueLocation {location!r} points to a string that is not parseable as a Quantity") from None


def _path(data: Any, location: str) -> Any:
    """Walk a dotted path (`a.0.b`; `\\.` escapes a dot) through maps and lists."""
    for part in (p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", location)):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part == "#":
            data = len(data)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise ValueError(f"valueLocation {location!r}: {part!r} not found")
    return data


def _yaml_number(value: Any, location: str) -> float:
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"valueLocation {location!r} must point to a number, got NaN")
    return _number(value, location)


_SELECTOR = re.compile(r'^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$')
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _labels(text: str, what: str) -> dict[str, str]:
    out, pos = {}, 0
    text = text.strip()
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None:
            raise ValueError(f"cannot parse labels {text!r} in {what}")
        out[match.group(1)] = match.group(2)
        pos = match.end()
    return out


def prometheus_value(body: str, location: str) -> float:
    """The first sample of the selected metric whose labels include the selector's."""
    selector = _SELECTOR.match(location)
    if selector is None:
        raise ValueError(f"valueLocation {location!r} is not a metric selector such as name{{label=\"v\"}}")
    name, wanted = selector.group(1), _labels(selector.group(2) or "", location)
    found_family = False
    for line in body.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sample = re.match(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if sample is None:
            raise ValueError(f"prometheus format parsing error: {line[:80]!r}")
        if sample.group(1) != name:
            continue
        found_family = True
        labels = _labels((sample.group(2) or "{}")[1:-1], line)
        if all(labels.get(k) == v for k, v in wanted.items()):
            return float(sample.group(3))
    if not found_family:
        raise ValueError(f"metric '{name}' not found")
    raise ValueError(f"value {location} not found")


def _safe_yaml(body: bytes) -> Any:
    """A server's YAML with the C safe loader, refusing aliases: a nine-level alias bomb is a few
    hundred bytes and expands to a billion nodes, and no metrics API needs aliases."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(body)
    try:
        while loader.check_event():
            if isinstance(loader.get_event(), yaml.AliasEvent):
                raise ValueError("YAML aliases are not accepted in a metrics API response")
    finally:
        loader.dispose()
    return yaml.load(body, Loader=loader_cls)


def value_from_response(body: bytes, location: str, fmt: str) -> float:
    """KEDA's GetValueFromResponse."""
    if fmt == "prometheus":
        return prometheus_value(body.decode(errors="replace"), location)
    if fmt == "json":
        return _number(_path(json.loads(body), location), location)
    if fmt == "yaml":
        return _yaml_number(_path(_safe_yaml(body), location), location)
    root = ET.fromstring(body)
    node: ET.Element | None = root
    for part in location.split("."):
        node = node.find(part) if node is not None else None
    if node is None:
        raise ValueError(f"valueLocation {location!r} not found in the XML document")
    return _number(node.text or "", location)


def endpoint_urls(service_url: str, slices: list[dict[str, Any]]) -> list[str]:
    """KEDA's getEndpointsUrlsFromServiceURL over already-read EndpointSlices: one URL per ready
    address (first seen), on the Service URL's port when a slice declares it."""
    parts = urlsplit(service_url)
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    seen: list[str] = []
    urls: list[str] = []
    for sl in slices:
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for address in ep.get("addresses") or []:
                if address in seen:
                    continue
                seen.append(address)
                found = next((f":{p['port']}" for p in sl.get("ports") or [] if str(p.get("port")) == port), "")
                urls.append(f"{parts.scheme}://{address}{found}{parts.path}")
    return urls


def service_of(url: str) -> tuple[str, str]:
    """(service, namespace) from `http://<service>.<namespace>...`; ValueError otherwise."""
    host = urlsplit(url).hostname or ""
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError(f"invalid hostname {host} : expected at least 2 elements, first being service name and "
                         "second being the namespace")
    return labels[0], labels[1]


def aggregate(values: list[float], failures: int, how: str) -> float:
    """KEDA's aggregateMetricsFromMultipleEndpoints over the endpoints that answered."""
    total = len(values) + failures
    if total == 0:
        raise ValueError("no endpoints provided")
    if not values:
        raise ValueError(f"could not get any metric successfully from the {total} provided endpoints")
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    if how == "average":
        return sum(values) / len(values)
    return sum(values)


class MetricsApiScaler:
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)
    max_parallel = 5  # KEDA reads at most 5 endpoints of a Service at once
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(MetricsApiConfig, trigger)
        self.auth: HttpAuth = parse_http_auth(trigger)
        self._session: Any = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, keda_normalize(f"metric-api-{self.config.value_location}"))
        return [MetricSpec(name, self.config.target_value, self.trigger.metric_type)]

    def _connect(self) -> Any:
        if self._session is None:
            import aiohttp

            if "tls" in self.auth.enabled:
                self._workdir = tempfile.TemporaryDirectory(prefix="surge-metrics-api-")
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s or self.trigger.timeout_s),
                headers=self.auth.headers(),
                connector=aiohttp.TCPConnector(ssl=self.auth.ssl_context(self.config.unsafe_ssl, self._workdir)))
        return self._session

    async def value(self) -> float:
        cfg = self.config
        if not cfg.aggregate_from_kube_service_endpoints:
            return await self._read(cfg.url)
        label = self.trigger.label
        try:
            service, namespace = service_of(cfg.url)
            slices = await kube_source.endpoint_slices(namespace, service, self.trigger.timeout_s)
        except ValueError as exc:
            raise QueryError(label, str(exc)) from None
        except Exception as exc:  # ApiException, transport errors
            raise UnreachableError(label, f"failed to get kubernetes endpoints urls from configured service URL: "
                                          f"{exc}") from None
        urls = endpoint_urls(cfg.url, slices)
        if not urls:
            raise QueryError(label, "no endpoints URLs were given for the service name")
        return await self.aggregate_urls(urls)

    async def aggregate_urls(self, urls: list[str]) -> float:
        """Read every endpoint (at most `max_parallel` at once) and aggregate what answered."""
        label, cfg = self.trigger.label, self.config
        limit = asyncio.Semaphore(self.max_parallel)

        async def one(url: str) -> float | None:
            async with limit:
                try:
                    return await self._read(url)
                except ScalerError:
                    return None

        outcomes = await asyncio.gather(*(one(u) for u in urls))
        values = [v for v in outcomes if v is not None]
        try:
            return aggregate(values, len(outcomes) - len(values), cfg.aggregation_type)
        except ValueError as exc:
            raise QueryError(label, str(exc)) from None

    async def _read(self, url: str) -> float:
        import aiohttp

        label, cfg = self.trigger.label, self.config
        try:
            async with self._connect().get(url, params=self.auth.query() or None) as resp:
                body = await read_body(resp, label, "metrics API")
                if resp.status in (401, 403):
                    raise AuthError(label, f"{url}: api returned {resp.status}")
                if resp.status != 200:
                    raise QueryError(label, f"{resp.url.path}: api returned {resp.status}")
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise UnreachableError(label, f"{url} unreachable: {exc or type(exc).__name__}") from exc
        try:
            return value_from_response(body, cfg.value_location, cfg.format)
        except (ValueError, ET.ParseError) as exc:
            raise QueryError(label, f"{cfg.format} answer from {url}: {exc}") from None

    async def metrics(self) -> Reading:
        value = sanitize(await self.value())
        return Reading({self.metric_specs()[0].name: value}, active=value > self.config.activation_target_value)

    async def close(self) -> None:
        await close_http(self)
