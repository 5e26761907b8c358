"""`surge validate`: exit status and the JSON others rely on."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from autoscaler.cli import app
from tests.fixtures.conformance import MANIFESTS

runner = CliRunner()


def test_json_shape_and_success_exit() -> None:
    result = runner.invoke(app, ["validate", str(MANIFESTS / "05-kafka-sasl-tls-auth.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    objects = json.loads(result.output)
    assert [(o["kind"], o["ok"]) for o in objects] == [("Secret", True), ("TriggerAuthentication", True),
                                                       ("ScaledObject", True)]
    assert set(objects[0]) == {"file", "kind", "name", "ok", "errors", "warnings"}


def test_invalid_object_exits_1_and_names_fields(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w}\n"
                   "spec:\n  scaleTargetRef: {name: w}\n  minReplicaCount: 3\n  maxReplicaCount: 1\n"
                   "  triggers: [{type: redis, metadata: {address: 'r:1', listName: l}}]\n")
    result = runner.invoke(app, ["validate", str(bad), "--format", "json"])
    assert result.exit_code == 1
    [obj] = json.loads(result.output)
    assert obj["ok"] is False and obj["errors"][0]["field"] == "spec.minReplicaCount"
    assert "minReplicaCount=3" in obj["errors"][0]["message"]
    text = runner.invoke(app, ["validate", str(bad)])
    assert text.exit_code == 1 and "INVALID" in text.output and "minReplicaCount=3" in text.output


def test_unreadable_yaml_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    result = runner.invoke(app, ["validate", str(broken), "--format", "json"])
    assert result.exit_code == 1
    assert "not valid YAML" in json.loads(result.output)[0]["errors"][0]["message"]


def test_karpenter_objects_say_what_surge_does_not_act_on(tmp_path: Path) -> None:
    f = tmp_path / "karpenter.yaml"
    f.write_text("""
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: default}
spec:
  role: KarpenterNodeRole
  amiSelectorTerms: [{alias: windows2022@latest}]
  subnetSelectorTerms: [{tags: {a: b}}]
  securityGroupSelectorTerms: [{tags: {a: b}}]
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: default}
spec:
  replicas: 3
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
  disruption:
    budgets: [{nodes: "0", schedule: "0 9 * * mon-fri", duration: 8h, reasons: [Drifted]}]
---
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: broken}
spec: {subnetSelectorTerms: []}
""")
    result = runner.invoke(app, ["validate", str(f), "--format", "json"])
    assert result.exit_code == 1
    by_name = {(o["kind"], o["name"]): o for o in json.loads(result.output)}
    nodeclass = by_name[("EC2NodeClass", "default")]
    assert nodeclass["ok"] and any("alias" in w for w in nodeclass["warnings"])
    assert any(w.startswith("spec.role:") for w in nodeclass["warnings"])
    pool = by_name[("NodePool", "default")]["warnings"]
    # static NodePools are not acted on; budget reasons (Drifted) are
    assert pool and all(w.startswith("spec.replicas:") for w in pool)
    broken = by_name[("EC2NodeClass", "broken")]
    assert not broken["ok"] and {e["field"] for e in broken["errors"]} >= {"spec.subnetSelectorTerms",
                                                                          "spec.amiSelectorTerms"}
