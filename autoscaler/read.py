"""`surge read`: read every trigger of the ScaledObjects in some files once, against the real
servers they name — what KEDA would see at its next poll."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from autoscaler.manifests.keda import ScaledObject, target_of
from autoscaler.manifests.loader import load_documents
from autoscaler.manifests.reader import ManifestError
from autoscaler.validate import AuthIndex, issues_from


@dataclass
class Verdict:
    """What the replica engine would do right now for one ScaledObject (fresh state)."""

    scaled_object: str
    current: int
    desired: int
    reason: str


@dataclass
class TriggerReport:
    scaled_object: str
    trigger: str
    metric: str
    value: float | None
    target: float | None
    active: bool
    replicas_for_metric: int | None  # ceil(value / target): what this metric alone asks the HPA for
    error: str | None = None


async def read_once(paths: Iterable[str | Path], env: Mapping[str, str]) -> list[TriggerReport]:
    reports, _ = await read_and_decide(paths, env, current=None)
    return reports


async def read_and_decide(
    paths: Iterable[str | Path], env: Mapping[str, str], current: int | None
) -> tuple[list[TriggerReport], list[Verdict]]:
    """Read the triggers; with `current` replicas given, also run the replica engine on them."""
    from scalers.base import Trigger
    from scalers.batch import poll_cycle
    from scalers.errors import ScalerError
    from scalers.registry import build_scaler

    docs = load_documents(paths)
    unreadable = next((d for d in docs if d.raw is None), None)
    if unreadable is not None:
        raise ManifestError(unreadable.file, unreadable.error or "unreadable")
    objects: list[ScaledObject] = []
    auth = AuthIndex(docs)
    reports: list[TriggerReport] = []
    pending = []
    for doc in docs:
        if doc.kind != "ScaledObject" or doc.raw is None:
            continue
        try:
            so = ScaledObject.model_validate(doc.raw)
        except ValidationError as exc:
            first = issues_from(exc)[0]
            raise ManifestError(doc.file, f"ScaledObject {doc.name or '?'}: {first.message}", doc.index,
                                first.field) from None
        objects.append(so)
        for i, trig in enumerate(so.spec.triggers):
            label = trig.name or f"{trig.type}#{i}"
            resolved = auth.resolve(so, i)
            params, assumed = resolved.params, resolved.assumed
            if assumed:
                reports.append(TriggerReport(so.metadata.name, label, "", None, None, False, None, resolved.warning
                                             or f"auth parameters {sorted(assumed)} are not in these files"))
                continue
            try:
                scaler = build_scaler(Trigger(type=trig.type, name=trig.name or "", index=i, metadata=trig.metadata,
                                              auth_params=params, resolved_env=dict(env),
                                              pod_identity=resolved.provider,
                                              pod_identity_params=resolved.identity,
                                              metric_type=trig.metric_type or "AverageValue",
                                              metric_type_given=trig.metric_type is not None,
                                              namespace=so.metadata.namespace or "default",
                                              scale_target=target_of(so),
                                              as_metric_source=so.spec.uses_modifiers))
            except ScalerError as exc:
                reports.append(TriggerReport(so.metadata.name, label, "", None, None, False, None, str(exc)))
                continue
            pending.append((so.metadata.name, label, scaler))
    outcomes = await poll_cycle([s for _, _, s in pending])
    for (so_name, label, scaler), outcome in zip(pending, outcomes, strict=True):
        spec = scaler.metric_specs()[0]
        if isinstance(outcome, Exception):
            reports.append(TriggerReport(so_name, label, spec.name, None, spec.target, False, None, str(outcome)))
        else:
            value = outcome.values[spec.name]
            reports.append(TriggerReport(so_name, label, spec.name, value, spec.target, outcome.active,
                                         math.ceil(value / spec.target) if spec.target else None))
        await scaler.close()
    verdicts = [] if current is None else [decide_now(so, reports, current) for so in objects]
    return reports, verdicts


def decide_now(so: ScaledObject, reports: list[TriggerReport], current: int) -> Verdict:
    import time

    from autoscaler.engine.decide import EngineState, TriggerReading, decide
    from autoscaler.engine.spec import scaling_spec, trigger_key

    mine = [r for r in reports if r.scaled_object == so.metadata.name]
    by_label = {r.trigger: r for r in mine}
    keys = {trigger_key(so, i): (t.name or f"{t.type}#{i}") for i, t in enumerate(so.spec.triggers)}
    targets = {k: by_label[v].target or 1.0 for k, v in keys.items() if v in by_label and by_label[v].target}
    readings = {k: (TriggerReading(by_label[v].value, by_label[v].active) if by_label.get(v) and not by_label[v].error
                    else TriggerReading(error=by_label[v].error if v in by_label else "not read"))
                for k, v in keys.items()}
    now = time.time()
    d = decide(scaling_spec(so, targets), readings, current, current, EngineState(created_at=now - 86400), now)
    return Verdict(so.metadata.name, current, current if d.replicas is None else d.replicas, d.reason)
