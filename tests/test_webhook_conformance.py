"""KEDA's admission webhook suites (ScaledObject, TriggerAuthentication) as `surge validate` cases.

Each upstream It() is a set of manifests: the objects the test created first and the object it
then creates. surge validates them together, the way KEDA's webhook sees the API server.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from autoscaler.manifests.loader import Document
from autoscaler.validate import ObjectResult, validate_documents
from tests.fixtures.conformance import vector_cases, vector_file

SO_FILE, TA_FILE = "scaledobject-webhook.json", "triggerauthentication-webhook.json"
# Where surge knowingly differs; the reason is in docs/compatibility.md.
DIVERGENCES = {
    "shouldn't validate the creation with cpu and memory when deployment is missing":
        "surge validate sees files, not a cluster: a target absent from the files is a warning",
    "should validate the so update if it's removing the finalizer even if it's invalid":
        "surge validate checks the object as written; it has no notion of an update that only removes finalizers",
}


def validate_case(case: dict[str, Any]) -> ObjectResult:
    objects = [*(case.get("objects") or []), case["object"]]
    docs = [Document("case.yaml", i, raw) for i, raw in enumerate(objects)]
    return validate_documents(docs)[-1]


def admission_errors(result: ObjectResult) -> list[tuple[str, str]]:
    """Errors KEDA's webhook would raise. The webhook does not parse trigger metadata (KEDA's
    operator does, later); surge validate reports those too, under spec.triggers[i].metadata /
    .authentication, and they are left out of the admission verdict."""
    return [(e.field, e.message) for e in result.errors
            if not re.match(r"^spec\.triggers\[\d+\]\.(metadata|authentication)\.", e.field)]


def check(case: dict[str, Any], result: ObjectResult) -> None:
    expected = case["expected"]
    if "accepted" in expected:
        assert (not admission_errors(result)) is expected["accepted"], admission_errors(result)
    for text in expected.get("warnings_contain", []):
        assert any(text in w for w in result.warnings), result.warnings
    for text in expected.get("warnings_exclude", []):
        assert not any(text in w for w in result.warnings), result.warnings
    if expected.get("warnings_empty"):
        assert not [w for w in result.warnings if "not implemented by surge" not in w], result.warnings


@pytest.mark.conformance(SO_FILE)
@pytest.mark.parametrize("case", vector_cases(SO_FILE))
def test_scaledobject_webhook(case: dict[str, Any]) -> None:
    if case["name"] in DIVERGENCES:
        pytest.xfail(DIVERGENCES[case["name"]])
    result = validate_case(case)
    check(case, result)
    if admission_errors(result):  # every error names a field of the object
        assert all(e.field.startswith(("spec", "metadata")) for e in result.errors)


@pytest.mark.conformance(TA_FILE)
@pytest.mark.parametrize("case", vector_cases(TA_FILE))
def test_triggerauthentication_webhook(case: dict[str, Any]) -> None:
    result = validate_case(case)
    check(case, result)
    if result.errors:
        assert all(e.field.startswith("spec.podIdentity.") for e in result.errors), result.errors


def test_vectors_are_complete() -> None:
    assert len(vector_file(SO_FILE)["cases"]) == 64 and len(vector_file(TA_FILE)["cases"]) == 20
