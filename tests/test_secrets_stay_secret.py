"""Secrets stay secret: the real operator (its own process, `surge operator`) at DEBUG against the
API emulator and a password-protected redis-server, with the password in a Secret that one
TriggerAuthentication maps correctly and another maps to the wrong parameter. Every log line,
Event, status and metric is searched for the password and its base64 form."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.redis import PASSWORD, cli
from tests.k8s.fixture import K8s
from tests.servers import Server, free_port

ROOT = Path(__file__).resolve().parent.parent
NS = "jobs"


def objects(redis: str) -> list[tuple[str, str, dict]]:
    def deployment(name: str) -> dict:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                         "template": {"spec": {"containers": [{"name": "w", "image": "w"}]}}}}

    def auth(name: str, parameter: str) -> dict:
        return {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"secretTargetRef": [{"parameter": parameter, "name": "creds", "key": "password"}]}}

    def scaled_object(name: str, auth_name: str) -> dict:
        return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name, "namespace": NS},
                "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": 1, "cooldownPeriod": 1,
                         "triggers": [{"type": "redis", "name": "q", "authenticationRef": {"name": auth_name},
                                       "metadata": {"address": redis, "listName": "secret-q", "listLength": "2"}}]}}

    return [
        ("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
                           "type": "Opaque", "data": {"password": base64.b64encode(PASSWORD.encode()).decode()}}),
        ("keda.sh/v1alpha1", "triggerauthentications", auth("right", "password")),
        ("keda.sh/v1alpha1", "triggerauthentications", auth("wrong", "tls")),  # the Secret in the wrong place
        ("apps/v1", "deployments", deployment("good")),
        ("apps/v1", "deployments", deployment("bad")),
        ("keda.sh/v1alpha1", "scaledobjects", scaled_object("good", "right")),
        ("keda.sh/v1alpha1", "scaledobjects", scaled_object("bad", "wrong")),
    ]


@pytest.mark.timeout(120)
async def test_operator_at_debug_never_writes_the_secret(k8s_api: K8s, redis_auth: Server) -> None:
    em = k8s_api.emulator
    for api_version, plural, obj in objects(redis_auth.address):
        em.put(api_version, plural, obj)
    cli(redis_auth.port, "RPUSH", "secret-q", "a", "b", "c", "d", "e", password=PASSWORD)
    port = free_port()
    env = {**os.environ, "SURGE_LOG_LEVEL": "debug", "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", "operator", "--server", k8s_api.url, "--no-leader-elect",
        "--port", str(port), "--bind-address", "127.0.0.1", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []

    async def collect() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))

    reader = asyncio.create_task(collect())
    metrics = ""
    try:
        def status(name: str) -> dict:
            return (em.get("keda.sh/v1alpha1", "scaledobjects", NS, name) or {}).get("status") or {}

        def ready(name: str) -> str | None:
            return next((c["status"] for c in status(name).get("conditions", []) if c["type"] == "Ready"), None)

        deadline = asyncio.get_running_loop().time() + 60
        while not (ready("good") == "True" and ready("bad") == "False"
                   and em.get("apps/v1", "deployments", NS, "good")["spec"]["replicas"] >= 1):
            assert proc.returncode is None, "".join(lines[-30:])
            assert asyncio.get_running_loop().time() < deadline, "".join(lines[-30:])
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            metrics = await resp.text()
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await reader

    bad_message = next(c["message"] for c in status("bad")["conditions"] if c["type"] == "Ready")
    assert "tls" in bad_message  # the error names the parameter…
    log = "".join(lines)
    assert "DEBUG" in log and "response body" in log  # the kubernetes client's debug logging was on
    places = {
        "log": log,
        "events": json.dumps(em.all("v1", "events")),
        "status": json.dumps([o.get("status") for o in em.all("keda.sh/v1alpha1", "scaledobjects")]),
        "metrics": metrics,
    }
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    for where, text in places.items():
        for form in (PASSWORD, encoded, encoded.rstrip("=")):
            assert form not in text, f"the secret ({form}) is in the {where}"
    assert "<redacted>" in log


def test_redactor_masks_by_shape_and_by_value_and_stays_bounded() -> None:
    from autoscaler.redact import MASK, Redactor

    r = Redactor()
    body = 'response body: b\'{"kind":"Secret","data":{"password":"czNjcmV0LXBhc3M=","user":"YWRtaW4="}}\''
    assert r.redact(body).count(MASK) == 2 and "czNj" not in r.redact(body)
    assert r.redact("{'stringData': {'token': 'abc'}, 'kind': 'Secret'}") == \
        f"{{'stringData': {{'token': '{MASK}'}}, 'kind': 'Secret'}}"
    assert r.redact("redis://user:hunter22@host:6379/0") == f"redis://user:{MASK}@host:6379/0"
    assert r.redact("?password=abc123&x=1") == f"?password={MASK}&x=1"
    assert r.redact("password: is required") == "password: is required"  # field errors stay readable
    r.remember("s3cret-pass", "no", 42)
    encoded = base64.b64encode(b"s3cret-pass").decode()
    assert r.redact(f"a s3cret-pass b {encoded} c") == f"a {MASK} b {MASK} c"
    assert r.redact("no") == "no"  # too short to mask without masking everything
    for i in range(3 * Redactor.MAX_VALUES):
        r.remember(f"value-{i:08d}")
    assert len(r._values) <= Redactor.MAX_VALUES
    assert r.redact(f"value-{3 * Redactor.MAX_VALUES - 1:08d}") == MASK
