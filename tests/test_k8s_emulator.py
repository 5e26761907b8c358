"""The API emulator answers the real kubernetes-asyncio client as a kube-apiserver would."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8s.fixture import K8s

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}}}


async def test_crud_scale_status_and_conflicts(k8s_api: K8s) -> None:
    k8s_api.emulator.put("apps/v1", "deployments", DEPLOYMENT)
    async with client.ApiClient(k8s_api.configuration) as api:
        apps = client.AppsV1Api(api)
        scale = await apps.read_namespaced_deployment_scale("web", "default")
        assert scale.spec.replicas == 1 and scale.status.selector == "app=web"
        await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
        dep = await apps.read_namespaced_deployment("web", "default")
        assert dep.spec.replicas == 4 and dep.metadata.generation == 2
        stale = dep.metadata.resource_version
        await apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "1"}}})
        with pytest.raises(ApiException) as err:
            await apps.patch_namespaced_deployment("web", "default", {"metadata": {"resourceVersion": stale,
                                                                                   "labels": {"x": "2"}}})
        assert err.value.status == 409
        custom = client.CustomObjectsApi(api)
        so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "so"}, "spec": {"a": 1}}
        await custom.create_namespaced_custom_object("keda.sh", "v1alpha1", "default", "scaledobjects", so)
        await custom.patch_namespaced_custom_object_status("keda.sh", "v1alpha1", "default", "scaledobjects", "so",
                                                           {"status": {"conditions": [{"type": "Ready"}]}})
        got = await custom.get_namespaced_custom_object("keda.sh", "v1alpha1", "default", "scaledobjects", "so")
        assert got["status"]["conditions"][0]["type"] == "Ready" and got["spec"] == {"a": 1}
        with pytest.raises(ApiException) as missing:
            await custom.get_namespaced_custom_object("keda.sh", "v1alpha1", "default", "scaledobjects", "nope")
        assert missing.value.status == 404


async def test_watch_streams_changes(k8s_api: K8s) -> None:
    async with client.ApiClient(k8s_api.configuration) as api:
        custom = client.CustomObjectsApi(api)
        seen: list[tuple[str, str]] = []

        async def follow() -> None:
            w = watch.Watch()
            async for event in w.stream(custom.list_namespaced_custom_object, "keda.sh", "v1alpha1", "default",
                                        "scaledobjects", timeout_seconds=2):
                seen.append((event["type"], event["object"]["metadata"]["name"]))
                if len(seen) == 3:
                    w.stop()

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        body = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "a"}, "spec": {}}
        await custom.create_namespaced_custom_object("keda.sh", "v1alpha1", "default", "scaledobjects", body)
        await custom.patch_namespaced_custom_object("keda.sh", "v1alpha1", "default", "scaledobjects", "a",
                                                    {"spec": {"x": 1}})
        await custom.delete_namespaced_custom_object("keda.sh", "v1alpha1", "default", "scaledobjects", "a")
        await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
