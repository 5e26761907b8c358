"""The live predictor: fits off the event loop, declines with reasons, and an operator in predictive
mode scaling ahead of a forecast (API emulator + real redis-server)."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
from kubernetes_asyncio import client

from autoscaler.history import MemoryHistory
from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from autoscaler.operator.predictor import Predictor
from tests.k8s.fixture import K8s
from tests.servers import Server
from tests.test_operator_e2e import deployment, scaled_object, until

DAY = 86400.0
STEP = 300.0


def daily(t: np.ndarray) -> np.ndarray:
    return 100 + 90 * np.sin(2 * np.pi * (t % DAY) / DAY)


async def filled(days: int, now: float, shape=daily, noise: float = 0.03) -> MemoryHistory:
    h = MemoryHistory()
    rng = np.random.default_rng(2)
    for t in np.arange(now - days * DAY, now, STEP):
        await h.append("ns/so/q", float(t), float(shape(np.array(t)) * (1 + noise * rng.standard_normal())))
    return h


async def settle(p: Predictor) -> None:
    tasks = [s.task for s in p._slots.values() if s.task is not None]
    await asyncio.gather(*tasks)


async def test_first_poll_does_not_wait_for_the_fit_then_forecasts() -> None:
    now = 20 * DAY
    p = Predictor(await filled(4, now))
    first = await p.forecast("ns/so/q", now, STEP, 0.9, DAY)
    assert (first.value, first.reliable, first.reason) == (None, False, "fitting")
    await settle(p)
    fc = await p.forecast("ns/so/q", now, STEP, 0.9, DAY)
    assert fc.reliable, fc.reason
    truth = float(daily(np.array(now + STEP)))
    assert fc.value is not None and abs(fc.value - truth) < 0.2 * truth
    p.close()


async def test_declines_are_reported() -> None:
    now = 20 * DAY
    p = Predictor(await filled(4, now, shape=lambda t: 42.0 + 0 * t, noise=0.0))
    assert (await p.forecast("ns/so/q", now, STEP, 0.9, DAY)).reason == "fitting"
    await settle(p)
    fc = await p.forecast("ns/so/q", now, STEP, 0.9, DAY)
    assert not fc.reliable and "constant history" in fc.reason
    short = Predictor(await filled(1, now))
    fc = await short.forecast("ns/so/q", now, STEP, 0.9, 2 * DAY)
    assert not fc.reliable and "minHistory is 48.0 h" in fc.reason
    p.close()
    short.close()


async def test_operator_scales_ahead_of_the_forecast(k8s_api: K8s, redis_plain: Server) -> None:
    """Three days of history say load rises steeply in the next five minutes; the list holds 3
    items (reactively: 1 replica). In predictive mode the operator writes what the forecast's 90th
    percentile needs and says why in the Predictive condition."""
    em = k8s_api.emulator
    queue = f"pred-{uuid.uuid4().hex[:6]}"
    now = 30 * DAY + 0.23 * DAY  # on the rising edge of the daily cycle
    history = MemoryHistory()
    rng = np.random.default_rng(4)
    for t in np.arange(now - 3 * DAY, now, STEP):
        await history.append("jobs/ahead/q", float(t), float(daily(np.array(t)) * (1 + 0.03 * rng.standard_normal())))
    predictor = Predictor(history)
    dep = deployment("ahead", replicas=1)
    dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = redis_plain.address
    em.put("apps/v1", "deployments", dep)
    so = scaled_object("ahead", "ahead", {"addressFromEnv": "REDIS", "listName": queue, "listLength": "10"},
                       minReplicaCount=1, maxReplicaCount=30,
                       advanced={"predictive": {"mode": "on", "horizon": "5m", "quantile": 0.9, "minHistory": "1d"}})
    em.put("keda.sh/v1alpha1", "scaledobjects", so)
    from tests.fixtures.redis import cli

    cli(redis_plain.port, "RPUSH", queue, "a", "b", "c")

    def replicas() -> int:
        return int(em.get("apps/v1", "deployments", "jobs", "ahead")["spec"]["replicas"])

    clock = {"t": now}
    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ScaledObjectController(Kube(api), clock=lambda: clock["t"], predictor=predictor)
        told: list[tuple[str, str, str, int, float]] = []

        async def record(*args: object) -> None:
            told.append(args)  # type: ignore[arg-type]

        controller.on_forecast = record  # what the provisioner's consolidation would be told
        task = asyncio.create_task(controller.run())
        try:
            await until(lambda: replicas() >= 10, timeout=30)
            assert told  # told in the same cycle as the forecast scaled the target
            ns, kind, name, wanted, horizon = told[0]
            assert (ns, kind, name, horizon) == ("jobs", "Deployment", "ahead", 300.0) and 10 <= wanted <= 30
            def predictive() -> dict[str, str]:
                status = em.get("keda.sh/v1alpha1", "scaledobjects", "jobs", "ahead")["status"]
                return {c["type"]: c for c in status["conditions"]}["Predictive"]

            # the status patch follows the scale write of the same cycle: wait for it, not a poll later
            await until(lambda: predictive()["reason"] == "ScalingAhead", timeout=10)
            assert predictive()["status"] == "True"
            assert replicas() <= 30
        finally:
            task.cancel()
            await controller.stop()
            predictor.close()


async def test_a_horizon_off_the_step_is_a_reason_not_a_crash() -> None:
    now = 20 * DAY
    p = Predictor(await filled(4, now))
    assert (await p.forecast("ns/so/q", now, 120.0, 0.9, DAY)).reason == "fitting"
    await settle(p)
    fc = await p.forecast("ns/so/q", now, 120.0, 0.9, DAY)
    assert fc.value is None and not fc.reliable and "horizon 120 s is not a whole number of 300-s steps" in fc.reason
    p.close()
