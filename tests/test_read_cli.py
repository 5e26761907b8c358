"""`surge read`: one real read of a ScaledObject's triggers, auth resolved from the same file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from autoscaler.cli import app
from tests.fixtures.redis import PASSWORD, cli
from tests.servers import Server

MANIFEST = """
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: t}}
data: {{password: {password_b64}}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: auth, namespace: t}}
spec:
  secretTargetRef: [{{parameter: password, name: creds, key: password}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: w, namespace: t}}
spec:
  scaleTargetRef: {{name: w}}
  triggers:
    - type: redis
      name: jobs
      authenticationRef: {{name: auth}}
      metadata: {{addressFromEnv: ADDR, listName: {name}, listLength: "4"}}
"""


def test_read_resolves_secret_and_env(redis_auth: Server, tmp_path: Path) -> None:
    import base64

    name = f"r-{uuid.uuid4().hex[:6]}"
    cli(redis_auth.port, "RPUSH", name, *["x"] * 9, password=PASSWORD)
    path = tmp_path / "so.yaml"
    path.write_text(MANIFEST.format(password_b64=base64.b64encode(PASSWORD.encode()).decode(), name=name))
    result = CliRunner().invoke(app, ["read", str(path), "--env", f"ADDR={redis_auth.address}", "--format", "json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert (report["value"], report["target"], report["active"], report["replicas_for_metric"]) == (9.0, 4.0, True, 3)
    wrong = CliRunner().invoke(app, ["read", str(path), "--env", "ADDR=127.0.0.1:1", "--format", "json"])
    assert wrong.exit_code == 1 and "unreachable" in json.loads(wrong.output)[0]["error"]


def test_read_with_current_runs_the_engine(redis_auth: Server, tmp_path: Path) -> None:
    import base64

    name = f"r-{uuid.uuid4().hex[:6]}"
    cli(redis_auth.port, "RPUSH", name, *["x"] * 30, password=PASSWORD)
    path = tmp_path / "so.yaml"
    path.write_text(MANIFEST.format(password_b64=base64.b64encode(PASSWORD.encode()).decode(), name=name))
    args = ["read", str(path), "--env", f"ADDR={redis_auth.address}", "--format", "json", "--current"]
    from_zero = json.loads(CliRunner().invoke(app, [*args, "0"]).output)["decisions"][0]
    assert (from_zero["current"], from_zero["desired"]) == (0, 1)
    running = json.loads(CliRunner().invoke(app, [*args, "2"]).output)["decisions"][0]
    assert running["desired"] == 6  # ceil(30 / 4) = 8, limited by the default policy to max(2+4, 2×2)
