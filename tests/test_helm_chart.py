"""The Helm chart, rendered and linted by Helm's own engine, validated against Kubernetes' schemas,
its RBAC checked against the API calls in the code, its CRDs against the code's models."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from autoscaler.crds import CRDS, render_all
from autoscaler.operator.rbac import API_CALLS, CONTROLLER_SOURCES, Rule, calls_in, required_rules
from autoscaler.validate import validate_paths

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "surge"
VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0")
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "provisioner-only": {"controllers": {"autoscaler": {"enabled": False}, "provisioner": {"enabled": True}},
                         "aws": {"region": "us-east-1", "clusterName": "prod", "interruptionQueue": "prod-int"}},
    "everything": {"replicaCount": 3, "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
                   "grafanaDashboard": {"enabled": True},
                   "historyRedis": {"enabled": True, "existingSecret": "surge-redis"},
                   "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/surge"}},
                   "priorityClassName": "system-cluster-critical", "nodeSelector": {"kubernetes.io/os": "linux"},
                   "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                   "controllers": {"autoscaler": {"enabled": True}, "provisioner": {"enabled": True}}},
    "minimal": {"metricsService": {"enabled": False}, "podDisruptionBudget": {"enabled": False},
                "serviceAccount": {"create": False, "name": "existing"}, "replicaCount": 1,
                "networkPolicy": {"enabled": False}},
    # least privilege: Secrets in two namespaces only, /scale on one API group, /metrics behind
    # token review, egress restricted
    "narrowed": {"rbac": {"secretNamespaces": ["team-a", "team-b"], "scaleTargetApiGroups": ["argoproj.io"]},
                 "metrics": {"auth": "token-review", "bindAddress": "0.0.0.0"},
                 "networkPolicy": {"restrictEgress": True, "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": "monitoring"}}}],
                     "extraEgress": [{"ports": [{"port": 6379, "protocol": "TCP"}]}]}},
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = helm.Chart.load(str(CHART)).render(values, name="surge", namespace="surge", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_crd_files_are_generated_from_the_models() -> None:
    expected = render_all()
    on_disk = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert on_disk == expected, "run: python -m autoscaler.crds helm/surge/crds"


def test_crds_are_structural_enough_for_the_api_server() -> None:
    for name, text in render_all().items():
        crd = yaml.safe_load(text)
        kubernetes_validate.validate(crd, "1.30.0", strict=True)
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}, name
        _no_untyped_nodes(version["schema"]["openAPIV3Schema"], name)


def _no_untyped_nodes(schema: dict[str, Any], where: str) -> None:
    """Structural: every node has a type unless it preserves unknown fields or is int-or-string."""
    if not ({"type", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"} & schema.keys()):
        raise AssertionError(f"{where}: node without a type: {schema}")
    assert "anyOf" not in schema and "$ref" not in schema, where
    for name, child in (schema.get("properties") or {}).items():
        _no_untyped_nodes(child, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        _no_untyped_nodes(schema["items"], f"{where}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        _no_untyped_nodes(schema["additionalProperties"], f"{where}{{}}")


def test_scaledobject_printer_columns() -> None:
    crd = yaml.safe_load(render_all()["keda.sh_scaledobjects.yaml"])
    columns = {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["ScaleTargetName"] == ".spec.scaleTargetRef.name"
    assert columns["Min"] == ".spec.minReplicaCount" and columns["Max"] == ".spec.maxReplicaCount"
    assert "Ready" in columns and "Active" in columns
    assert crd["spec"]["names"]["shortNames"] == ["so"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_renders_lints_and_validates_on_every_supported_kubernetes(name: str) -> None:
    values = VALUE_SETS[name]
    lint = helm.lint(str(CHART), values, strict=True, kube_version="v1.30.0")
    assert lint["errors"] == [], lint
    docs = render(values)
    assert docs
    custom = []
    for doc in docs:
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                custom.append(doc["kind"])
                break
    assert set(custom) <= {"ServiceMonitor"}


def test_operator_pod_is_locked_down() -> None:
    dep = next(d for d in of_kind(render({}), "Deployment") if d["metadata"]["name"] == "surge")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert dep["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--controllers=autoscaler" in c["args"] and "--lease-namespace=surge" in c["args"]


@pytest.mark.parametrize(("values", "field"), [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"aws": {"region": "Mars-1"}}, "/aws/region"),
    ({"historyRedis": {"enabled": True}}, "/historyRedis/existingSecret"),
    ({"replicas": 2}, "replicas"),
    ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
    ({"metrics": {"auth": "basic"}}, "/metrics/auth"),
    ({"rbac": {"secretNamespaces": ["Not_A_Namespace"]}}, "/rbac/secretNamespaces/0"),
    ({"rbac": {"scaleTargetApiGroups": ["bad group"]}}, "/rbac/scaleTargetApiGroups/0"),
])
def test_bad_values_fail_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(helm.HelmError) as info:
        render(values)
    assert field in str(info.value)


# --- RBAC -----------------------------------------------------------------------------------------

def granted(docs: list[dict[str, Any]]) -> set[Rule]:
    """What the operator's ServiceAccount is granted (the metrics-reader role is for scrapers)."""
    out = set()
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        if role["metadata"]["name"].endswith("-metrics-reader"):
            continue
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        out.add(Rule(g, r, v))
    return out


