"""End to end: the operator against the API emulator and a real redis-server.

A Deployment at 0 replicas and a ScaledObject with a Redis list trigger: items arrive → the
target goes 0 → 1 → N; the list drains → back to 0 after the cooldown. A broken ScaledObject
next to it gets Ready=False with the field named and an event, and does not disturb the other.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

from kubernetes_asyncio import client

from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from tests.fixtures.redis import cli
from tests.k8s.fixture import K8s
from tests.servers import Server


def deployment(name: str, replicas: int = 0) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "jobs"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"spec": {"containers": [{"name": "w", "image": "w",
                                                           "env": [{"name": "REDIS", "value": "set-below"}]}]}}}}


def scaled_object(name: str, target: str, metadata: dict, **spec: object) -> dict:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name, "namespace": "jobs"},
            "spec": {"scaleTargetRef": {"name": target}, "pollingInterval": 1, "cooldownPeriod": 2,
                     "maxReplicaCount": 10, "triggers": [{"type": "redis", "name": "q", "metadata": metadata}],
                     **spec}}


async def until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_event_loop().time() + timeout
    while not predicate():
        if asyncio.get_event_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.1)


async def test_scale_from_zero_to_n_and_back(k8s_api: K8s, redis_plain: Server) -> None:
    em = k8s_api.emulator
    queue = f"jobs-{uuid.uuid4().hex[:6]}"
    dep = deployment("worker")
    dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = redis_plain.address
    em.put("apps/v1", "deployments", dep)
    em.put("apps/v1", "deployments", deployment("other"))
    em.put("keda.sh/v1alpha1", "scaledobjects", scaled_object(
        "worker", "worker", {"addressFromEnv": "REDIS", "listName": queue, "listLength": "5"}))
    em.put("keda.sh/v1alpha1", "scaledobjects", scaled_object(
        "broken", "other", {"address": redis_plain.address, "listName": "x", "listLength": "lots"}))

    def replicas() -> int:
        return int(em.get("apps/v1", "deployments", "jobs", "worker")["spec"]["replicas"])

    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ScaledObjectController(Kube(api))
        task = asyncio.create_task(controller.run())
        try:
            await asyncio.sleep(1.5)
            assert replicas() == 0  # empty list: stays at zero
            cli(redis_plain.port, "RPUSH", queue, *["x"] * 23)
            await until(lambda: replicas() == 5)  # 0 → 1 (activation), then ceil(23/5) = 5
            status = em.get("keda.sh/v1alpha1", "scaledobjects", "jobs", "worker")["status"]
            ready = {c["type"]: c for c in status["conditions"]}
            assert ready["Active"]["status"] == "True" and status["originalReplicaCount"] == 0
            assert json.loads(status["surge"]["engineState"])["last_active_at"] is not None
            cli(redis_plain.port, "DEL", queue)
            await until(lambda: replicas() == 0, timeout=30)  # drained: back to zero after the 2 s cooldown

            broken = em.get("keda.sh/v1alpha1", "scaledobjects", "jobs", "broken")["status"]["conditions"][0]
            assert (broken["type"], broken["status"]) == ("Ready", "False")
            assert "listLength" in broken["message"]
            def reasons() -> set[tuple[str, str]]:
                return {(e["involvedObject"]["name"], e["reason"]) for e in em.all("v1", "events")}

            # the Event follows the scale write (another API call): under load it lands a moment later
            await until(lambda: ("worker", "KEDAScaleTargetDeactivated") in reasons(), timeout=10)
            assert ("worker", "KEDAScaleTargetActivated") in reasons()
            assert ("broken", "ScaledObjectCheckFailed") in reasons()
            assert em.get("apps/v1", "deployments", "jobs", "other")["spec"]["replicas"] == 0
        finally:
            task.cancel()
            await controller.stop()


async def test_keyspace_notifications_wake_the_loop_before_the_poll(k8s_api: K8s) -> None:
    """pollingInterval 30 s, but a push reaches the target in about a second: the Redis trigger
    follows keyspace notifications when the server publishes them."""
    from tests.fixtures.redis import redis_server

    em = k8s_api.emulator
    with redis_server("--notify-keyspace-events", "Kl") as redis:
        em.put("apps/v1", "deployments", deployment("eager"))
        em.put("keda.sh/v1alpha1", "scaledobjects", scaled_object(
            "eager", "eager", {"address": redis.address, "listName": "inbox", "listLength": "5"}, pollingInterval=30))
        async with client.ApiClient(k8s_api.configuration) as api:
            controller = ScaledObjectController(Kube(api))
            task = asyncio.create_task(controller.run())
            try:
                await asyncio.sleep(1.0)  # first cycle done; next poll would be 30 s away
                start = asyncio.get_event_loop().time()
                cli(redis.port, "RPUSH", "inbox", "a", "b")
                await until(lambda: em.get("apps/v1", "deployments", "jobs", "eager")["spec"]["replicas"] == 1,
                            timeout=10)
                assert asyncio.get_event_loop().time() - start < 5
            finally:
                task.cancel()
                await controller.stop()


async def test_a_controller_that_leads_again_runs_every_object_again(k8s_api: K8s, redis_plain: Server) -> None:
    """Leadership lost (stop) and regained (run again): every object the watches replay is
    rebuilt — also one whose target is a custom resource, which no Deployment watch re-announces."""
    em = k8s_api.emulator
    queue = f"regain-{uuid.uuid4().hex[:6]}"
    em.put("example.com/v1", "workers", {"apiVersion": "example.com/v1", "kind": "Worker",
                                         "metadata": {"name": "crd", "namespace": "jobs"}, "spec": {"replicas": 1}})
    em.put("keda.sh/v1alpha1", "scaledobjects", scaled_object(
        "crd", "crd", {"address": redis_plain.address, "listName": queue, "listLength": "5"},
        scaleTargetRef={"apiVersion": "example.com/v1", "kind": "Worker", "name": "crd"}, minReplicaCount=1))

    def replicas() -> int:
        return int(em.get("example.com/v1", "workers", "jobs", "crd")["spec"]["replicas"])

    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ScaledObjectController(Kube(api))
        for term, items in enumerate((12, 22)):  # one term, then leadership lost and regained
            cli(redis_plain.port, "RPUSH", queue, *["x"] * (items - int(cli(redis_plain.port, "LLEN", queue))))
            task = asyncio.create_task(controller.run())
            try:
                await until(lambda n=items: replicas() == -(-n // 5))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await controller.stop()
            assert replicas() == (3, 5)[term]  # the HPA's default policy: +4 pods per 15 s
