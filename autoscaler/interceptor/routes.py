"""HTTPScaledObjects and InterceptorRoutes as the interceptor and the operator use them: one
`Route` per object, with the KEDA HTTP add-on's defaults and its translation of the v1alpha1 kind
(an HTTPScaledObject is one rule; conditionWait or the failover's timeoutSeconds is the
readiness timeout). Pure: dicts in, dataclasses out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from autoscaler.interceptor.counts import DEFAULT_GRANULARITY_S, DEFAULT_WINDOW_S
from autoscaler.interceptor.routing import HeaderMatch, RouteRef, Rule
from autoscaler.manifests.http import HTTPScaledObject, InterceptorRoute, RouteRule, StaticResponse
from autoscaler.manifests.keda import duration_seconds

_M = TypeVar("_M", HTTPScaledObject, InterceptorRoute)
FALLBACK_READINESS_S = 30.0  # a route with a fallback waits at most this long when nothing else is set


@dataclass(frozen=True)
class ServicePort:
    service: str
    port: int | None = None
    port_name: str | None = None


@dataclass(frozen=True)
class Metric:
    """What the route scales on; both set → the larger replica count of the two."""

    concurrency: int | None = None
    rate: int | None = None
    window_s: float = DEFAULT_WINDOW_S
    granularity_s: float = DEFAULT_GRANULARITY_S
    # an HTTPScaledObject on requestRate reports the rate rounded up to a whole number
    ceil_rate: bool = False


@dataclass(frozen=True)
class Static:
    """A fixed answer: a cold-start placeholder or a static route's response."""

    status: int | None
    body: str
    headers: tuple[tuple[str, str], ...] = ()
    from_config_map: bool = False  # bodyFromConfigMap: not served yet (answered without a body)


@dataclass(frozen=True)
class StaticRoute:
    rules: tuple[Rule, ...]
    response: Static
    always: bool  # responseMode Always; else only while the target has no ready endpoint


@dataclass(frozen=True)
class Route:
    kind: str  # "HTTPScaledObject" or "InterceptorRoute"
    ref: RouteRef
    rules: tuple[Rule, ...]
    target: ServicePort
    metric: Metric
    fallback: ServicePort | None = None
    readiness_s: float | None = None  # None: the interceptor's global setting
    request_s: float | None = None
    response_header_s: float | None = None
    placeholder: Static | None = None  # answered at once (default 503) while no endpoint is ready
    static_routes: tuple[StaticRoute, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.ref.namespace}/{self.ref.name}"


class RouteError(ValueError):
    """An object that cannot be a route; the message names the field."""


def _ref(raw: dict[str, Any]) -> RouteRef:
    meta = raw.get("metadata") or {}
    return RouteRef(meta.get("namespace") or "default", meta.get("name", ""), str(meta.get("creationTimestamp") or ""))


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    return f"{where}: {e['msg']}" if where else e["msg"]


def _validate(model: type[_M], raw: dict[str, Any]) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RouteError(_first_error(exc)) from None


def from_http_scaled_object(raw: dict[str, Any]) -> Route:
    spec = _validate(HTTPScaledObject, raw).spec
    rule = Rule(tuple(spec.hosts), tuple(spec.path_prefixes), tuple(HeaderMatch(h.name, h.value) for h in spec.headers))
    ref = spec.scale_target_ref
    readiness = response_header = None
    if spec.timeouts is not None:
        if spec.timeouts.condition_wait and duration_seconds(spec.timeouts.condition_wait) > 0:
            readiness = duration_seconds(spec.timeouts.condition_wait)
        if spec.timeouts.response_header and duration_seconds(spec.timeouts.response_header) > 0:
            response_header = duration_seconds(spec.timeouts.response_header)
    fallback = None
    if spec.cold_start_timeout_failover_ref is not None:
        f = spec.cold_start_timeout_failover_ref
        fallback = ServicePort(f.service, f.port, f.port_name)
        readiness = float(f.timeout_seconds)
    sm = spec.scaling_metric
    if sm is not None and sm.request_rate is not None:
        rr = sm.request_rate
        metric = Metric(rate=rr.target_value, window_s=duration_seconds(rr.window),
                        granularity_s=duration_seconds(rr.granularity), ceil_rate=True)
    else:
        metric = Metric(concurrency=spec.metric.concurrency.target_value if spec.metric.concurrency else 100)
    return Route("HTTPScaledObject", _ref(raw), (rule,), ServicePort(ref.service, ref.port, ref.port_name), metric,
                 fallback, readiness, None, response_header)


