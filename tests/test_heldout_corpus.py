"""`surge validate` over objects KEDA, the HTTP add-on and Karpenter apply in their own e2e tests
and examples (tests/data/heldout, sources in its SOURCES.md): what upstream admission accepts is
accepted, what it refuses is refused naming the field, unimplemented parts are warnings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from autoscaler.validate import ObjectResult, validate_paths

CORPUS = Path(__file__).parent / "data" / "heldout"

# upstream e2e tests that expect the API server (KEDA's webhook / CRD schema) to refuse the object
REFUSED = {
    "internals__scaled_object_validation__scaled_object_validation_test__cpuScaledObjectTemplate.yaml":
        "spec.minReplicaCount",
    "internals__scaled_object_validation__scaled_object_validation_test__emptyTriggersTemplate.yaml":
        "spec.triggers",
    "internals__trigger_authentication_validation__trigger_authentication_validation_test__"
    "clusterTriggerAuthWorkloadEmptyIDTemplate.yaml": "spec.podIdentity.identityId",
}


@pytest.fixture(scope="module")
def results() -> list[ObjectResult]:
    return validate_paths([CORPUS])


def test_every_file_read_and_kinds_modelled(results: list[ObjectResult]) -> None:
    files = {p.name for p in CORPUS.rglob("*.yaml")}
    assert {Path(r.file).name for r in results} == files
    kinds = Counter(r.kind for r in results)
    for kind in ("ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication",
                 "HTTPScaledObject", "NodePool", "EC2NodeClass"):
        assert kinds[kind] > 0, kind


def test_upstream_verdicts(results: list[ObjectResult]) -> None:
    for r in results:
        name = Path(r.file).name
        if name in REFUSED:
            assert not r.ok, name
            assert REFUSED[name] in {e.field for e in r.errors}, (name, r.errors)
        else:
            assert r.ok, (name, r.kind, r.name, r.errors)


def _warnings(results: list[ObjectResult], fragment: str) -> list[str]:
    return [w for r in results if fragment in Path(r.file).name for w in r.warnings]


def test_scaling_modifier_triggers_need_no_own_target(results: list[ObjectResult]) -> None:
    # KEDA's AsMetricSource: with a formula, metrics-api needs no targetValue, kubernetes-workload no value
    [so] = [r for r in results if "soFallbackTemplate" in r.file]
    assert so.ok and not so.errors


def test_unimplemented_parts_are_warnings_saying_so(results: list[ObjectResult]) -> None:
    push = _warnings(results, "external_push_scaler_test")
    assert any("spec.triggers[0].metadata.httpScaledObject" in w and "not implemented by surge" in w for w in push)
    aggregate = [r for r in results if "metrics_api_test__scaledObjectTemplate" in Path(r.file).name]
    assert aggregate and all(r.ok for r in aggregate)  # aggregateFromKubeServiceEndpoints is implemented
    job = _warnings(results, "scaled_job_conditions_test")
    assert job == ["kind ScaledJob (keda.sh) is not implemented by surge: not checked"]
    apache = _warnings(results, "apache_kafka_test")
    assert any("'apache-kafka' is not implemented by surge" in w for w in apache)


def test_null_metadata_value_is_absent_as_after_api_server_pruning(tmp_path: Path) -> None:
    # KEDA's kafka e2e template leaves `offsetResetPolicy: {{.ResetPolicy}}` empty in some cases: YAML
    # null, which the API server prunes (the key is absent, default latest); a number is still refused
    so = ("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: n, namespace: d}\n"
          "spec:\n  scaleTargetRef: {name: w}\n  triggers:\n  - type: kafka\n    metadata:\n"
          "      bootstrapServers: k:9092\n      consumerGroup: g\n      topic: t\n      offsetResetPolicy:\n"
          "      lagThreshold: LAG\n")
    (tmp_path / "null.yaml").write_text(so.replace("LAG", "'5'"))
    [ok] = validate_paths([tmp_path / "null.yaml"])
    assert ok.ok, ok.errors
    (tmp_path / "number.yaml").write_text(so.replace("LAG", "5"))
    [bad] = validate_paths([tmp_path / "number.yaml"])
    assert [e.field for e in bad.errors] == ["spec.triggers[0].metadata.lagThreshold"]


@pytest.mark.parametrize(("spec", "field"), [
    ("  template: {spec: {expireAfter: 3 days}}", "spec.template.spec.expireAfter"),
    ("  template: {spec: {terminationGracePeriod: 1 hour}}", "spec.template.spec.terminationGracePeriod"),
    ("  disruption: {consolidateAfter: never}", "spec.disruption.consolidateAfter"),
    ("  disruption: {consolidationPolicy: WhenUnderutilized}", "spec.disruption.consolidationPolicy"),
    ("  disruption: {budgets: [{nodes: '150%'}]}", "spec.disruption.budgets[0].nodes"),
    ("  disruption: {budgets: [{nodes: '1', schedule: '0 9 * * *'}]}", "spec.disruption.budgets[0]"),
    ("  disruption: {budgets: [{nodes: '1', schedule: '@daily', duration: 30s}]}",
     "spec.disruption.budgets[0].duration"),
    ("  disruption: {budgets: [{nodes: '1', reasons: [expired]}]}", "spec.disruption.budgets[0].reasons"),
])
def test_nodepool_values_karpenters_crd_refuses(tmp_path: Path, spec: str, field: str) -> None:
    # the karpenter.sh/v1 CRD's patterns and rules (pkg/apis/crds/karpenter.sh_nodepools.yaml)
    path = tmp_path / "np.yaml"
    path.write_text(f"apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {{name: a}}\nspec:\n{spec}\n")
    [r] = validate_paths([path])
    assert [e.field for e in r.errors] == [field], r.errors


def test_nodepool_values_karpenters_crd_accepts(tmp_path: Path) -> None:
    path = tmp_path / "np.yaml"
    path.write_text("apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: a}\nspec:\n"
                    "  template: {spec: {expireAfter: Never, terminationGracePeriod: 48h}}\n"
                    "  disruption:\n    consolidationPolicy: Balanced\n    consolidateAfter: 1m30s\n"
                    "    budgets: [{nodes: '100%'}, {nodes: '0', schedule: '@daily', duration: 1h30m, "
                    "reasons: [Drifted, Empty]}, {nodes: '5', schedule: '0 9 * * mon-fri', duration: 8h0s}]\n")
    [r] = validate_paths([path])
    assert r.ok, r.errors


def test_ec2nodeclass_rules_karpenters_crd_enforces(tmp_path: Path) -> None:
    # karpenter.k8s.aws/v1 CRD rules (pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml)
    path = tmp_path / "nc.yaml"
    path.write_text("apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {name: a}\nspec:\n"
                    "  amiSelectorTerms: [{alias: ubuntu@latest}]\n  subnetSelectorTerms: [{tags: {}}]\n"
                    "  securityGroupSelectorTerms: [{id: sg-1, tags: {a: b}}]\n  role: r\n  instanceProfile: p\n"
                    "  blockDeviceMappings: [{deviceName: /dev/xvda, ebs: {volumeSize: 20Gi, volumeType: gp9}}]\n")
    [r] = validate_paths([path])
    assert [e.field for e in r.errors] == [
        "spec.subnetSelectorTerms[0]", "spec.securityGroupSelectorTerms[0]", "spec.amiSelectorTerms[0].alias",
        "spec", "spec.blockDeviceMappings[0].ebs.volumeType"], r.errors
    path.write_text("apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {name: a}\nspec:\n"
                    "  amiFamily: AL2023\n  amiSelectorTerms: [{id: ami-1}]\n  subnetSelectorTerms: [{id: subnet-1}]\n"
                    "  securityGroupSelectorTerms: [{name: sg}]\n  instanceProfile: p\n")
    [ok] = validate_paths([path])
    assert ok.ok, ok.errors


def test_document_without_kind_is_named_not_silently_ok(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("replicaCount: 1\nimage: {repository: x}\n")
    [r] = validate_paths([path])
    assert r.warnings == ["document 0: no kind, not a Kubernetes object: not checked"]
