"""The chart's interceptor: its own locked-down Deployment with a PDB, a proxy Service, an admin
port only the operator may reach, read-only RBAC derived from the code, and the operator told
where the admin endpoints are."""

from __future__ import annotations

from autoscaler.operator.rbac import required_rules
from tests.test_helm_chart import ROOT, granted, of_kind, render


def _named(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)


def test_interceptor_deployment_services_pdb_and_policy() -> None:
    docs = render({})
    dep = _named(docs, "Deployment", "surge-interceptor")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert dep["spec"]["replicas"] >= 2 and c["args"][0] == "interceptor"
    assert pod["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == "surge-interceptor"
    labels = dep["spec"]["selector"]["matchLabels"]
    operator = _named(docs, "Deployment", "surge")
    assert labels != operator["spec"]["selector"]["matchLabels"]  # the operator's PDB/Service never select it
    pdb = _named(docs, "PodDisruptionBudget", "surge-interceptor")
    assert pdb["spec"]["selector"]["matchLabels"] == labels and pdb["spec"]["minAvailable"] == 1
    proxy = _named(docs, "Service", "surge-interceptor-proxy")
    assert [p["targetPort"] for p in proxy["spec"]["ports"]] == ["proxy"]
    admin = _named(docs, "Service", "surge-interceptor-admin")
    assert [p["name"] for p in admin["spec"]["ports"]] == ["admin"]
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SURGE_INTERCEPTOR_ADMIN_SERVICE"] == "surge/surge-interceptor-admin"
    (policy,) = [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "surge-interceptor"]
    assert policy["spec"]["podSelector"]["matchLabels"] == labels
    open_rule, admin_rule = policy["spec"]["ingress"]
    assert "from" not in open_rule and [p["port"] for p in open_rule["ports"]] == ["proxy", "metrics"]
    assert admin_rule["from"] == [{"podSelector": {"matchLabels": operator["spec"]["selector"]["matchLabels"]}}]
    assert [p["port"] for p in admin_rule["ports"]] == ["admin"]


def test_interceptor_rbac_is_what_its_code_calls() -> None:
    docs = render({})
    role = _named(docs, "ClusterRole", "surge-interceptor")
    assert granted([role]) == required_rules(ROOT, {"interceptor"})
    assert all(r.verb in ("list", "watch") for r in granted([role]))


def test_tls_and_disabling() -> None:
    docs = render({"interceptor": {"tls": {"enabled": True, "secretName": "certs"}, "replicaCount": 3}})
    dep = _named(docs, "Deployment", "surge-interceptor")
    assert "--tls-port=8443" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "certs"
    off = render({"interceptor": {"enabled": False}})
    assert not [d for d in off if "interceptor" in d["metadata"]["name"]]
    env = {e["name"] for e in _named(off, "Deployment", "surge")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SURGE_INTERCEPTOR_ADMIN_SERVICE" not in env
