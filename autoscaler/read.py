"""`surge read`: read every trigger of the ScaledObjects in some files once, against the real
servers they name — what KEDA would see at its next poll."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from autoscaler.manifests.keda import ScaledObject
from autoscaler.manifests.loader import load_documents
from autoscaler.validate import AuthIndex


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
    from scalers.base import Trigger
    from scalers.batch import poll_cycle
    from scalers.errors import ScalerError
    from scalers.registry import build_scaler

    docs = load_documents(paths)
    auth = AuthIndex(docs)
    reports: list[TriggerReport] = []
    pending = []
    for doc in docs:
        if doc.kind != "ScaledObject" or doc.raw is None:
            continue
        so = ScaledObject.model_validate(doc.raw)
        for i, trig in enumerate(so.spec.triggers):
            label = trig.name or f"{trig.type}#{i}"
            params, assumed, provider, warning = auth.resolve(so, i)
            if assumed:
                reports.append(TriggerReport(so.metadata.name, label, "", None, None, False, None,
                                             warning or f"auth parameters {sorted(assumed)} are not in these files"))
                continue
            try:
                scaler = build_scaler(Trigger(type=trig.type, name=trig.name or "", index=i, metadata=trig.metadata,
                                              auth_params=params, resolved_env=dict(env), pod_identity=provider,
                                              metric_type=trig.metric_type or "AverageValue"))
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
    return reports
