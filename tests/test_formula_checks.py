"""Formulas checked as they will run, numbers bounded to what Kubernetes stores, and errors that
name a secret's key without repeating its value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.engine.decide import EngineState, Fallback, Modifiers, ScalingSpec, TriggerReading, TriggerSpec, decide
from autoscaler.engine.formula import MAX_DEPTH, FormulaError, compile_formula, compute
from autoscaler.manifests.keda import ScaledObject
from autoscaler.manifests.loader import Document
from autoscaler.validate import validate_documents


def so(formula: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scaleTargetRef": {"name": "w"},
        "triggers": [{"type": "redis", "name": "a", "metadata": {"address": "r:6379", "listName": "a",
                                                                 "listLength": "5"}},
                     {"type": "redis", "name": "b", "metadata": {"address": "r:6379", "listName": "b",
                                                                 "listLength": "5"}}],
        **spec}
    if formula is not None:
        body["advanced"] = {"scalingModifiers": {"formula": formula, "target": "2"}}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "w", "namespace": "t"},
            "spec": body}


def errors(raw: dict[str, Any]) -> list[str]:
    (result,) = validate_documents([Document("so.yaml", 0, raw)])
    return [f"{e.field}: {e.message}" for e in result.errors]


@pytest.mark.parametrize(("formula", "fragment"), [
    ("__import__('os')", "unknown function '__import__'"),
    ("__import__('os').system('x')", "unexpected character '.'"),
    ("9**9**9", "overflows"),
    ("a ? b", "expected ':'"),
    ("1e999 + a", "invalid number literal '1e999'"),
    ("99999999999999999999 * a", "out of range"),
    ("ceil(1e300 * 1e300) + a", "not a finite number"),
    ("a / 0", "division by zero"),
    ("a + c", "refers to ['c']"),
    ("a ?? 0 + b", "cannot be mixed"),
    ("(" * 50_000 + "a" + ")" * 50_000, "over the limit of 10000"),
    ("a" + " + a" * 3_000, "over the limit of 10000"),
    ("a" + "+a" * 150, f"nests deeper than {MAX_DEPTH}"),
    ("-" * 500 + "a", f"nests deeper than {MAX_DEPTH}"),
    ("a $ b", "unexpected character '$'"),
])
def test_validate_compiles_the_formula_like_the_engine(formula: str, fragment: str) -> None:
    found = errors(so(formula))
    assert any(e.startswith("spec.advanced.scalingModifiers.formula: ") and fragment in e for e in found), found


@pytest.mark.parametrize("formula", [
    "a + b", "1e3 * a", "2.5e-1 * (a + b)", "a ** 2 ^ 1", "a > 5 ? a : b", "a ?: b", "(a ?? 0) + (b ?? 0)",
    "a and b or not a", "min(a, b) + max(a, 1) + abs(-a) + ceil(b / 3) + floor(a) + round(b) + int(a) + float(b)",
    "1_000 + 0x1f + 0o7 + 0b1 + a", "a == 1 ? 2 : a == 2 ? 3 : 4",
])
def test_expr_lang_formulas_keda_accepts_are_accepted(formula: str) -> None:
    assert errors(so(formula)) == []
    compute(formula, {"a": 3.0, "b": 4.0})


def test_expr_lang_precedence() -> None:
    env = {"a": 2.0, "b": 3.0, "gone": None}
    assert compute("-a ** 2", env) == -4  # unary minus binds looser than ** (90 < 100)
    assert compute("a ** b ** 2", env) == 2 ** 9  # right-associative
    assert compute("a + b * 2", env) == 8
    assert compute("gone ?? a", env) == 2
    assert compute("true ? 1 : 0", env) == 1


@pytest.mark.parametrize("formula", ["a * 1e308 * 10", "a / b", "ceil(a * 1e308 * 1e308)", "gone + 1", "a % b",
                                     "a ** 1e6", "a == 'x' ? 1 : 'y'", "nil"])
def test_compute_raises_only_formula_errors(formula: str) -> None:
    env = {"a": 10.0, "b": 0.0, "gone": None}
    try:
        value = compute(formula, env)
    except FormulaError:
        return
    assert value == value and abs(value) < float("inf")


def test_a_formula_error_is_a_scaler_error_with_fallback() -> None:
    spec = ScalingSpec(triggers=(TriggerSpec("a"), TriggerSpec("b")), min_replicas=1, max_replicas=10,
                       fallback=Fallback(failure_threshold=2, replicas=7), modifiers=Modifiers("a / b", target=1))
    state, readings = EngineState(created_at=0), {"a": TriggerReading(5, True), "b": TriggerReading(0, False)}
    first = decide(spec, readings, current=3, ready=3, state=state, now=10)
    assert first.conditions["Ready"].status is False and first.conditions["Ready"].reason == "ScalingModifiersError"
    assert "division by zero" in first.conditions["Ready"].message
    assert first.replicas is None  # not above the threshold: hold
    second = decide(spec, readings, current=3, ready=3, state=first.state, now=20)
    assert second.replicas is None  # KEDA falls back once failures exceed failureThreshold (> 2)
    third = decide(spec, readings, current=3, ready=3, state=second.state, now=30)
    assert third.replicas == 7 and third.conditions["Fallback"].status is True
    healthy = decide(spec, {"a": TriggerReading(6, True), "b": TriggerReading(2, True)}, 7, 7, third.state, 40)
    assert healthy.state.failures["scalingModifiers.formula"] == 0 and healthy.conditions["Ready"].status is True


@pytest.mark.parametrize(("spec", "field"), [
    ({"maxReplicaCount": 10**40}, "spec.maxReplicaCount"),
    ({"minReplicaCount": 2**31}, "spec.minReplicaCount"),
    ({"pollingInterval": 2**31}, "spec.pollingInterval"),
    ({"cooldownPeriod": 2**33}, "spec.cooldownPeriod"),
    ({"fallback": {"failureThreshold": 3, "replicas": 2**40}}, "spec.fallback.replicas"),
])
def test_numbers_are_bounded_to_int32(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ScaledObject.model_validate(so(**spec))
    assert field.removeprefix("spec.").split(".")[0] in str(info.value) and "2147483647" in str(info.value)
    assert any(e.startswith(field) for e in errors(so(**spec)))


@pytest.mark.parametrize(("metadata", "field"), [
    ({"address": "r:99999999999", "listName": "q", "listLength": "5"}, "metadata.address"),
    ({"host": "r", "port": "70000", "listName": "q", "listLength": "5"}, "metadata.port"),
])
def test_ports_are_bounded(metadata: dict[str, str], field: str) -> None:
    raw = so()
    raw["spec"]["triggers"][0]["metadata"] = metadata
    assert any(e.startswith(f"spec.triggers[0].{field}: ") and "1-65535" in e for e in errors(raw))


def test_prometheus_and_kafka_ports_are_bounded() -> None:
    raw = so()
    raw["spec"]["triggers"] = [
        {"type": "prometheus", "metadata": {"serverAddress": "http://p:99999999", "query": "up", "threshold": "1"}},
        {"type": "kafka", "metadata": {"bootstrapServers": "k:0", "consumerGroup": "g", "topic": "t"}}]
    found = errors(raw)
    assert any(e.startswith("spec.triggers[0].metadata.serverAddress: ") for e in found), found
    assert any(e.startswith("spec.triggers[1].metadata.bootstrapServers: ") for e in found), found


def test_a_secret_mapped_to_the_wrong_parameter_is_named_not_shown() -> None:
    secret = "s3cr3t-Pa55w0rd"
    docs = [
        Document("a.yaml", 0, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "t"},
                               "stringData": {"password": secret}}),
        Document("a.yaml", 1, {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                               "metadata": {"name": "auth", "namespace": "t"},
                               "spec": {"secretTargetRef": [{"parameter": "tls", "name": "creds",
                                                             "key": "password"}]}}),
    ]
    raw = so()
    raw["spec"]["triggers"][0]["authenticationRef"] = {"name": "auth"}
    results = validate_documents([*docs, Document("a.yaml", 2, raw)])
    text = repr(results)
    assert "authentication.tls" in text and "<the value of tls>" in text and secret not in text, text
    from scalers.base import Trigger
    from scalers.errors import ConfigError
    from scalers.registry import build_scaler

    for trigger_type, param, metadata in [
        ("redis", "tls", {"address": "r:1", "listName": "q", "listLength": "5"}),
        ("kafka", "sasl", {"bootstrapServers": "k:9092", "consumerGroup": "g", "topic": "t"}),
    ]:
        with pytest.raises(ConfigError) as info:
            build_scaler(Trigger(type=trigger_type, name="", index=0, auth_params={param: secret}, metadata=metadata))
        assert param in str(info.value) and secret not in str(info.value), str(info.value)


def test_compile_formula_is_cached_and_checks_names() -> None:
    tree = compile_formula("a + b", {"a", "b"})
    assert compile_formula("a + b") is tree
    with pytest.raises(FormulaError, match=r"refers to \['b'\]"):
        compile_formula("a + b", {"a"})


def test_comparisons_with_zero_and_expr_lang_arrays() -> None:
    env = {"trig_one": 2.0, "trig_two": 0.0, "gone": None}
    assert compute("trig_two > 0 ? 1 : 2", env) == 2  # a zero operand is not a division
    assert compute("count([trig_one, trig_two], {# > 1}) > 1 ? 5 : 0", env) == 0
    assert compute("count([trig_one, trig_two], {# >= 0}) > 1 ? 5 : 0", env) == 5
    assert compute("sum([trig_one, 3]) + mean([1, 3]) + median([5, 1, 3]) + len([1, 2])", env) == 5 + 2 + 3 + 2
    assert compute("max([trig_one, trig_two]) + min([4, 3])", env) == 5
    assert compute("len(filter(map([1, 2, 3], {# * 2}), {# > 3}))", env) == 2
    assert compute("all([1, 2], {# > 0}) && any([0, 1], {# > 0}) && none([0], {# > 0}) && one([1, 0], {# > 0})",
                   env) == 1
    for bad, fragment in [("# + 1", "outside a predicate"), ("count(trig_one, {# > 1})", "needs an array"),
                          ("count([1], 2)", "expected '{'"), ("[1, 2] + 1", "array used as a number"),
                          ("sum([gone])", "must be a number"), ("min([])", "empty array")]:
        with pytest.raises(FormulaError, match=fragment):
            compute(bad, env)


def test_httpscaledobject_numbers_are_bounded_too() -> None:
    target = {"name": "web", "kind": "Deployment", "apiVersion": "apps/v1", "service": "web", "port": 8080}
    raw = {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject",
           "metadata": {"name": "web", "namespace": "t"},
           "spec": {"hosts": ["example.com"], "scaleTargetRef": target,
                    "replicas": {"min": 0, "max": 10**40}, "scaledownPeriod": 2**31}}
    (result,) = validate_documents([Document("h.yaml", 0, raw)])
    fields = {e.field for e in result.errors}
    assert {"spec.replicas.max", "spec.scaledownPeriod"} <= fields, result.errors
    raw["spec"]["replicas"]["max"], raw["spec"]["scaledownPeriod"] = 10, 300
    raw["spec"]["scaleTargetRef"]["port"] = 99999999999
    (result,) = validate_documents([Document("h.yaml", 0, raw)])
    assert [e.field for e in result.errors] == ["spec.scaleTargetRef.port"], result.errors
