"""The interceptor's Prometheus metrics, under the KEDA HTTP add-on's names so its dashboards carry
over: `interceptor_request_count_total{method,code,route_name,route_namespace}` and
`interceptor_request_concurrency{route_name,route_namespace}` (read from the route counters when
scraped, so it costs nothing per request)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from autoscaler.interceptor.counts import Counter as RouteCounter
from autoscaler.interceptor.routing import RouteRef

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"))


class _Concurrency(Collector):
    def __init__(self, counter: RouteCounter) -> None:
        self.counter = counter

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("interceptor_request_concurrency", "Concurrent requests at the interceptor proxy",
                                   labels=("route_name", "route_namespace"))
        for key, c in self.counter.routes.items():
            namespace, _, name = key.partition("/")
            family.add_metric((name, namespace), c.concurrency)
        yield family


class InterceptorMetrics:
    def __init__(self, counter: RouteCounter, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("interceptor_request_count", "Total requests processed by the interceptor proxy",
                                ("method", "code", "route_name", "route_namespace"), registry=self.registry)
        self.registry.register(_Concurrency(counter))
        self._children: dict[tuple[str, int, RouteRef | None], object] = {}

    def record(self, method: str, code: int, route: RouteRef | None) -> None:
        key = (method if method in METHODS else "_OTHER", code, route)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(key[0], str(code), route.name if route else "",
                                                               route.namespace if route else "")
        child.inc()  # type: ignore[attr-defined]
