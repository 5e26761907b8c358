"""The Kubernetes calls the provisioning controller makes, and nothing else (RBAC follows from here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from provisioner.watch import Watcher

KARPENTER = ("karpenter.sh", "v1")
AWS_CLASSES = ("karpenter.k8s.aws", "v1", "ec2nodeclasses")


class ProvisionerKube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        listed = self.custom.list_cluster_custom_object
        self.watchers = {"pods": Watcher(self.core.list_pod_for_all_namespaces), "nodes": Watcher(self.core.list_node),
                         "nodeclaims": Watcher(listed, *KARPENTER, "nodeclaims"),
                         "nodepools": Watcher(listed, *KARPENTER, "nodepools"),
                         "ec2nodeclasses": Watcher(listed, *AWS_CLASSES)}

    # --- watches (provisioner.watch: list, SYNCED, then watch; the same helper as the autoscaler's) -----
    def watch_pods(self) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["pods"].events()

    def watch_nodes(self) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["nodes"].events()

    def watch_nodeclaims(self) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["nodeclaims"].events()

    def watch_nodepools(self) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["nodepools"].events()

    def watch_nodeclasses(self) -> AsyncIterator[dict[str, Any]]:
        return self.watchers["ec2nodeclasses"].events()

    # --- NodeClaims ------------------------------------------------------------------------------------
    async def create_nodeclaim(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self.custom.create_cluster_custom_object(*KARPENTER, "nodeclaims", body)
        return created

    async def patch_nodeclaim(self, name: str, patch: dict[str, Any]) -> None:
        await self.custom.patch_cluster_custom_object(*KARPENTER, "nodeclaims", name, patch)

    async def patch_nodeclaim_status(self, name: str, status: dict[str, Any]) -> None:
        await self.custom.patch_cluster_custom_object_status(*KARPENTER, "nodeclaims", name, {"status": status})

    async def delete_nodeclaim(self, name: str) -> None:
        try:
            await self.custom.delete_cluster_custom_object(*KARPENTER, "nodeclaims", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def pod_template(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        """The pod template of a Deployment or StatefulSet (what the pods it is about to add need)."""
        reader: Any = {"Deployment": self.apps.read_namespaced_deployment,
                  "StatefulSet": self.apps.read_namespaced_stateful_set}.get(kind)
        if reader is None:
            return None
        obj = await reader(name, namespace)
        template: dict[str, Any] = self.api.sanitize_for_serialization(obj.spec.template) or {}
        return template

    async def read_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """A Deployment as a plain dict (replicas, annotations, resourceVersion for the next patch)."""
        obj = await self.apps.read_namespaced_deployment(name, namespace)
        body: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return body

    async def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """One patch of replicas and the handover annotation together (with metadata.resourceVersion:
        refused with 409 when the Deployment changed since it was read)."""
        await self.apps.patch_namespaced_deployment(name, namespace, patch)

    # --- Nodes and pods --------------------------------------------------------------------------------
    async def patch_node(self, name: str, patch: dict[str, Any]) -> None:
        await self.core.patch_node(name, patch)

    async def delete_node(self, name: str) -> None:
        try:
            await self.core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def patch_pod(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:
            await self.core.patch_namespaced_pod(name, namespace, patch, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:  # gone meanwhile: nothing to annotate
                raise

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Past a node's terminationGracePeriod, pods go whatever their budgets say."""
        try:
            await self.core.delete_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def patch_nodepool_status(self, name: str, status: dict[str, Any]) -> None:
        await self.custom.patch_cluster_custom_object_status(*KARPENTER, "nodepools", name, {"status": status})

    async def evict(self, namespace: str, name: str) -> bool:
        """Evict through the Eviction API, so PodDisruptionBudgets are honoured; False when a
        budget refuses it now (429)."""
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        try:
            await self.core.create_namespaced_pod_eviction(name, namespace, body)
        except ApiException as exc:
            if exc.status == 429:
                return False
            if exc.status != 404:
                raise
        return True

    async def event(self, obj: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        now = datetime.now(UTC)
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or "default"
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'surge')}.", namespace=ns),
            involved_object=client.V1ObjectReference(api_version=obj.get("apiVersion"), kind=obj.get("kind"),
                                                     name=meta.get("name"), namespace=meta.get("namespace"),
                                                     uid=meta.get("uid")),
            reason=reason, message=message, type="Warning" if warning else "Normal",
            first_timestamp=now, last_timestamp=now, count=1,
            source=client.V1EventSource(component="surge-provisioner"))
        await self.core.create_namespaced_event(ns, body)
