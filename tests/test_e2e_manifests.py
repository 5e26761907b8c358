"""KEDA's end-to-end manifests for the trigger types surge implements: `surge validate` admits
every one, as KEDA's webhook does (its e2e tests apply them). See tests/compat/e2e-manifests/SOURCES.md."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from autoscaler.validate import ObjectResult, validate_paths

E2E = Path(__file__).parent / "compat" / "e2e-manifests"
FILES = sorted(E2E.glob("*.yaml"))


def test_every_implemented_trigger_type_is_covered() -> None:
    import yaml

    from scalers.registry import known_types

    types = {t["type"] for f in FILES for doc in yaml.safe_load_all(f.read_text())
             if doc and doc.get("kind") == "ScaledObject" for t in doc["spec"]["triggers"]}
    # metrics-api's template uses Go template control flow and nats-jetstream's live in a helper
    # package; both are left out (SOURCES.md)
    missing = {"aws-sqs-queue", "cron", "cpu", "memory", "kafka", "kubernetes-workload", "mysql", "postgresql",
               "prometheus", "rabbitmq", "redis", "redis-streams"} - types
    assert not missing and types <= set(known_types()), (missing, types - set(known_types()))


@cache
def results() -> tuple[ObjectResult, ...]:
    return tuple(validate_paths([E2E]))  # together, so a ScaledObject finds its test's auth objects


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_keda_e2e_manifest_is_admitted(path: Path) -> None:
    mine = [r for r in results() if r.file == str(path)]
    assert mine, "no objects read"
    assert all(r.ok for r in mine), [(r.name, [(e.field, e.message) for e in r.errors]) for r in mine]
