"""The operator resolves authentication as KEDA does: a ClusterTriggerAuthentication's Secrets come
from the cluster object namespace (KEDA_CLUSTER_OBJECT_NAMESPACE), a TriggerAuthentication's from
the ScaledObject's own namespace; podIdentity fields reach the scaler."""

from __future__ import annotations

import base64
from pathlib import Path

from kubernetes_asyncio import client

from autoscaler.manifests.keda import AuthenticationRef, ScaleTrigger, cluster_object_namespace
from autoscaler.operator.controller import Invalid, ScaledObjectController
from autoscaler.operator.kube import Kube
from tests.k8s.fixture import K8s


def secret(ns: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
            "data": {"password": base64.b64encode(value.encode()).decode()}}


async def test_cluster_trigger_authentication_reads_the_operator_namespace(k8s_api: K8s) -> None:
    em = k8s_api.emulator
    em.put("v1", "secrets", secret("jobs", "from-jobs"))
    em.put("v1", "secrets", secret("surge-system", "from-surge-system"))
    ref = {"secretTargetRef": [{"parameter": "password", "name": "creds", "key": "password"}],
           "podIdentity": {"provider": "aws", "roleArn": "arn:aws:iam::1:role/r", "externalID": "x"}}
    em.put("keda.sh/v1alpha1", "clustertriggerauthentications", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication", "metadata": {"name": "cta"},
        "spec": ref})
    em.put("keda.sh/v1alpha1", "triggerauthentications", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
        "metadata": {"name": "ta", "namespace": "jobs"}, "spec": ref})
    async with client.ApiClient(k8s_api.configuration) as api:
        controller = ScaledObjectController(Kube(api), cluster_namespace="surge-system")
        cluster = ScaleTrigger(type="redis", authenticationRef=AuthenticationRef(
            name="cta", kind="ClusterTriggerAuthentication"))
        params, provider, identity = await controller._auth(("jobs", "so"), cluster)
        assert params == {"password": "from-surge-system"}
        assert provider == "aws" and identity == {"roleArn": "arn:aws:iam::1:role/r", "externalID": "x"}
        namespaced = ScaleTrigger(type="redis", authenticationRef=AuthenticationRef(name="ta"))
        params, _, _ = await controller._auth(("jobs", "so"), namespaced)
        assert params == {"password": "from-jobs"}
        elsewhere = ScaledObjectController(Kube(api), cluster_namespace="keda")
        try:
            await elsewhere._auth(("jobs", "so"), cluster)
        except Invalid as exc:
            assert exc.reason == "SecretNotFound" and "'keda'" in str(exc)
        else:
            raise AssertionError("the Secret is not in namespace keda")


def test_cluster_object_namespace_is_configurable(tmp_path: Path) -> None:
    sa = tmp_path / "namespace"
    assert cluster_object_namespace({"KEDA_CLUSTER_OBJECT_NAMESPACE": "ops"}, sa) == "ops"
    sa.write_text("surge\n")
    assert cluster_object_namespace({}, sa) == "surge"
