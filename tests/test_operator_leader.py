"""Leader election over a Lease in the emulator, and the operator's HTTP endpoints."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client

from autoscaler.operator.leader import LeaderElector
from autoscaler.operator.main import http_app
from autoscaler.operator.metrics import Metrics
from tests.k8s.fixture import K8s


async def test_one_leader_and_takeover_after_expiry(k8s_api: K8s) -> None:
    now = [1000.0]
    async with client.ApiClient(k8s_api.configuration) as api:
        a = LeaderElector(api, "surge", "surge-operator", "a", lease_s=10, clock=lambda: now[0])
        b = LeaderElector(api, "surge", "surge-operator", "b", lease_s=10, clock=lambda: now[0])
        assert await a.try_acquire_or_renew() is True
        assert await b.try_acquire_or_renew() is False
        now[0] += 5
        assert await a.try_acquire_or_renew() is True  # renews
        now[0] += 9
        assert await b.try_acquire_or_renew() is False  # 9 s since renewal < 10 s
        now[0] += 2
        assert await b.try_acquire_or_renew() is True  # expired: b takes over
        assert await a.try_acquire_or_renew() is False
    lease = k8s_api.emulator.get("coordination.k8s.io/v1", "leases", "surge", "surge-operator")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1


async def test_racing_candidates_cannot_both_win(k8s_api: K8s) -> None:
    now = [0.0]
    async with client.ApiClient(k8s_api.configuration) as api:
        first = LeaderElector(api, "surge", "race", "first", lease_s=1, clock=lambda: now[0])
        await first.try_acquire_or_renew()
        now[0] = 100.0  # expired for everyone
        electors = [LeaderElector(api, "surge", "race", f"c{i}", lease_s=30, clock=lambda: now[0]) for i in range(5)]
        wins = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
    assert sum(wins) == 1


async def test_run_starts_and_stops_the_controller(k8s_api: K8s) -> None:
    events: list[str] = []

    async def start() -> None:
        events.append("start")

    async def stop() -> None:
        events.append("stop")

    async with client.ApiClient(k8s_api.configuration) as api:
        elector = LeaderElector(api, "surge", "run", "me", lease_s=5, renew_s=0.05)
        task = asyncio.create_task(elector.run(start, stop))
        await asyncio.sleep(0.3)
        assert events == ["start"] and elector.is_leader
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert events == ["start", "stop"]


async def test_http_endpoints() -> None:
    metrics = Metrics()
    metrics.value.labels("jobs", "worker", "redis", "0", "s0-redis-q").set(42)
    ready = {"started": False}
    async with TestClient(TestServer(http_app(metrics, ready))) as http:
        assert (await http.get("/healthz")).status == 200
        assert (await http.get("/readyz")).status == 503
        ready["started"] = True
        assert (await http.get("/readyz")).status == 200
        body = await (await http.get("/metrics")).text()
        assert 'keda_scaler_metrics_value{metric="s0-redis-q",namespace="jobs"' in body and "42.0" in body
