"""The KEDA HTTP add-on's kinds: HTTPScaledObject (http.keda.sh/v1alpha1) and its successor
InterceptorRoute (http.keda.sh/v1beta1), with the add-on's defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from autoscaler.manifests.common import INT32_MAX, Model, ObjectMeta
from autoscaler.manifests.keda import duration_seconds


class Header(Model):
    name: str
    value: str | None = None


class _OnePort(Model):
    """A Service port given by number or by name, exactly one of them."""

    port: int | None = Field(default=None, gt=0, le=65535)
    port_name: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_port(self) -> _OnePort:
        if (self.port is None) == (self.port_name is None):
            raise ValueError("exactly one of 'port' or 'portName' must be set")
        return self


class HTTPScaleTargetRef(_OnePort):
    name: str
    kind: str = "Deployment"
    api_version: str = "apps/v1"
    service: str


class ColdStartTimeoutFailoverRef(_OnePort):
    service: str
    timeout_seconds: int = Field(default=30, gt=0, le=INT32_MAX)


class ReplicaStruct(Model):
    min: int = Field(default=0, ge=0, le=INT32_MAX)
    max: int = Field(default=100, ge=0, le=INT32_MAX)


class Concurrency(Model):
    target_value: int = Field(default=100, gt=0, le=INT32_MAX)


class RequestRate(Model):
    granularity: str = "1s"
    target_value: int = Field(default=100, gt=0, le=INT32_MAX)
    window: str = "1m"

    @model_validator(mode="after")
    def _durations(self) -> RequestRate:
        duration_seconds(self.granularity)
        duration_seconds(self.window)
        return self


class ScalingMetric(Model):
    concurrency: Concurrency | None = None
    request_rate: RequestRate | None = None

    @model_validator(mode="after")
    def _one_metric(self) -> ScalingMetric:
        if self.concurrency is not None and self.request_rate is not None:
            raise ValueError("scalingMetric: give concurrency or requestRate, not both")
        return self


class HTTPTimeouts(Model):
    condition_wait: str | None = None
    response_header: str | None = None

    @model_validator(mode="after")
    def _durations(self) -> HTTPTimeouts:
        for value in (self.condition_wait, self.response_header):
            if value is not None:
                duration_seconds(value)
        return self


class HTTPScaledObjectSpec(Model):
    hosts: list[str] = Field(default_factory=list)
    path_prefixes: list[str] = Field(default_factory=list)
    headers: list[Header] = Field(default_factory=list)
    scale_target_ref: HTTPScaleTargetRef
    cold_start_timeout_failover_ref: ColdStartTimeoutFailoverRef | None = None
    replicas: ReplicaStruct = Field(default_factory=ReplicaStruct)
    target_pending_requests: int | None = Field(default=None, gt=0, le=INT32_MAX)
    scaledown_period: int = Field(default=300, ge=0, le=INT32_MAX)
    initial_cooldown_period: int = Field(default=0, ge=0, le=INT32_MAX)
    scaling_metric: ScalingMetric | None = None
    timeouts: HTTPTimeouts | None = None

    @model_validator(mode="after")
    def _rules(self) -> HTTPScaledObjectSpec:
        if self.replicas.min > self.replicas.max:
            raise ValueError(f"replicas.min={self.replicas.min} must not exceed replicas.max={self.replicas.max}")
        return self

    @property
    def metric(self) -> ScalingMetric:
        """The scaling metric with the add-on's default (concurrency 100, or targetPendingRequests)."""
        if self.scaling_metric is not None and (self.scaling_metric.concurrency or self.scaling_metric.request_rate):
            return self.scaling_metric
        return ScalingMetric(concurrency=Concurrency(target_value=self.target_pending_requests or 100))


class HTTPScaledObject(Model):
    api_version: Literal["http.keda.sh/v1alpha1"]
    kind: Literal["HTTPScaledObject"]
    metadata: ObjectMeta
    spec: HTTPScaledObjectSpec
    status: dict[str, Any] | None = None


class RouteTarget(_OnePort):
    service: str = Field(min_length=1)


class FallbackService(_OnePort):
    name: str = Field(min_length=1)


class ColdStartFallback(Model):
    service: FallbackService | None = None


class ConfigMapKeyRef(Model):
    name: str = Field(min_length=1)
    key: str | None = None


class StaticResponse(Model):
    status_code: int | None = Field(default=None, ge=100, le=599)
    body: str | None = Field(default=None, max_length=32768)
    body_from_config_map: ConfigMapKeyRef | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_body(self) -> StaticResponse:
        if self.body is not None and self.body_from_config_map is not None:
            raise ValueError("at most one of 'body' or 'bodyFromConfigMap' may be set")
        return self


class ColdStartPlaceholder(Model):
    response: StaticResponse | None = None


class ColdStart(Model):
    fallback: ColdStartFallback | None = None
    placeholder: ColdStartPlaceholder | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ColdStart:
        if self.fallback is None and self.placeholder is None:
            raise ValueError("at least one of 'fallback' or 'placeholder' must be set")
        return self


class PathMatch(Model):
    value: str = Field(min_length=1)


class RouteHeader(Model):
    name: str = Field(min_length=1)
    value: str | None = None


class RouteRule(Model):
    hosts: list[str] = Field(default_factory=list)
    paths: list[PathMatch] = Field(default_factory=list)
    headers: list[RouteHeader] = Field(default_factory=list)


class RouteTimeouts(Model):
    readiness: str | None = None
    request: str | None = None
    response_header: str | None = None

    @model_validator(mode="after")
    def _durations(self) -> RouteTimeouts:
        for value in (self.readiness, self.request, self.response_header):
            if value is not None:
                duration_seconds(value)
        return self


class RouteConcurrency(Model):
    target_value: int = Field(ge=1, le=INT32_MAX)


class RouteRequestRate(Model):
    granularity: str = "1s"
    target_value: int = Field(ge=1, le=INT32_MAX)
    window: str = "1m"

    @model_validator(mode="after")
    def _durations(self) -> RouteRequestRate:
        duration_seconds(self.granularity)
        duration_seconds(self.window)
        return self


class RouteScalingMetric(Model):
    """v1beta1: concurrency, requestRate or both (then the larger replica count wins)."""

    concurrency: RouteConcurrency | None = None
    request_rate: RouteRequestRate | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> RouteScalingMetric:
        if self.concurrency is None and self.request_rate is None:
            raise ValueError("at least one of 'concurrency' or 'requestRate' must be set")
        return self


class StaticRoute(Model):
    rules: list[RouteRule] = Field(min_length=1)
    response: StaticResponse
    response_mode: Literal["Always", "WhenUnavailable"] = "WhenUnavailable"


class InterceptorRouteSpec(Model):
    target: RouteTarget
    cold_start: ColdStart | None = None
    rules: list[RouteRule] = Field(default_factory=list)
    scaling_metric: RouteScalingMetric
    timeouts: RouteTimeouts | None = None
    static_routes: list[StaticRoute] = Field(default_factory=list)


class InterceptorRoute(Model):
    api_version: Literal["http.keda.sh/v1beta1"]
    kind: Literal["InterceptorRoute"]
    metadata: ObjectMeta
    spec: InterceptorRouteSpec
    status: dict[str, Any] | None = None
