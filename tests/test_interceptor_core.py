"""The interceptor's pure core: routing precedence, the request-rate window, summing reports."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.interceptor.counts import Counter, RequestBuckets
from autoscaler.interceptor.hub import Signals, admin_endpoints
from autoscaler.interceptor.routes import (
    FALLBACK_READINESS_S,
    Metric,
    RouteError,
    build_routes,
    effective_readiness,
    from_http_scaled_object,
    from_interceptor_route,
)
from autoscaler.interceptor.routing import HeaderMatch, MalformedHost, RouteRef, RoutingTable, Rule, request_host


def ref(name: str, created: str = "2026-01-01T00:00:00Z", ns: str = "web") -> RouteRef:
    return RouteRef(ns, name, created)


TABLE = RoutingTable.build([
    (ref("exact"), [Rule(hosts=("app.example.com",))]),
    (ref("exact-api"), [Rule(hosts=("app.example.com",), paths=("/api",))]),
    (ref("exact-api-v2"), [Rule(hosts=("app.example.com:8080",), paths=("/api/v2/",))]),
    (ref("wild"), [Rule(hosts=("*.example.com",))]),
    (ref("wild-deep"), [Rule(hosts=("*.eu.example.com",))]),
    (ref("catch-all-static"), [Rule(paths=("/static",))]),
    (ref("canary"), [Rule(hosts=("shop.example.com",), headers=(HeaderMatch("X-Canary"),))]),
    (ref("canary-on"), [Rule(hosts=("shop.example.com",), headers=(HeaderMatch("X-Canary", "on"),))]),
    (ref("two-headers"), [Rule(hosts=("shop.example.com",), headers=(HeaderMatch("X-Canary"), HeaderMatch("X-B")))]),
    (ref("shop-old", "2025-01-01T00:00:00Z"), [Rule(hosts=("old.example.com",))]),
    (ref("shop-new", "2026-06-01T00:00:00Z"), [Rule(hosts=("old.example.com",))]),
])

# (host, path, headers) → the route that wins, or None (404)
CASES = [
    ("app.example.com", "/", {}, "exact"),
    ("app.example.com", "/api", {}, "exact-api"),
    ("app.example.com", "/api/users/1", {}, "exact-api"),
    ("app.example.com", "/apiary", {}, "exact"),  # prefixes end at a segment boundary
    ("app.example.com", "/api/v2/x", {}, "exact-api-v2"),  # longest prefix; the rule's port is ignored
    ("app.example.com", "//api//", {}, "exact-api"),
    ("a.example.com", "/x", {}, "wild"),  # wildcard when no exact host
    ("a.b.example.com", "/x", {}, "wild"),
    ("a.eu.example.com", "/x", {}, "wild-deep"),  # more specific wildcard wins
    ("example.com", "/x", {}, None),  # *.example.com does not match the apex
    ("other.org", "/static/app.js", {}, "catch-all-static"),
    ("a.example.com", "/static/app.js", {}, "wild"),  # any host-specific route beats the catch-all
    ("other.org", "/", {}, None),
    ("shop.example.com", "/", {}, "wild"),  # every route there needs a header: on to the wildcard
    ("shop.example.com", "/", {"X-Canary": "off"}, "canary"),
    ("shop.example.com", "/", {"x-canary": "on"}, "canary-on"),  # a value beats presence; names ignore case
    ("shop.example.com", "/", {"X-Canary": "on", "X-B": "1"}, "two-headers"),  # more headers first
    ("old.example.com", "/", {}, "shop-old"),  # the older object wins a tie
]


@pytest.mark.parametrize(("host", "path", "headers", "expected"), CASES)
def test_routing_precedence(host: str, path: str, headers: dict[str, str], expected: str | None) -> None:
    found = TABLE.route(host, path, list(headers.items()))
    assert (found.name if found else None) == expected


def test_exact_host_with_a_longer_prefix_elsewhere_does_not_fall_back_to_shorter_prefix_on_header_miss() -> None:
    # the add-on looks at the longest matching prefix of a host only: a header miss there moves on to
    # wildcards and the catch-all, not to a shorter prefix of the same host
    table = RoutingTable.build([(ref("root"), [Rule(hosts=("h.example.com",))]),
                                (ref("api-hdr"), [Rule(hosts=("h.example.com",), paths=("/api",),
                                                       headers=(HeaderMatch("X-A"),))]),
                                (ref("wild"), [Rule(hosts=("*.example.com",))])])
    assert table.route("h.example.com", "/api/x", [("X-A", "1")]).name == "api-hdr"  # type: ignore[union-attr]
    assert table.route("h.example.com", "/api/x", []).name == "wild"  # type: ignore[union-attr]


@pytest.mark.parametrize("raw", ["app.example.com", "App.Example.COM:8080", "10.0.0.1:80", "[::1]:8080", "localhost"])
def test_valid_hosts(raw: str) -> None:
    assert request_host(raw) == raw.lower().rsplit(":", 1)[0].strip("[]") if not raw.startswith("[") else "::1"


@pytest.mark.parametrize("raw", [None, "", "a..b", "-a.example.com", "a b", "host:99999", "host:", "a/b", "*.x.com",
                                 "x" * 300, "a" * 64 + ".com"])
def test_malformed_hosts(raw: str | None) -> None:
    with pytest.raises(MalformedHost):
        request_host(raw)


def test_request_buckets_follow_the_add_on() -> None:
    b = RequestBuckets(window_s=10, granularity_s=1)
    assert b.average(100.0) == 0
    for t in range(100, 105):  # 5 seconds of 10 requests each
        b.record(t + 0.5, 10)
    assert b.average(104.9) == 10.0
    b.record(106.0, 0)  # a quiet second is recorded as zero: the average falls
    assert b.average(106.0) == pytest.approx(50 / 7, abs=1e-3)
    assert b.average(113.0) == pytest.approx(10 / 7, abs=1e-3)  # seconds 100-103 left the window
    assert b.average(200.0) == 0  # nothing for longer than the window
    b.record(50.0, 99)  # older than the window: dropped
    assert b.total == 50


def test_counter_counts_arrivals_and_in_flight() -> None:
    c = Counter()
    c.increase("web/a")
    c.increase("web/a")
    c.decrease("web/a")
    c.decrease("web/a")
    c.decrease("web/a")  # never below zero
    assert c.snapshot() == {"web/a": {"Concurrency": 0, "RequestCount": 2}}


def test_signals_sum_interceptors_rate_and_staleness() -> None:
    s = Signals(started=1000.0, stale_after_s=3.0)
    s.set_route("web/a", "HTTPScaledObject", Metric(concurrency=10))
    s.set_route("web/r", "InterceptorRoute", Metric(concurrency=4, rate=5, window_s=10, granularity_s=1))
    s.set_endpoints({"10.0.0.1:9090", "10.0.0.2:9090"})
    with pytest.raises(RuntimeError, match="not reported yet"):
        s.load("HTTPScaledObject", "web", "a", 1001, 1)
    old = {"instance": "i1", "started": 900.0, "counts": {"web/a": {"Concurrency": 3, "RequestCount": 500},
                                                          "web/r": {"Concurrency": 0, "RequestCount": 70}}}
    assert s.observe("10.0.0.1:9090", old, 1001.0, 1.0) == ["web/a"]
    s.observe("10.0.0.2:9090", {"instance": "i2", "started": 1000.5,
                                "counts": {"web/a": {"Concurrency": 2, "RequestCount": 7},
                                           "web/r": {"Concurrency": 1, "RequestCount": 4}}}, 1001.2, 1.2)
    assert s.load("HTTPScaledObject", "web", "a", 1001.2, 1.2) == pytest.approx(0.5)  # (3 + 2) / 10
    # the older instance is a baseline (no burst of 500); the new one counts from its start: 4
    assert s.buckets["web/r"].total == 4
    s.observe("10.0.0.1:9090", {**old, "counts": {"web/r": {"Concurrency": 2, "RequestCount": 96}}}, 1002.0, 2.0)
    assert s.buckets["web/r"].total == 30
    # both: the larger of concurrency 3/4 and rate (30 over 2 seconds seen = 15 rps) / 5
    assert s.load("InterceptorRoute", "web", "r", 1002.0, 2.0) == pytest.approx(3.0)
    with pytest.raises(RuntimeError, match=r"10.0.0.2:9090 has not reported for 3.8s"):
        s.load("InterceptorRoute", "web", "r", 1002.0, 5.0)
    with pytest.raises(LookupError, match="HTTPScaledObject web/gone not found"):
        s.load("HTTPScaledObject", "web", "gone", 1002.0, 2.0)
    # a restart of interceptor 2 (new instance, counter from zero) sent its final report first
    s.observe("10.0.0.2:9090", {"instance": "i2", "started": 1000.5, "final": True,
                                "counts": {"web/r": {"Concurrency": 0, "RequestCount": 9}}}, 1002.5, 2.5)
    s.observe("10.0.0.2:9090", {"instance": "i3", "started": 1003.0,
                                "counts": {"web/r": {"Concurrency": 0, "RequestCount": 2}}}, 1003.1, 3.1)
    assert s.buckets["web/r"].total == 30 + 5 + 2
    s.set_endpoints(set())
    with pytest.raises(RuntimeError, match="no interceptor"):
        s.load("legacy", "web", "", 1004, 4)


def test_routes_from_manifests_carry_the_add_on_defaults() -> None:
    meta = {"name": "a", "namespace": "web"}
    so: dict[str, Any] = {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject", "metadata": meta,
          "spec": {"hosts": ["a.example.com"], "scaleTargetRef": {"name": "a", "service": "a", "port": 80},
                   "timeouts": {"conditionWait": "20s", "responseHeader": "2s"},
                   "scalingMetric": {"requestRate": {"targetValue": 50}}}}
    r = from_http_scaled_object(so)
    assert (r.readiness_s, r.response_header_s) == (20, 2)
    assert (r.metric.rate, r.metric.window_s, r.metric.granularity_s, r.metric.concurrency) == (50, 60, 1, None)
    so["spec"]["coldStartTimeoutFailoverRef"] = {"service": "fb", "port": 8080}
    r = from_http_scaled_object(so)
    assert r.fallback is not None and r.readiness_s == 30  # the failover's timeoutSeconds default
    legacy = {**so, "spec": {**so["spec"], "scalingMetric": None, "targetPendingRequests": 7}}
    assert from_http_scaled_object(legacy).metric.concurrency == 7
    assert effective_readiness(from_http_scaled_object({**so, "spec": {
        k: v for k, v in so["spec"].items() if k not in ("timeouts", "coldStartTimeoutFailoverRef")}}), 0) == 0
    ir = {"apiVersion": "http.keda.sh/v1beta1", "kind": "InterceptorRoute", "metadata": meta,
          "spec": {"target": {"service": "svc", "portName": "http"}, "coldStart": {"fallback": {"service": {
              "name": "fb", "port": 80}}}, "scalingMetric": {"concurrency": {"targetValue": 5},
                                                             "requestRate": {"targetValue": 9, "window": "30s"}}}}
    route = from_interceptor_route(ir)
    assert (route.metric.concurrency, route.metric.rate, route.metric.window_s) == (5, 9, 30)
    assert effective_readiness(route, 0) == FALLBACK_READINESS_S
    routes, errors = build_routes([ir], [so, {**so, "metadata": {"name": "b", "namespace": "web"},
                                              "spec": {"scaleTargetRef": {"name": "b", "service": "b"}}}])
    assert [r.kind for r in routes] == ["InterceptorRoute"]  # the InterceptorRoute wins the shared name
    assert "HTTPScaledObject web/b" in errors and "port" in errors["HTTPScaledObject web/b"]
    with pytest.raises(RouteError, match="scalingMetric"):
        from_interceptor_route({**ir, "spec": {"target": {"service": "svc", "port": 80}, "scalingMetric": {}}})


def test_admin_endpoints_take_ready_addresses_on_the_admin_port() -> None:
    slices = {"s": {"ports": [{"name": "proxy", "port": 8080}, {"name": "admin", "port": 9090}],
                    "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                                  {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                                  {"addresses": ["10.0.0.3"]}]}}
    assert admin_endpoints(slices) == {"10.0.0.1:9090", "10.0.0.3:9090"}


def test_generated_scaled_object_is_the_add_ons_with_predictive_from_the_annotation() -> None:
    from autoscaler.interceptor.operator import generated_scaled_object
    from autoscaler.manifests.keda import ScaledObject

    raw = {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
           "metadata": {"name": "a", "namespace": "web", "uid": "u1", "labels": {"team": "x"},
                        "annotations": {"surge.dev/predictive": '{"mode": "on", "horizon": "10m"}'}},
           "spec": {"scaleTargetRef": {"name": "a", "service": "a", "port": 80}, "replicas": {"max": 7},
                    "scaledownPeriod": 60}}
    so = generated_scaled_object(raw)
    assert so["spec"]["pollingInterval"] == 15 and so["spec"]["advanced"]["restoreToOriginalReplicaCount"]
    assert "minReplicaCount" not in so["spec"] and so["spec"]["maxReplicaCount"] == 7
    assert so["spec"]["cooldownPeriod"] == 60 and so["metadata"]["labels"] == {"team": "x"}
    assert so["metadata"]["ownerReferences"][0]["uid"] == "u1"
    parsed = ScaledObject.model_validate(so)  # a valid ScaledObject, forecasting on
    assert parsed.spec.advanced is not None and parsed.spec.advanced.predictive is not None
    assert parsed.spec.advanced.predictive.mode == "on"


async def test_external_push_scaler_reads_the_source_and_refuses_other_metadata() -> None:
    from scalers.base import Trigger
    from scalers.errors import ConfigError
    from scalers.http_addon import HTTPAddonScaler, SignalError, use_source

    class Source:
        def load(self, kind: str, namespace: str, name: str) -> float:
            if name == "gone":
                raise LookupError(f"{kind} {namespace}/{name} not found")
            return {"legacy": 12.0, "HTTPScaledObject": 1.5}[kind]

        async def changes(self, kind: str, namespace: str, name: str):  # type: ignore[no-untyped-def]
            yield None

    legacy = HTTPAddonScaler(Trigger("external-push", {"interceptorTargetPendingRequests": "5"}, namespace="web"))
    routed = HTTPAddonScaler(Trigger("external-push", {"httpScaledObject": "a", "scalerAddress": "x:9090"},
                                     namespace="web"))
    assert legacy.metric_specs()[0].target == 5 and routed.metric_specs()[0].target == 1
    with pytest.raises(SignalError, match="no interceptor hub"):
        await routed.metrics()
    use_source(Source())
    try:
        assert (await legacy.metrics()).values == {legacy.metric_specs()[0].name: 12.0}
        reading = await routed.metrics()
        assert reading.active and reading.values[routed.metric_specs()[0].name] == 1.5
        with pytest.raises(SignalError, match="HTTPScaledObject web/gone not found"):
            await HTTPAddonScaler(Trigger("external-push", {"httpScaledObject": "gone"}, namespace="web")).metrics()
    finally:
        use_source(None)
    with pytest.raises(ConfigError, match="httpScaledObject"):
        HTTPAddonScaler(Trigger("external-push", {"scalerAddress": "other:9090"}))
    with pytest.raises(ConfigError, match="interceptorTargetPendingRequests"):
        HTTPAddonScaler(Trigger("external-push", {"interceptorTargetPendingRequests": "lots"}))


def test_static_route_rules_match_like_the_add_on() -> None:
    from autoscaler.interceptor.routing import rule_matches

    rule = Rule(hosts=("*.example.com", "exact.org:8080"), paths=("/status",), headers=(HeaderMatch("X-Probe"),))
    assert rule_matches(rule, "a.b.example.com", "/status/live", [("x-probe", "1")])
    assert rule_matches(rule, "exact.org", "/status", [("X-Probe", "")])
    assert not rule_matches(rule, "example.com", "/status", [("X-Probe", "1")])  # the apex is not under *.
    assert not rule_matches(rule, "a.example.com", "/statuses", [("X-Probe", "1")])
    assert not rule_matches(rule, "a.example.com", "/status", [])
    assert rule_matches(Rule(), "anything", "/", [])
