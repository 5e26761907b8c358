"""`surge plan`: the JSON others rely on, on the example manifests."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from autoscaler.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_plan_json_on_examples() -> None:
    result = CliRunner().invoke(app, ["plan", str(EXAMPLES / "pods.yaml"), "--nodepool",
                                      str(EXAMPLES / "nodepools.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert {"nodes", "cost_per_hour", "lower_bound_per_hour", "unschedulable", "solve_seconds"} <= set(plan)
    pods = [p for n in plan["nodes"] for p in n["pods"]]
    assert len(pods) == len(set(pods)) == 12 + 4 + 40 and plan["unschedulable"] == []
    assert {"web-0", "inference-3", "batch-39"} <= set(pods)
    gpu_nodes = [n for n in plan["nodes"] if any(p.startswith("inference") for p in n["pods"])]
    assert len(gpu_nodes) == 4 and all(n["nodepool"] == "gpu" for n in gpu_nodes)
    assert plan["cost_per_hour"] >= plan["lower_bound_per_hour"] > 0
    assert abs(sum(n["price_per_hour"] for n in plan["nodes"]) - plan["cost_per_hour"]) < 1e-6


def test_spot_prices_file_enables_spot(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("kind: Deployment\nmetadata: {name: w}\nspec:\n  replicas: 6\n  template:\n    spec:\n"
                    "      containers: [{name: c, resources: {requests: {cpu: '1', memory: 2Gi}}}]\n")
    pool = tmp_path / "np.yaml"
    pool.write_text("apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: spot}\nspec:\n  template:\n"
                    "    spec:\n      requirements:\n        - {key: karpenter.sh/capacity-type, operator: In, "
                    "values: [spot, on-demand]}\n        - {key: node.kubernetes.io/instance-type, operator: In, "
                    "values: [m5.xlarge, m5.2xlarge]}\n")
    spot = tmp_path / "spot.json"
    spot.write_text(json.dumps({"m5.2xlarge": {"us-east-1b": 0.12}}))
    result = CliRunner().invoke(app, ["plan", str(pods), "--nodepool", str(pool), "--spot-prices", str(spot),
                                      "--format", "json"])
    plan = json.loads(result.output)
    assert [(n["instance_type"], n["capacity_type"], n["zone"]) for n in plan["nodes"]] == [
        ("m5.2xlarge", "spot", "us-east-1b")]
