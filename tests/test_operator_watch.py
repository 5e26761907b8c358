"""The operator follows what its ScaledObjects depend on, and keeps its writes and connections few.

Against the API emulator and real redis-servers: a TriggerAuthentication and Secret that arrive
after the ScaledObject, a rotated Secret, unsupported trigger types, status written only when it
changes, one Redis connection for many ScaledObjects, and engine state that survives a restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

from kubernetes_asyncio import client

from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from autoscaler.operator.metrics import Metrics
from scalers.redis_common import MAX_IN_FLIGHT
from tests.fixtures.redis import cli
from tests.k8s.fixture import K8s
from tests.servers import Server
from tests.test_operator_e2e import deployment, scaled_object, until

SO = ("keda.sh/v1alpha1", "scaledobjects")


def replicas(k8s: K8s, name: str) -> int:
    return int(k8s.emulator.get("apps/v1", "deployments", "jobs", name)["spec"]["replicas"])


def conditions(k8s: K8s, name: str) -> dict[str, dict]:
    status = k8s.emulator.get(*SO, "jobs", name).get("status") or {}
    return {c["type"]: c for c in status.get("conditions", [])}


def secret(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "jobs"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


@contextlib.asynccontextmanager
async def operator(k8s: K8s, metrics: Metrics | None = None) -> AsyncIterator[ScaledObjectController]:
    async with client.ApiClient(k8s.configuration) as api:
        controller = ScaledObjectController(Kube(api), metrics)
        task = asyncio.create_task(controller.run())
        try:
            yield controller
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await controller.stop()


async def test_auth_that_arrives_later_and_a_rotated_secret_are_picked_up(k8s_api: K8s, redis_plain: Server) -> None:
    em = k8s_api.emulator
    em.put("apps/v1", "deployments", deployment("billing"))
    so = scaled_object("billing", "billing", {"listName": "invoices", "listLength": "5"})
    so["spec"]["triggers"][0]["authenticationRef"] = {"name": "redis-creds"}
    em.put(*SO, so)
    cli(redis_plain.port, "DEL", "invoices")
    cli(redis_plain.port, "RPUSH", "invoices", *["i"] * 12)
    async with operator(k8s_api):
        await until(lambda: conditions(k8s_api, "billing").get("Ready", {}).get("reason")
                    == "TriggerAuthenticationNotFound")
        em.put("keda.sh/v1alpha1", "triggerauthentications", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "redis-creds", "namespace": "jobs"},
            "spec": {"secretTargetRef": [{"parameter": "address", "name": "redis-secret", "key": "addr"}]}})
        await until(lambda: conditions(k8s_api, "billing").get("Ready", {}).get("reason") == "SecretNotFound")
        em.put("v1", "secrets", secret("redis-secret", addr="127.0.0.1:1"))  # nothing listens there
        await until(lambda: (em.get(*SO, "jobs", "billing").get("status") or {}).get("health", {})
                    .get("q", {}).get("status") == "Failing", timeout=15)
        assert replicas(k8s_api, "billing") == 0
        em.put("v1", "secrets", secret("redis-secret", addr=redis_plain.address))  # rotated: now right
        await until(lambda: replicas(k8s_api, "billing") == 3, timeout=15)


async def test_unsupported_trigger_types_are_reported_not_ignored(k8s_api: K8s, redis_plain: Server) -> None:
    em = k8s_api.emulator
    metrics = Metrics()
    em.put("apps/v1", "deployments", deployment("mixed"))
    em.put("apps/v1", "deployments", deployment("alien"))
    mixed = scaled_object("mixed", "mixed", {"address": redis_plain.address, "listName": "m", "listLength": "5"})
    mixed["spec"]["triggers"].append({"type": "ibmmq", "metadata": {"queueName": "Q"}})
    em.put(*SO, mixed)
    alien = scaled_object("alien", "alien", {})
    alien["spec"]["triggers"] = [{"type": "ibmmq", "metadata": {"queueName": "Q"}}]
    em.put(*SO, alien)
    cli(redis_plain.port, "RPUSH", "m", *["x"] * 7)
    async with operator(k8s_api, metrics):
        await until(lambda: replicas(k8s_api, "mixed") == 2)
        ready = conditions(k8s_api, "mixed")["Ready"]
        assert ready["status"] == "True" and "spec.triggers[1] (type 'ibmmq')" in ready["message"]
        status = em.get(*SO, "jobs", "mixed")["status"]
        assert status["surge"]["unsupportedTriggers"] == ["spec.triggers[1] (type 'ibmmq')"]
        await until(lambda: conditions(k8s_api, "alien").get("Ready", {}).get("reason") == "UnsupportedTrigger")
        reasons = {(e["involvedObject"]["name"], e["reason"], e["type"]) for e in em.all("v1", "events")}
        assert ("mixed", "UnsupportedTrigger", "Warning") in reasons
        assert ("alien", "UnsupportedTrigger", "Warning") in reasons
        assert metrics.registry.get_sample_value("surge_unsupported_triggers",
                                                 {"namespace": "jobs", "scaledObject": "mixed"}) == 1


async def test_status_is_written_on_change_and_one_connection_serves_many(k8s_api: K8s,
                                                                           redis_plain: Server) -> None:
    em = k8s_api.emulator
    n = 40
    for i in range(n):
        em.put("apps/v1", "deployments", deployment(f"w{i}"))
        em.put(*SO, scaled_object(f"w{i}", f"w{i}", {"address": redis_plain.address, "listName": f"q{i}",
                                                      "listLength": "5"}))
    cli(redis_plain.port, "RPUSH", "q0", *["x"] * 11)
    before = int(cli(redis_plain.port, "INFO", "clients").split("connected_clients:")[1].split()[0])
    async with operator(k8s_api):
        await until(lambda: replicas(k8s_api, "w0") == 3)
        await asyncio.sleep(1.5)  # settle
        writes = len(em.store.events)
        await asyncio.sleep(3.0)  # three more polls of 40 objects, nothing changes
        status_writes = [e for e in em.store.events[writes:] if e[1] == SO]
        assert status_writes == []
        during = int(cli(redis_plain.port, "INFO", "clients").split("connected_clients:")[1].split()[0])
        # one pool for 40 triggers: at most MAX_IN_FLIGHT connections, plus one for notifications
        assert during - before <= MAX_IN_FLIGHT + 1 < n
        cli(redis_plain.port, "RPUSH", "q7", *["x"] * 6)  # a change is still written at once
        await until(lambda: replicas(k8s_api, "w7") == 2)
        await until(lambda: conditions(k8s_api, "w7").get("Active", {}).get("status") == "True")


async def test_a_restarted_operator_keeps_the_scale_down_window(k8s_api: K8s, redis_plain: Server) -> None:
    """Without the remembered recommendations a fresh HPA would drop 5 → 1 at once; restored
    from status, the 60 s scale-down window still holds after the restart."""
    em = k8s_api.emulator
    em.put("apps/v1", "deployments", deployment("steady"))
    em.put(*SO, scaled_object("steady", "steady", {"address": redis_plain.address, "listName": "s",
                                                   "listLength": "5"},
                              advanced={"horizontalPodAutoscalerConfig": {"behavior": {
                                  "scaleDown": {"stabilizationWindowSeconds": 60}}}}))
    cli(redis_plain.port, "DEL", "s")
    cli(redis_plain.port, "RPUSH", "s", *["x"] * 25)
    async with operator(k8s_api):
        await until(lambda: replicas(k8s_api, "steady") == 5)
        cli(redis_plain.port, "LTRIM", "s", "0", "2")  # 3 items left: 1 replica would do
        await asyncio.sleep(2.5)
        assert replicas(k8s_api, "steady") == 5  # the window holds
    async with operator(k8s_api):  # a new operator, nothing in memory
        await asyncio.sleep(3.0)
        assert replicas(k8s_api, "steady") == 5  # still held: the window came back from status
        cli(redis_plain.port, "RPUSH", "s", *["x"] * 40)  # and it is alive: 43 items → 9
        await until(lambda: replicas(k8s_api, "steady") == 9)
