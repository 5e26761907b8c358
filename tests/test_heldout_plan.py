"""`surge plan` over a `kubectl get pods -o yaml` List and Karpenter's example workloads
(tests/data/heldout): only pods Karpenter would provision for are planned."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from autoscaler.cli import app

HELDOUT = Path(__file__).parent / "data" / "heldout"
runner = CliRunner()


def plan(*args: str) -> dict:
    result = runner.invoke(app, ["plan", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_finished_and_daemonset_pods_are_not_planned() -> None:
    out = plan(str(HELDOUT / "plan" / "kubectl-get-pods.yaml"), "--nodepool",
               str(HELDOUT / "karpenter" / "aws__examples_v1_general-purpose.yaml"))
    placed = sorted(p for n in out["nodes"] for p in n["pods"])
    assert placed == ["shop/api-7d9f8b6c5-abcde", "shop/api-7d9f8b6c5-fghij", "shop/worker-0"]
    assert not out["unschedulable"]
    skipped = "\n".join(out["warnings"])
    assert "shop/done-1: phase Succeeded, not planned" in skipped
    assert "kube-system/ds-pod: owned by DaemonSet 'aws-node'" in skipped
    assert "shop/running-1: already bound to node" in skipped
    # the two api pods ask for hostPort 8080: never on one node
    api_nodes = [i for i, n in enumerate(out["nodes"]) for p in n["pods"] if p.startswith("shop/api-")]
    assert len(set(api_nodes)) == 2


def test_spot_workload_without_spot_prices_says_why_and_no_nan() -> None:
    # Karpenter's examples/workloads/spot.yaml (replicas 0 upstream: nothing to plan) and its
    # nodeSelector karpenter.sh/capacity-type: spot, against a NodePool allowing spot
    result = runner.invoke(app, ["plan", str(HELDOUT / "karpenter" / "aws__examples_workloads_spot.yaml"),
                                 "--nodepool", str(HELDOUT / "karpenter" / "aws__examples_v1_spot.yaml")])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output and "cost/bound n/a" in result.output
    assert "no --spot-prices: spot offerings are not planned" in result.output
