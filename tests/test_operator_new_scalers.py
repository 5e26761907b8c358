"""The operator scales on a trigger added for issue 21, read in its common cycle: a
kubernetes-workload ScaledObject against the API emulator follows the matching pods, and the
entry is batched (read with the Redis/Kafka triggers' cycle)."""

from __future__ import annotations

import asyncio

from kubernetes_asyncio import client

from autoscaler.operator.controller import ScaledObjectController
from autoscaler.operator.kube import Kube
from scalers import kube_source
from tests.k8s.fixture import K8s
from tests.test_operator_e2e import until


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "jobs",
                                                            "labels": {"app": "batch"}},
            "status": {"phase": "Running"}}


async def test_kubernetes_workload_scaled_object(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    em.put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "worker", "namespace": "jobs"},
                                      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "worker"}},
                                               "template": {"spec": {"containers": [{"name": "w", "image": "w"}]}}}})
    em.put("keda.sh/v1alpha1", "scaledobjects", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "worker", "namespace": "jobs"},
        "spec": {"scaleTargetRef": {"name": "worker"}, "pollingInterval": 1, "cooldownPeriod": 1,
                 "maxReplicaCount": 10, "triggers": [{"type": "kubernetes-workload", "name": "batch", "metadata": {
                     "podSelector": "app in (batch)", "value": "2"}}]}})

    def replicas() -> int:
        return int(em.get("apps/v1", "deployments", "jobs", "worker")["spec"]["replicas"])

    async with client.ApiClient(k8s_api.configuration) as api:
        kube_source.use(api)
        controller = ScaledObjectController(Kube(api))
        task = asyncio.create_task(controller.run())
        try:
            await asyncio.sleep(1.5)
            assert replicas() == 0
            for i in range(6):
                em.put("v1", "pods", pod(f"batch-{i}"))
            await until(lambda: replicas() == 3)  # ceil(6 / 2)
            entry = next(iter(controller.entries.values()))
            assert entry.batchable
        finally:
            task.cancel()
            await controller.stop()
            kube_source.use(None)
