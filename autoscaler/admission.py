"""KEDA's ScaledObject admission checks that look at other objects, over a set of manifests.

KEDA's webhook asks the API server; `surge validate` asks the files it was given: other
ScaledObjects in the same file (one per workload, one per HPA name), HorizontalPodAutoscalers in
the same file (one owner per workload), and for cpu/memory triggers the Deployment/StatefulSet's
container requests or a namespace LimitRange default from any of the files. Conflicts are looked
for within one file because a directory of independent examples is not one cluster.
Pure: documents in, (field, message) errors and warnings out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from autoscaler.manifests.keda import CPU_MEMORY, HPA_OWNERSHIP_CHECK, TRANSFER_HPA, ScaledObject
from autoscaler.manifests.loader import Document
from provisioner.resources import quantity


def gvk_string(api_version: str | None, kind: str | None) -> str:
    """KEDA's ParseGVKR(...).GVKString() with its defaults: apps/v1 Deployment."""
    api_version, kind = api_version or "apps/v1", kind or "Deployment"
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}.{kind}"


def _ns(raw: dict[str, Any]) -> str:
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return str((meta or {}).get("namespace") or "default")


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    meta = raw.get("metadata")
    return meta if isinstance(meta, dict) else {}


def cluster_checks(so: ScaledObject, docs: Iterable[Document],
                   file: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Errors (field, message) and warnings for `so` (read from `file`) against the other objects in `docs`."""
    docs = list(docs)
    same_file = [d.raw for d in docs if d.raw is not None and (file is None or d.file == file) and _ns(d.raw) == (
        so.metadata.namespace or "default")]
    ns, name = so.metadata.namespace or "default", so.metadata.name
    ref = so.spec.scale_target_ref
    target_gvk = gvk_string(ref.api_version, ref.kind)
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []
    others = [d.raw for d in docs if d.raw is not None and _ns(d.raw) == ns]
    for raw in same_file:
        kind, meta = raw.get("kind"), _meta(raw)
        if kind == "ScaledObject" and meta.get("name") != name:
            try:
                other = ScaledObject.model_validate(raw)
            except ValidationError:
                continue
            oref = other.spec.scale_target_ref
            if oref.name == ref.name and gvk_string(oref.api_version, oref.kind) == target_gvk:
                errors.append(("spec.scaleTargetRef.name",
                               f"the workload '{ref.name}' of type '{target_gvk}' is already managed by the "
                               f"ScaledObject '{other.metadata.name}'"))
            if other.hpa_name == so.hpa_name:
                errors.append(("spec.advanced.horizontalPodAutoscalerConfig.name",
                               f"the HPA '{so.hpa_name}' is already managed by the ScaledObject "
                               f"'{other.metadata.name}'"))
        elif kind == "HorizontalPodAutoscaler":
            problem = _hpa_problem(so, raw, target_gvk)
            if problem:
                errors.append(problem)
    cpu_mem = [t for t in so.spec.triggers if t.type in CPU_MEMORY]
    if cpu_mem and target_gvk in ("apps/v1.Deployment", "apps/v1.StatefulSet"):
        workload = next((r for r in others if r.get("kind") == ref.kind and _meta(r).get("name") == ref.name), None)
        if workload is None:
            warnings.append(f"spec.scaleTargetRef: {ref.kind} {ref.name!r} is not in these files; KEDA's admission "
                            "check that its containers request the cpu/memory the triggers scale on was not made")
        else:
            limit_ranges = [r for r in others if r.get("kind") == "LimitRange"]
            errors.extend(_resource_problems(so, workload, limit_ranges))
    return errors, warnings


def _hpa_problem(so: ScaledObject, hpa: dict[str, Any], target_gvk: str) -> tuple[str, str] | None:
    meta, spec = _meta(hpa), hpa.get("spec") or {}
    if (meta.get("annotations") or {}).get(HPA_OWNERSHIP_CHECK) == "false":
        return None
    hpa_ref = spec.get("scaleTargetRef") or {}
    ref = so.spec.scale_target_ref
    if hpa_ref.get("name") != ref.name or gvk_string(hpa_ref.get("apiVersion"), hpa_ref.get("kind")) != target_gvk:
        return None
    owners = meta.get("ownerReferences") or []
    if any(o.get("kind") == "ScaledObject" and o.get("name") == so.metadata.name for o in owners):
        return None
    hpa_name = str(meta.get("name"))
    if so.metadata.annotations.get(TRANSFER_HPA) == "true":
        adv = so.spec.advanced
        custom = adv.horizontal_pod_autoscaler_config.name if adv and adv.horizontal_pod_autoscaler_config else None
        if custom == hpa_name:
            return None
        return ("spec.advanced.horizontalPodAutoscalerConfig.name",
                f"the existing hpa '{hpa_name}' for workload '{ref.name}' of type '{target_gvk}' must be specified "
                "by name in advanced settings to enable ownership transfer")
    return ("spec.scaleTargetRef.name", f"the workload '{ref.name}' of type '{target_gvk}' is already managed by the "
                                        f"hpa '{hpa_name}'")


def _positive(values: dict[str, Any] | None, resource: str) -> bool:
    if not values or resource not in values:
        return False
    try:
        return quantity(values[resource]) > 0
    except (ValueError, TypeError):
        return False


def _resource_problems(so: ScaledObject, workload: dict[str, Any],
                       limit_ranges: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """KEDA's verifyCPUMemoryScalers: every (named) container sets the resource, or a LimitRange defaults it."""
    containers = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    out: list[tuple[str, str]] = []
    for i, trig in enumerate(so.spec.triggers):
        if trig.type not in CPU_MEMORY:
            continue
        wanted = trig.metadata.get("containerName", "")
        defaulted = any(
            item.get("type") == "Container"
            and (_positive(item.get("defaultRequest"), trig.type) or _positive(item.get("default"), trig.type))
            for lr in limit_ranges for item in ((lr.get("spec") or {}).get("limits") or []))
        for c in containers:
            if wanted and c.get("name") != wanted:
                continue
            res = c.get("resources") or {}
            if not (_positive(res.get("requests"), trig.type) or _positive(res.get("limits"), trig.type)) \
                    and not defaulted:
                out.append((f"spec.triggers[{i}]", f"the scaledobject has a {trig.type} trigger but the container "
                                                   f"{c.get('name')} doesn't have the {trig.type} request defined"))
                return out
    return out
