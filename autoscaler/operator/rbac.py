"""The Kubernetes permissions each controller needs, derived from the API calls in its code.

`API_CALLS` maps every kubernetes-asyncio method the operator calls (as spelled in the source,
including the f-string ones that pick Deployments or StatefulSets) to the RBAC rules it needs.
`calls_in()` scans the source; a test fails when the code calls a method this table does not
know, and another checks that the chart grants exactly the union for the enabled controllers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Rule:
    group: str
    resource: str
    verb: str


def _rules(group: str, resources: str, verbs: str) -> tuple[Rule, ...]:
    return tuple(Rule(group, r, v) for r in resources.split() for v in verbs.split())


KEDA = "keda.sh"
HTTP = "http.keda.sh"
KARPENTER = "karpenter.sh"
# what the interceptor and the operator's HTTP controller follow (autoscaler/interceptor/kube.py)
HTTP_WATCHES = {
    "list_cluster_custom_object": _rules(HTTP, "httpscaledobjects interceptorroutes", "list watch"),
    "list_namespaced_custom_object": _rules(HTTP, "httpscaledobjects interceptorroutes", "list watch"),
    "list_service_for_all_namespaces": _rules("", "services", "list watch"),
    "list_namespaced_service": _rules("", "services", "list watch"),
    "list_endpoint_slice_for_all_namespaces": _rules("discovery.k8s.io", "endpointslices", "list watch"),
    "list_namespaced_endpoint_slice": _rules("discovery.k8s.io", "endpointslices", "list watch"),
}
LEASES = {
    "read_namespaced_lease": _rules("coordination.k8s.io", "leases", "get"),
    "create_namespaced_lease": _rules("coordination.k8s.io", "leases", "create"),
    "replace_namespaced_lease": _rules("coordination.k8s.io", "leases", "update"),
}
# controller → method (as written in the code) → rules. A watch is list + watch.
API_CALLS: dict[str, dict[str, tuple[Rule, ...]]] = {
    "autoscaler": {
        **HTTP_WATCHES,
        "list_cluster_custom_object": _rules(KEDA, "scaledobjects triggerauthentications "
                                             "clustertriggerauthentications", "list watch")
        + HTTP_WATCHES["list_cluster_custom_object"],
        # re-reading changed credentials needs list + watch on Secrets, as KEDA's default install has
        "list_secret_for_all_namespaces": _rules("", "secrets", "list watch"),
        # with rbac.secretNamespaces, the same per namespace (a Role in each, no ClusterRole rule)
        "list_namespaced_secret": _rules("", "secrets", "list watch"),
        "list_deployment_for_all_namespaces": _rules("apps", "deployments", "list watch"),
        "list_stateful_set_for_all_namespaces": _rules("apps", "statefulsets", "list watch"),
        "get_namespaced_custom_object": _rules(KEDA, "scaledobjects triggerauthentications", "get"),
        # the ScaledObjects HTTPScaledObjects own, as the add-on's operator writes them
        "create_namespaced_custom_object": _rules(KEDA, "scaledobjects", "create"),
        "patch_namespaced_custom_object": _rules(KEDA, "scaledobjects", "patch"),
        "delete_namespaced_custom_object": _rules(KEDA, "scaledobjects", "delete"),
        "get_cluster_custom_object": _rules(KEDA, "clustertriggerauthentications", "get"),
        "patch_namespaced_custom_object_status": _rules(KEDA, "scaledobjects/status", "patch")
        + _rules(HTTP, "httpscaledobjects/status interceptorroutes/status", "patch"),
        "read_namespaced_secret": _rules("", "secrets", "get"),
        "read_namespaced_{APPS_SCALE[kind]}": _rules("apps", "deployments statefulsets", "get"),
        "read_namespaced_{APPS_SCALE[kind]}_scale": _rules("apps", "deployments/scale statefulsets/scale", "get"),
        "patch_namespaced_{APPS_SCALE[kind]}_scale": _rules("apps", "deployments/scale statefulsets/scale", "patch"),
        # any custom resource with a scale subresource may be a target (as with KEDA)
        "get_namespaced_custom_object_scale": _rules("*", "*/scale", "get"),
        "patch_namespaced_custom_object_scale": _rules("*", "*/scale", "patch"),
        "create_namespaced_event": _rules("", "events", "create"),
        # cpu, memory and kubernetes-workload triggers (scalers/kube_source.py): the target's pods and
        # their metrics.k8s.io usage
        "list_namespaced_pod": _rules("", "pods", "list"),
        "list_namespaced_custom_object": HTTP_WATCHES["list_namespaced_custom_object"]
        + _rules("metrics.k8s.io", "pods", "list"),
        "read_namespaced_{_APPS[kind]}": _rules("apps", "deployments statefulsets", "get"),
        **LEASES,
    },
    # /metrics behind token review (metrics.auth: token-review), as kube-rbac-proxy does it
    "metrics-auth": {
        "create_token_review": _rules("authentication.k8s.io", "tokenreviews", "create"),
        "create_subject_access_review": _rules("authorization.k8s.io", "subjectaccessreviews", "create"),
    },
    "provisioner": {
        "list_pod_for_all_namespaces": _rules("", "pods", "list watch"),
        "list_node": _rules("", "nodes", "list watch"),
        "patch_node": _rules("", "nodes", "patch"),
        "delete_node": _rules("", "nodes", "delete"),
        "create_namespaced_pod_eviction": _rules("", "pods/eviction", "create"),
        "list_cluster_custom_object": _rules(KARPENTER, "nodeclaims nodepools", "list watch")
        + _rules("karpenter.k8s.aws", "ec2nodeclasses", "list watch"),
        "create_cluster_custom_object": _rules(KARPENTER, "nodeclaims", "create"),
        "patch_cluster_custom_object": _rules(KARPENTER, "nodeclaims", "patch"),
        "patch_cluster_custom_object_status": _rules(KARPENTER, "nodeclaims/status nodepools/status", "patch"),
        "delete_namespaced_pod": _rules("", "pods", "delete"),
        # controller.pod-deletion-cost on ReplicaSet pods: the cheapest node's pods go first on scale-in
        "patch_namespaced_pod": _rules("", "pods", "patch"),
        "delete_cluster_custom_object": _rules(KARPENTER, "nodeclaims", "delete"),
        "read_namespaced_deployment": _rules("apps", "deployments", "get"),
        # make-before-break drains: replicas + the surge.sh/handover annotation in one patch
        "patch_namespaced_deployment": _rules("apps", "deployments", "patch"),
        "read_namespaced_stateful_set": _rules("apps", "statefulsets", "get"),
        "create_namespaced_event": _rules("", "events", "create"),
        **LEASES,
    },
    "interceptor": HTTP_WATCHES,
}

# Source files of each controller.
CONTROLLER_SOURCES: dict[str, tuple[str, ...]] = {
    "autoscaler": ("autoscaler/operator/kube.py", "autoscaler/operator/controller.py",
                   "autoscaler/operator/leader.py", "autoscaler/interceptor/kube.py",
                   "autoscaler/interceptor/operator.py", "scalers/kube_source.py"),
    "interceptor": ("autoscaler/interceptor/kube.py", "autoscaler/interceptor/main.py",
                    "autoscaler/interceptor/proxy.py"),
    "provisioner": ("provisioner/kube.py", "provisioner/controller.py", "autoscaler/operator/leader.py"),
    "metrics-auth": ("autoscaler/operator/metrics_auth.py",),
}
LEASE_RULES = {r for rules in LEASES.values() for r in rules}

_CALL = re.compile(r"\b((?:list|read|get|patch|create|replace|delete)_(?:namespaced|cluster)_"
                   r"(?:[a-z_]|\{[^}]+\})+|list_(?:[a-z_]|\{[^}]+\})+_for_all_namespaces"
                   r"|(?:list|patch|delete)_node\b|create_(?:token|subject_access)_review\b)")


def calls_in(root: Path, controller: str) -> set[str]:
    found: set[str] = set()
    for rel in CONTROLLER_SOURCES[controller]:
        found.update(m.rstrip("_") for m in _CALL.findall((root / rel).read_text()))
    return found


def required_rules(root: Path, controllers: set[str]) -> set[Rule]:
    rules: set[Rule] = set()
    for c in controllers:
        for call in calls_in(root, c):
            rules.update(API_CALLS[c][call])
    return rules
