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
# method (as written in the code) → rules. The watch on ScaledObjects is list + watch.
API_CALLS: dict[str, tuple[Rule, ...]] = {
    "list_cluster_custom_object": _rules(KEDA, "scaledobjects triggerauthentications clustertriggerauthentications",
                                         "list watch"),
    # re-reading changed credentials needs list + watch on Secrets, as KEDA's default install has
    "list_secret_for_all_namespaces": _rules("", "secrets", "list watch"),
    "list_{APPS_SCALE[kind]}_for_all_namespaces": _rules("apps", "deployments statefulsets", "list watch"),
    "get_namespaced_custom_object": _rules(KEDA, "scaledobjects triggerauthentications", "get"),
    "get_cluster_custom_object": _rules(KEDA, "clustertriggerauthentications", "get"),
    "patch_namespaced_custom_object_status": _rules(KEDA, "scaledobjects/status", "patch"),
    "read_namespaced_secret": _rules("", "secrets", "get"),
    "read_namespaced_{APPS_SCALE[kind]}": _rules("apps", "deployments statefulsets", "get"),
    "read_namespaced_{APPS_SCALE[kind]}_scale": _rules("apps", "deployments/scale statefulsets/scale", "get"),
    "patch_namespaced_{APPS_SCALE[kind]}_scale": _rules("apps", "deployments/scale statefulsets/scale", "patch"),
    # any custom resource with a scale subresource may be a target (as with KEDA)
    "get_namespaced_custom_object_scale": _rules("*", "*/scale", "get"),
    "patch_namespaced_custom_object_scale": _rules("*", "*/scale", "patch"),
    "create_namespaced_event": _rules("", "events", "create"),
    "read_namespaced_lease": _rules("coordination.k8s.io", "leases", "get"),
    "create_namespaced_lease": _rules("coordination.k8s.io", "leases", "create"),
    "replace_namespaced_lease": _rules("coordination.k8s.io", "leases", "update"),
}

# Source files of each controller. The provisioner controller does not exist yet: enabling it in
# the chart grants nothing until its code (and its entries above) land.
CONTROLLER_SOURCES: dict[str, tuple[str, ...]] = {
    "autoscaler": ("autoscaler/operator/kube.py", "autoscaler/operator/controller.py",
                   "autoscaler/operator/leader.py"),
    "provisioner": (),
}
LEASE_RULES = {r for r in API_CALLS["read_namespaced_lease"] + API_CALLS["create_namespaced_lease"]
               + API_CALLS["replace_namespaced_lease"]}

_CALL = re.compile(r"\b((?:list|read|get|patch|create|replace|delete)_(?:namespaced|cluster)_"
                   r"(?:[a-z_]|\{[^}]+\})+|list_(?:[a-z_]|\{[^}]+\})+_for_all_namespaces)")


def calls_in(root: Path, controller: str) -> set[str]:
    found: set[str] = set()
    for rel in CONTROLLER_SOURCES[controller]:
        found.update(m.rstrip("_") for m in _CALL.findall((root / rel).read_text()))
    return found


def required_rules(root: Path, controllers: set[str]) -> set[Rule]:
    rules: set[Rule] = set()
    for c in controllers:
        for call in calls_in(root, c):
            rules.update(API_CALLS[call])
    return rules
