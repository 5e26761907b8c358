"""Manifest models: KEDA's defaults and validation rules, and the real manifests from KEDA's docs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from autoscaler.manifests.http import HTTPScaledObject
from autoscaler.manifests.keda import ScaledObject, duration_seconds, formula_identifiers
from autoscaler.manifests.loader import Document
from autoscaler.validate import validate_documents, validate_paths
from tests.fixtures.conformance import MANIFESTS

# 03 is a template too: its name `{cluster-trigger-authentication-name}` is a YAML mapping, which
# Kubernetes itself rejects (metadata.name must be a string). See docs/compatibility.md.
TEMPLATES = {"01-scaledobject-spec-reference.yaml", "02-triggerauthentication-spec-reference.yaml",
             "03-clustertriggerauthentication.yaml"}

BASE: dict[str, Any] = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "worker", "namespace": "jobs"},
    "spec": {"scaleTargetRef": {"name": "worker"},
             "triggers": [{"type": "redis", "name": "q", "metadata": {"address": "r:6379", "listName": "jobs"}}]},
}


def so(**spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(spec)
    return doc


def errors_of(doc: dict[str, Any]) -> list[tuple[str, str]]:
    [result] = validate_documents([Document("x.yaml", 0, doc)])
    return [(e.field, e.message) for e in result.errors]


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_documented_manifests(path: Path) -> None:
    results = validate_paths([path])
    assert results, "no objects read"
    ok = all(r.ok for r in results)
    assert ok is (path.name not in TEMPLATES), [(r.kind, r.errors) for r in results]
    if not ok:
        assert all(e.field and e.field != "(document)" for r in results for e in r.errors)
        assert any(e.field == "metadata.name" for r in results for e in r.errors)


def test_defaults_are_kedas() -> None:
    obj = ScaledObject.model_validate(so())
    s = obj.spec
    assert (s.polling_interval, s.cooldown_period, s.initial_cooldown_period) == (30, 300, 0)
    assert (s.min_replica_count, s.max_replica_count, s.idle_replica_count) == (0, 100, None)
    assert (s.scale_target_ref.api_version, s.scale_target_ref.kind) == ("apps/v1", "Deployment")
    assert s.triggers[0].metric_type is None and s.advanced is None
    # round trip keeps KEDA's spelling
    assert obj.model_dump(by_alias=True, exclude_none=True)["spec"]["scaleTargetRef"]["name"] == "worker"


CRON = {"type": "cron", "metadata": {"timezone": "UTC", "start": "0 * * * *", "end": "1 * * * *",
                                     "desiredReplicas": "1"}}


@pytest.mark.parametrize(("spec", "field", "fragment"), [
    ({"minReplicaCount": 5, "maxReplicaCount": 2}, "spec.minReplicaCount", "must be less than or equal to max"),
    ({"minReplicaCount": 1, "idleReplicaCount": 1}, "spec.idleReplicaCount", "IdleReplicaCount=1 must be less than"),
    ({"idleReplicaCount": 0}, "spec.idleReplicaCount", "IdleReplicaCount=0 must be less than MinReplicaCount=0"),
    ({"maxReplicaCount": 0}, "spec.maxReplicaCount", "greater than or equal to 1"),
    ({"triggers": [{"type": "redis", "name": "a", "metadata": {}}, {"type": "cron", "name": "a", "metadata": {}}]},
     "spec.triggers[1].name", "'a' is defined multiple times"),
    ({"triggers": []}, "spec.triggers", "at least 1"),
    ({"triggers": [{"type": "", "metadata": {}}]}, "spec.triggers[0].type", "at least 1 character"),
    ({"scaleTargetRef": {"name": ""}}, "spec.scaleTargetRef.name", "at least 1 character"),
    ({"triggers": [CRON | {"useCachedMetrics": True}]}, "spec.triggers[0].useCachedMetrics", "not supported"),
    ({"pollingInterval": 0}, "spec.pollingInterval", "greater than or equal to 1"),
    ({"minReplicaCount": 1, "fallback": {"failureThreshold": 3, "replicas": 2},
      "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}]},
     "spec.fallback", "at least one trigger (that is not cpu or memory)"),
    ({"fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "scalingModifiers"}},
     "spec.fallback.behavior", "requires advanced.scalingModifiers.formula"),
    ({"triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}]},
     "spec.minReplicaCount", "scale to zero"),
    ({"triggers": [{"type": "redis", "metadata": {"listLength": 5}}]}, "spec.triggers[0].metadata.listLength",
     "quote it in YAML"),
    ({"advanced": {"scalingModifiers": {"formula": "q + other", "target": "2"}}},
     "spec.advanced.scalingModifiers.formula", "['other']"),
    ({"advanced": {"scalingModifiers": {"formula": "q + (", "target": "2"}}},
     "spec.advanced.scalingModifiers.formula", "end of formula"),
    ({"minReplicaCount": 1, "advanced": {"scalingModifiers": {"formula": "q + c", "target": "2"}},
      "triggers": [{"type": "redis", "name": "q", "metadata": {"address": "r:1", "listName": "l"}},
                   {"type": "cpu", "name": "c", "metricType": "Utilization", "metadata": {"value": "50"}}]},
     "spec.advanced.scalingModifiers.formula", "refers to ['c']"),
    ({"advanced": {"scalingModifiers": {"formula": "q * 2"}}}, "spec.advanced.scalingModifiers.target",
     "target is empty"),
    ({"advanced": {"scalingModifiers": {"target": "2"}}}, "spec.advanced.scalingModifiers.formula", "mandatory"),
    ({"advanced": {"predictive": {"mode": "on", "quantile": 1.5}}}, "spec.advanced.predictive.quantile", "less than 1"),
    ({"advanced": {"predictive": {"mode": "on", "horizon": "soon"}}}, "spec.advanced.predictive.horizon",
     "duration"),
    ({"advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"selectPolicy": "Avg"}}}}},
     "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.selectPolicy", "'Max', 'Min' or 'Disabled'"),
    ({"advanced": {"horizontalPodAutoscalerConfig": {"name": "h" * 64}}},
     "spec.advanced.horizontalPodAutoscalerConfig.name", "must be no more than 63"),
])
def test_rules_name_the_field(spec: dict[str, Any], field: str, fragment: str) -> None:
    errs = errors_of(so(**spec))
    assert any(f == field and fragment in m for f, m in errs), errs


def test_pause_annotations() -> None:
    doc = so()
    doc["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": "3",
                                      "autoscaling.keda.sh/paused-scale-in": "true"}
    obj = ScaledObject.model_validate(doc)
    assert (obj.paused_replicas, obj.paused_scale_in, obj.paused_scale_out, obj.paused) == (3, True, False, False)
    doc["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": "three"}
    assert any("paused-replicas" in f or "paused-replicas" in m for f, m in errors_of(doc))


def test_trigger_metadata_is_checked_by_the_scaler() -> None:
    doc = so(triggers=[{"type": "kafka", "metadata": {"bootstrapServers": "k:9092", "consumerGroup": "g",
                                                      "lagThreshold": "0"}}])
    assert errors_of(doc) == [("spec.triggers[0].metadata.lagThreshold", "got 0, expected a positive number")]


def test_values_from_env_and_unseen_auth_are_assumed_supplied() -> None:
    doc = so(triggers=[{"type": "redis", "metadata": {"addressFromEnv": "REDIS_ADDR", "listName": "l"}},
                       {"type": "prometheus", "authenticationRef": {"name": "elsewhere"},
                        "metadata": {"serverAddress": "http://p:9090", "query": "up", "threshold": "1",
                                     "authModes": "bearer"}}])
    [result] = validate_documents([Document("x.yaml", 0, doc)])
    assert result.ok, result.errors
    assert any("'elsewhere'" in w for w in result.warnings)


def test_auth_values_come_from_secrets_in_the_same_files() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "jobs"},
              "stringData": {"mode": "sideways"}}
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "a", "namespace": "jobs"},
            "spec": {"secretTargetRef": [{"parameter": "sasl", "name": "s", "key": "mode"}]}}
    doc = so(triggers=[{"type": "kafka", "authenticationRef": {"name": "a"},
                        "metadata": {"bootstrapServers": "k:9092", "consumerGroup": "g"}}])
    results = validate_documents([Document("x.yaml", i, d) for i, d in enumerate((secret, auth, doc))])
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].errors[0].field == "spec.triggers[0].authentication.sasl"


def test_unknown_trigger_type_and_unknown_fields_are_warnings() -> None:
    doc = so(triggers=[{"type": "activemq", "metadata": {"destinationName": "q"}}], surprise=True)
    [result] = validate_documents([Document("x.yaml", 0, doc)])
    assert result.ok
    assert any("'activemq' is not implemented" in w for w in result.warnings)
    assert any(w.startswith("spec.surprise: unknown field") for w in result.warnings)


def test_http_scaled_object_defaults_and_rules() -> None:
    raw = yaml.safe_load((MANIFESTS / "17-httpscaledobject-reference.yaml").read_text())
    obj = HTTPScaledObject.model_validate(raw)
    assert (obj.spec.replicas.min, obj.spec.replicas.max, obj.spec.scaledown_period) == (0, 10, 300)
    assert obj.spec.metric.concurrency is not None and obj.spec.metric.concurrency.target_value == 100
    raw["spec"]["replicas"] = {"min": 5, "max": 1}
    with pytest.raises(ValidationError, match=r"replicas\.min=5"):
        HTTPScaledObject.model_validate(raw)


def test_helpers() -> None:
    assert duration_seconds("1h30m") == 5400 and duration_seconds("250ms") == 0.25
    assert formula_identifiers("min(queue_a, 2) + (b ?? 0) > 3 ? ceil(c / 2) : \"x\"") == ["queue_a", "b", "c"]


@given(st.integers(0, 1000), st.integers(1, 1000))
def test_min_max_property(low: int, high: int) -> None:
    ok = not errors_of(so(minReplicaCount=low, maxReplicaCount=high))
    assert ok is (low <= high)


@pytest.mark.parametrize("spec", [
    {"minReplicaCount": 0, "idleReplicaCount": 0},  # KEDA compares idle with the HPA minimum (1)
    {"fallback": {"failureThreshold": 3, "replicas": 2},
     "triggers": [{"type": "redis", "metricType": "Value", "metadata": {"address": "r:1", "listName": "l"}}]},
    {"fallback": {"failureThreshold": 3, "replicas": 2},
     "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
                  {"type": "redis", "metadata": {"address": "r:1", "listName": "l"}}]},
    {"fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "scalingModifiers"},
     "advanced": {"scalingModifiers": {"formula": "q ?? 5", "target": "2"}}},
    {"advanced": {"scalingModifiers": {"formula": "float(q < 5 ? q : 5)", "target": "2"}}},
])
def test_what_keda_admits(spec: dict[str, Any]) -> None:
    assert errors_of(so(**spec)) == []


def test_two_scaled_objects_on_one_target_in_the_same_files() -> None:
    first, second = so(), so()
    second["metadata"]["name"] = "other"
    results = validate_documents([Document("x.yaml", 0, first), Document("x.yaml", 1, second)])
    assert [r.ok for r in results] == [False, False]
    assert "already managed by the ScaledObject 'other'" in results[0].errors[0].message
    assert results[0].errors[0].field == "spec.scaleTargetRef.name"


def test_admission_warnings() -> None:
    [result] = validate_documents([Document("x.yaml", 0, so(minReplicaCount=1, pollingInterval=10,
                                                               cooldownPeriod=60))])
    assert result.ok
    assert any(w.startswith("spec.pollingInterval: PollingInterval is configured but is not relevant")
               for w in result.warnings)
    assert any(w.startswith("spec.cooldownPeriod: CooldownPeriod is configured") for w in result.warnings)
    [quiet] = validate_documents([Document("x.yaml", 0, so(minReplicaCount=0, pollingInterval=10))])
    assert not [w for w in quiet.warnings if "not relevant" in w]


def test_error_paths_are_not_doubled() -> None:
    from autoscaler.validate import join_path

    assert join_path("spec.scaleTargetRef", "scaleTargetRef.name") == "spec.scaleTargetRef.name"
    assert join_path("spec", "spec.triggers[0]") == "spec.triggers[0]"
    assert join_path("spec", "triggers[1].name") == "spec.triggers[1].name"
    assert join_path("spec.triggers", "triggers[1].name") == "spec.triggers[1].name"
    assert join_path("", "metadata.name") == "metadata.name"
    ta = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "a"},
          "spec": {"podIdentity": {"provider": "aws", "externalID": "x"}}}
    assert errors_of(ta) == [("spec.podIdentity.externalID", "externalID of PodIdentity requires roleArn to be set")]


@pytest.mark.parametrize(("spec", "field", "fragment"), [
    ({"oauth2": {"type": "password", "clientId": "c", "tokenUrl": "https://t/x"}}, "spec.oauth2.type",
     "'clientCredentials'"),
    ({"oauth2": {"tokenUrl": "https://t/x"}}, "spec.oauth2.clientId", "is required"),
    ({"oauth2": {"clientId": "c"}}, "spec.oauth2.tokenUrl", "is required"),
    ({"oauth2": {"clientId": "c", "tokenUrl": "ftp://t/x"}}, "spec.oauth2.tokenUrl", "valid http or https URL"),
    ({"podIdentity": {"provider": "aws-kiam"}}, "spec.podIdentity.provider", "'aws-eks' or 'gcp'"),
    ({"podIdentity": {"provider": "azure-workload", "identityId": ""}}, "spec.podIdentity.identityId",
     "should not be empty"),
    ({"filePath": ["a"]}, "spec.filePath", "valid string"),
])
def test_trigger_authentication_rules(spec: dict[str, Any], field: str, fragment: str) -> None:
    ta = {"apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication", "metadata": {"name": "a"},
          "spec": spec}
    errs = errors_of(ta)
    assert any(f == field and fragment in m for f, m in errs), errs


def test_trigger_authentication_known_fields() -> None:
    ta = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "a"},
          "spec": {"podIdentity": {"provider": "azure-workload", "identityId": "i", "identityTenantId": "t",
                                   "identityAuthorityHost": "https://login"},
                   "oauth2": {"clientId": "c", "tokenUrl": "https://idp/token", "scopes": ["a"],
                              "clientSecret": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}},
                   "filePath": "creds.json"}}
    [result] = validate_documents([Document("x.yaml", 0, ta)])
    assert result.ok, result.errors
    assert not [w for w in result.warnings if "unknown field" in w], result.warnings
    assert any(w.startswith("spec.filePath: only a ClusterTriggerAuthentication") for w in result.warnings)