def test_every_api_call_in_the_code_is_known() -> None:
    for controller in CONTROLLER_SOURCES:
        unknown = calls_in(ROOT, controller) - API_CALLS[controller].keys()
        assert not unknown, f"add these calls to autoscaler/operator/rbac.py: {sorted(unknown)}"
    assert "patch_namespaced_custom_object_status" in calls_in(ROOT, "autoscaler")


def test_chart_grants_exactly_what_the_code_calls() -> None:
    assert granted(render({})) == required_rules(ROOT, {"autoscaler"})


def test_disabled_controllers_get_no_permissions_and_no_aws_settings() -> None:
    docs = render(VALUE_SETS["provisioner-only"])
    assert [r["metadata"]["name"] for r in of_kind(docs, "ClusterRole")] == ["surge-provisioner"]
    assert granted(docs) == required_rules(ROOT, {"provisioner"}) | {
        Rule("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
    default = render({})
    env = {e["name"] for e in of_kind(default, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not any(n.startswith("AWS_") for n in env)
    assert not any(r.group.startswith("karpenter") or r.resource == "nodes" for r in granted(default))
    env_p = {e["name"] for e in of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"AWS_REGION", "SURGE_CLUSTER_NAME", "SURGE_INTERRUPTION_QUEUE"} <= env_p


def test_iam_policy_lists_the_provider_actions() -> None:
    policy = json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                        else s["Action"])}
    for needed in ("ec2:CreateFleet", "ec2:TerminateInstances", "ec2:DescribeSpotPriceHistory", "sqs:ReceiveMessage",
                   "sqs:DeleteMessage", "pricing:GetProducts", "ssm:GetParameter", "iam:PassRole"):
        assert needed in actions


# --- CRD schemas agree with `surge validate` on the compatibility manifests -----------------------

# Rejected by surge for reasons an OpenAPI schema cannot state (none among these manifests: 03's
# placeholder name would be refused by the API server's own name check, and its empty spec by the
# schema).
SEMANTIC: dict[str, str] = {}


def _as_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(schema)
    if s.pop("x-kubernetes-int-or-string", False):
        s["type"] = ["integer", "string"]
    if s.pop("nullable", False) and "type" in s:
        s["type"] = [s["type"], "null"] if isinstance(s["type"], str) else [*s["type"], "null"]
    if s.get("exclusiveMinimum") is True:
        s["exclusiveMinimum"] = s.pop("minimum")
    if s.get("exclusiveMaximum") is True:
        s["exclusiveMaximum"] = s.pop("maximum")
    s.pop("x-kubernetes-preserve-unknown-fields", None)
    for key in ("properties",):
        if key in s:
            s[key] = {k: _as_jsonschema(v) for k, v in s[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            s[key] = _as_jsonschema(s[key])
    return s


def test_crd_schemas_accept_and_reject_like_surge_validate() -> None:
    schemas = {c.kind: _as_jsonschema(yaml.safe_load(render_all()[f"{c.group}_{c.plural}.yaml"])["spec"]["versions"]
                                      [0]["schema"]["openAPIV3Schema"]) for c in CRDS}
    compat = ROOT / "tests" / "compat" / "manifests"
    checked = 0
    for path in sorted(compat.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        results = [r for r in validate_paths([path])]
        for doc, result in zip(docs, results, strict=True):
            if doc.get("kind") not in schemas:
                continue
            errors = list(jsonschema.Draft202012Validator(schemas[doc["kind"]]).iter_errors(doc))
            checked += 1
            if result.ok:
                assert not errors, f"{path.name}: surge accepts, CRD rejects: {errors[0].message}"
            elif path.name in SEMANTIC:
                assert not errors
            else:
                assert errors, f"{path.name}: surge rejects ({result.errors[0]}), the CRD schema accepts"
    assert checked >= 20


# --- least privilege ------------------------------------------------------------------------------

def operator_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "surge")


def test_narrowed_values_grant_exactly_the_calls_within_their_scope() -> None:
    docs = render(VALUE_SETS["narrowed"])
    wide = required_rules(ROOT, {"autoscaler", "metrics-auth"})
    expected = {r for r in wide if r.group != "*"} | {Rule("argoproj.io", "*/scale", v) for v in ("get", "patch")}
    assert granted(docs) == expected
    cluster_wide = {Rule(g, r, v) for role in of_kind(docs, "ClusterRole") for rule in role["rules"]
                    for g in rule.get("apiGroups", []) for r in rule["resources"] for v in rule["verbs"]}
    assert not any(r.resource == "secrets" for r in cluster_wide)
    assert not any(r.group == "*" for r in cluster_wide)
    secret_roles = [r for r in of_kind(docs, "Role") if r["metadata"]["name"] == "surge-secrets"]
    assert sorted(r["metadata"]["namespace"] for r in secret_roles) == ["team-a", "team-b"]
    bindings = {b["metadata"]["namespace"] for b in of_kind(docs, "RoleBinding")
                if b["roleRef"]["name"] == "surge-secrets"}
    assert bindings == {"team-a", "team-b"}
    (reader,) = [r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"] == "surge-metrics-reader"]
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    args = operator_deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--secret-namespaces=team-a,team-b", "--metrics-auth=token-review", "--bind-address=0.0.0.0"} <= set(args)
    (monitor,) = of_kind(render({**VALUE_SETS["narrowed"], "serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["bearerTokenFile"].endswith("serviceaccount/token")


def test_defaults_keep_kedas_reach_but_no_token_review_rights() -> None:
    docs = render({})
    rules = granted(docs)
    assert Rule("", "secrets", "watch") in rules and Rule("*", "*/scale", "patch") in rules
    assert not any(r.group.startswith("authentication") for r in rules)
    args = operator_deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--metrics-auth=none" in args and not any(a.startswith("--secret-namespaces") for a in args)


def test_network_policy_and_memory_backed_tmp() -> None:
    def operator_policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "surge-operator"]

    docs = render(VALUE_SETS["narrowed"])
    (policy,) = operator_policies(docs)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 443, 6443, 6379}
    assert operator_policies(render({}))[0]["spec"]["policyTypes"] == ["Ingress"]
    assert operator_policies(render(VALUE_SETS["minimal"])) == []
    pod = operator_deployment(docs)["spec"]["template"]["spec"]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}


def test_docker_image_is_pinned_and_installs_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms and all("@sha256:" in f and len(f.split("@sha256:")[1]) == 64 for f in froms), froms
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    pins = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert pins and all("==" in p for p in pins)
    assert lock.count("--hash=sha256:") >= len(pins)
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements-dev.lock" in setup and "WARNING" in setup


def test_lock_staleness_is_detected_from_pyprojects_dependencies(tmp_path: Path) -> None:
    import subprocess
    import sys

    def digest(pyproject: Path) -> str:
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "deps_digest.py"), str(pyproject)],
                              capture_output=True, text=True, check=True).stdout.strip()

    lock = (ROOT / "requirements-dev.lock").read_text()
    recorded = next(line.split(": ")[1] for line in lock.splitlines() if "pyproject-dependencies-sha256" in line)
    assert len(recorded) == 64
    text = (ROOT / "pyproject.toml").read_text()
    same, more = tmp_path / "same.toml", tmp_path / "more.toml"
    same.write_text(text.replace('description = "', 'description = "Edited: '))  # not a dependency change
    more.write_text(text.replace('dependencies = [\n', 'dependencies = [\n  "left-pad>=1",\n', 1))
    assert digest(same) == digest(ROOT / "pyproject.toml") != digest(more)


def test_dashboard_configmap_queries_only_metrics_surge_exports() -> None:
    """The shipped dashboard parses, and every metric its panels query is one the operator registers."""
    import re

    from prometheus_client import CollectorRegistry

    from autoscaler.cost.exporter import CostCollector
    from autoscaler.operator.metrics import Metrics
    from provisioner.metrics import ProvisionerMetrics

    assert of_kind(render({}), "ConfigMap") == []
    (cm,) = of_kind(render({"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}), "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["surge-cost.json"])
    assert dash["uid"] == "surge-cost" and len(dash["panels"]) >= 8
    registry = CollectorRegistry()
    Metrics(registry)
    ProvisionerMetrics(registry)
    registry.register(CostCollector(lambda: (), lambda: (), dict, lambda *a: (None, None), lambda t: None, lambda: 0))
    families = list(registry.collect())  # labelled counters have no samples yet: their series end in _total
    exported = {f.name for f in families} | {f"{f.name}_total" for f in families if f.type == "counter"}
    queried = {m for p in dash["panels"] for t in p["targets"]
               for m in re.findall(r"\b((?:surge|node|kubecost|container|keda)_[a-z_]+)\b", t["expr"])}
    assert queried and queried <= exported, queried - exported
    (sm,) = of_kind(render({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True
