"""Leader election over a Lease in the emulator, and the operator's HTTP endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client
from kubernetes_asyncio.client import Configuration

from autoscaler.operator.kube import api_client
from autoscaler.operator.leader import LeaderElector, LeaseTiming, NotLeading
from autoscaler.operator.main import http_app
from autoscaler.operator.metrics import Metrics
from tests.chaos.proxy import FaultProxy
from tests.k8s.fixture import K8s


class Clock:
    """Monotonic time for an elector, moved by the test (the Lease itself lives in the emulator)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


TIMING = LeaseTiming(lease_s=10, renew_deadline_s=7, retry_s=1)


async def test_one_leader_and_takeover_after_expiry_on_the_candidates_own_clock(k8s_api: K8s) -> None:
    ca, cb = Clock(), Clock()
    async with client.ApiClient(k8s_api.configuration) as api:
        a = LeaderElector(api, "surge", "surge-operator", "a", TIMING, monotonic=ca)
        b = LeaderElector(api, "surge", "surge-operator", "b", TIMING, monotonic=cb)
        assert await a.try_acquire_or_renew() is True
        assert await b.try_acquire_or_renew() is False
        ca.t += 5
        cb.t += 5
        assert await a.try_acquire_or_renew() is True  # renews
        assert await b.try_acquire_or_renew() is False  # b sees the new record at its 1005
        cb.t += 9
        assert await b.try_acquire_or_renew() is False  # 9 s since b saw the renewal < 10 s
        cb.t += 2
        assert await b.try_acquire_or_renew() is True  # silent for 11 s on b's clock: b takes over
        assert await a.try_acquire_or_renew() is False
    lease = k8s_api.emulator.get("coordination.k8s.io/v1", "leases", "surge", "surge-operator")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1


async def test_a_skewed_wall_clock_cannot_shorten_the_lease(k8s_api: K8s) -> None:
    """b's wall clock is an hour ahead: the holder's renewTime looks ancient to it, yet b waits
    a full lease duration of its own time (client-go's observedTime rule)."""
    mono = Clock()
    async with client.ApiClient(k8s_api.configuration) as api:
        a = LeaderElector(api, "surge", "skew", "a", TIMING, monotonic=mono)
        b = LeaderElector(api, "surge", "skew", "b", TIMING, clock=lambda: time.time() + 3600, monotonic=mono)
        assert await a.try_acquire_or_renew() is True
        assert await b.try_acquire_or_renew() is False


async def test_racing_candidates_cannot_both_win(k8s_api: K8s) -> None:
    async with client.ApiClient(k8s_api.configuration) as api:
        first = LeaderElector(api, "surge", "race", "first", TIMING)
        await first.try_acquire_or_renew()
        assert await first.release()  # free for everyone
        electors = [LeaderElector(api, "surge", "race", f"c{i}", TIMING) for i in range(5)]
        wins = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
    assert sum(wins) == 1


def test_timing_follows_client_go_rules() -> None:
    assert (LeaseTiming().lease_s, LeaseTiming().renew_deadline_s, LeaseTiming().retry_s) == (15, 10, 2)
    with pytest.raises(ValueError, match="leaseDuration"):
        LeaseTiming(lease_s=10, renew_deadline_s=10)
    with pytest.raises(ValueError, match="renewDeadline"):
        LeaseTiming(lease_s=10, renew_deadline_s=2, retry_s=2)


async def leader_then_standby(api_a: client.ApiClient, api_b: client.ApiClient, lease: str, timing: LeaseTiming,
                              marks: dict[str, float]) -> tuple[LeaderElector, asyncio.Task[None], asyncio.Task[None]]:
    """Electors a (started first, leads) and b (standby); `marks` notes when each starts/stops."""
    def note(what: str) -> Callable[[], Awaitable[None]]:
        async def mark() -> None:
            marks.setdefault(what, time.monotonic())
        return mark

    a = LeaderElector(api_a, "surge", lease, "a", timing)
    ta = asyncio.create_task(a.run(note("a-start"), note("a-stop")))
    await asyncio.sleep(0.5)
    tb = asyncio.create_task(LeaderElector(api_b, "surge", lease, "b", timing).run(note("b-start"), note("b-stop")))
    await asyncio.sleep(0.5)
    assert list(marks) == ["a-start"]
    return a, ta, tb


FAST = LeaseTiming(lease_s=3, renew_deadline_s=2, retry_s=0.25)


async def test_a_leader_whose_api_calls_hang_stops_before_another_can_take_over(k8s_api: K8s) -> None:
    """Hang (not fail) the leader's link to the API server: it stops acting within the renew
    deadline, before the standby may take the Lease (that is no split brain)."""
    port = int(k8s_api.url.rsplit(":", 1)[1])
    proxy = await FaultProxy(port).start()
    marks: dict[str, float] = {}
    async with api_client(Configuration(host=f"http://127.0.0.1:{proxy.port}"), FAST.write_budget_s) as via_proxy, \
            api_client(k8s_api.configuration, FAST.write_budget_s) as direct:
        a, ta, tb = await leader_then_standby(via_proxy, direct, "hang", FAST, marks)
        proxy.set("hang")
        hung = time.monotonic()
        for _ in range(100):
            if "b-start" in marks:
                break
            await asyncio.sleep(0.1)
        assert "a-stop" in marks and "b-start" in marks
        assert marks["a-stop"] < marks["b-start"], marks  # a stopped acting before b began
        assert marks["a-stop"] - hung <= FAST.renew_deadline_s + 0.5
        assert not a.leading()
        for t in (ta, tb):
            t.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)
    await proxy.stop()


async def test_stopping_releases_the_lease_for_a_prompt_takeover(k8s_api: K8s) -> None:
    marks: dict[str, float] = {}
    timing = LeaseTiming(lease_s=30, renew_deadline_s=20, retry_s=0.2)
    async with client.ApiClient(k8s_api.configuration) as api:
        _, ta, tb = await leader_then_standby(api, api, "release", timing, marks)
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        stopped = time.monotonic()
        while "b-start" not in marks and time.monotonic() - stopped < 5:
            await asyncio.sleep(0.05)
        took = time.monotonic() - stopped
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)
    assert list(marks)[:3] == ["a-start", "a-stop", "b-start"]
    assert took < 2, f"takeover took {took:.1f} s with a 30 s lease"


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


async def test_every_write_but_the_lease_is_fenced_at_the_client(k8s_api: K8s) -> None:
    """The fence sits in the API client: whichever controller writes after leadership lapsed
    (ScaledObjects or NodeClaims), the write is refused before it leaves the process."""
    leading = [True]

    def fence() -> None:
        if not leading[0]:
            raise NotLeading("lapsed")

    k8s_api.emulator.put("apps/v1", "deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
        "spec": {"replicas": 1}})
    async with api_client(k8s_api.configuration, 2.0, fence=fence) as api:
        apps = client.AppsV1Api(api)
        await apps.patch_namespaced_deployment_scale("d", "n", {"spec": {"replicas": 2}})
        elector = LeaderElector(api, "surge", "fenced", "me", TIMING)
        assert await elector.try_acquire_or_renew()
        leading[0] = False
        with pytest.raises(NotLeading):
            await apps.patch_namespaced_deployment_scale("d", "n", {"spec": {"replicas": 3}})
        assert (await apps.read_namespaced_deployment_scale("d", "n")).spec.replicas == 2  # reads go on
        assert await elector.try_acquire_or_renew()  # the election's own writes are not fenced
        assert await elector.release()