def from_interceptor_route(raw: dict[str, Any]) -> Route:
    spec = _validate(InterceptorRoute, raw).spec
    rules = tuple(_rule(r) for r in spec.rules)
    t = spec.timeouts
    readiness = duration_seconds(t.readiness) if t and t.readiness else None
    request = duration_seconds(t.request) if t and t.request else None
    response_header = duration_seconds(t.response_header) if t and t.response_header else None
    fallback = None
    if spec.cold_start and spec.cold_start.fallback and spec.cold_start.fallback.service:
        f = spec.cold_start.fallback.service
        fallback = ServicePort(f.name, f.port, f.port_name)
    sm = spec.scaling_metric
    rr = sm.request_rate
    metric = Metric(concurrency=sm.concurrency.target_value if sm.concurrency else None,
                    rate=rr.target_value if rr else None,
                    window_s=duration_seconds(rr.window) if rr else DEFAULT_WINDOW_S,
                    granularity_s=duration_seconds(rr.granularity) if rr else DEFAULT_GRANULARITY_S)
    target = ServicePort(spec.target.service, spec.target.port, spec.target.port_name)
    placeholder = None
    if spec.cold_start and spec.cold_start.placeholder and spec.cold_start.placeholder.response:
        placeholder = _static(spec.cold_start.placeholder.response)
    statics = tuple(StaticRoute(tuple(_rule(r) for r in sr.rules), _static(sr.response),
                                sr.response_mode == "Always") for sr in spec.static_routes)
    return Route("InterceptorRoute", _ref(raw), rules or (Rule(),), target, metric, fallback, readiness, request,
                 response_header, placeholder, statics)


def _rule(r: RouteRule) -> Rule:
    return Rule(tuple(r.hosts), tuple(p.value for p in r.paths), tuple(HeaderMatch(h.name, h.value) for h in r.headers))


def _static(resp: StaticResponse) -> Static:
    return Static(resp.status_code, resp.body or "", tuple(resp.headers.items()), resp.body_from_config_map is not None)


def build_routes(interceptor_routes: Iterable[dict[str, Any]], http_scaled_objects: Iterable[dict[str, Any]]
                 ) -> tuple[list[Route], dict[str, str]]:
    """Routes from both kinds (an InterceptorRoute wins over an HTTPScaledObject of the same
    namespace/name, as in the add-on) and the error of each object that is not a valid route."""
    routes: dict[str, Route] = {}
    errors: dict[str, str] = {}
    for raw, parse in [(r, from_interceptor_route) for r in interceptor_routes] + \
                      [(r, from_http_scaled_object) for r in http_scaled_objects]:
        ref = _ref(raw)
        key = f"{ref.namespace}/{ref.name}"
        if key in routes:
            continue
        try:
            routes[key] = parse(raw)
        except RouteError as exc:
            errors[f"{raw.get('kind', '?')} {key}"] = str(exc)
    return list(routes.values()), errors


def effective_readiness(route: Route, default_s: float) -> float:
    """Seconds to hold a request for a ready endpoint; 0 waits as long as the request may."""
    readiness = route.readiness_s if route.readiness_s is not None else default_s
    if route.fallback is not None and readiness == 0:
        return FALLBACK_READINESS_S
    return readiness
