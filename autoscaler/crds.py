"""The CRDs surge serves, generated from the pydantic models the code validates with.

One source of truth: `python -m autoscaler.crds helm/surge/crds` writes the chart's CRDs and a
test checks the files equal this output. Pydantic's JSON Schema becomes a *structural* OpenAPI v3
schema: references inlined, `X | None` as `nullable`, `str | int` as int-or-string, models that
keep unknown fields marked `x-kubernetes-preserve-unknown-fields` (surge reports unknown fields
itself, with the field named, rather than having the API server drop them). Cross-field rules
(unique trigger names, formula references…) stay in code: OpenAPI cannot say them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from autoscaler.manifests.http import HTTPScaledObject, InterceptorRoute
from autoscaler.manifests.keda import ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication
from provisioner.nodeclass import EC2NodeClass, NodeClaim
from provisioner.nodepool import NodePool


@dataclass(frozen=True)
class CRD:
    model: type[BaseModel]
    group: str
    version: str
    kind: str
    plural: str
    scope: str
    short_names: tuple[str, ...] = ()
    columns: tuple[dict[str, Any], ...] = ()
    required_spec: bool = True
    categories: tuple[str, ...] = field(default=())


def _cond(kind: str) -> str:
    return f'.status.conditions[?(@.type=="{kind}")].status'


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
CRDS = (
    CRD(ScaledObject, "keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", "Namespaced", ("so",), (
        {"name": "ScaleTargetKind", "type": "string", "jsonPath": ".spec.scaleTargetRef.kind"},
        {"name": "ScaleTargetName", "type": "string", "jsonPath": ".spec.scaleTargetRef.name"},
        {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicaCount"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicaCount"},
        {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
        {"name": "Active", "type": "string", "jsonPath": _cond("Active")},
        {"name": "Fallback", "type": "string", "jsonPath": _cond("Fallback")},
        {"name": "Paused", "type": "string", "jsonPath": _cond("Paused")},
        AGE,
    ), categories=("keda", "surge")),
    CRD(TriggerAuthentication, "keda.sh", "v1alpha1", "TriggerAuthentication", "triggerauthentications",
        "Namespaced", ("ta", "triggerauth"), (AGE,), categories=("keda", "surge")),
    CRD(ClusterTriggerAuthentication, "keda.sh", "v1alpha1", "ClusterTriggerAuthentication",
        "clustertriggerauthentications", "Cluster", ("cta", "clustertriggerauth"), (AGE,),
        categories=("keda", "surge")),
    CRD(HTTPScaledObject, "http.keda.sh", "v1alpha1", "HTTPScaledObject", "httpscaledobjects", "Namespaced",
        ("httpso",), (
            {"name": "TargetWorkload", "type": "string", "jsonPath": ".status.targetWorkload"},
            {"name": "TargetService", "type": "string", "jsonPath": ".status.targetService"},
            {"name": "MinReplicas", "type": "integer", "jsonPath": ".spec.replicas.min"},
            {"name": "MaxReplicas", "type": "integer", "jsonPath": ".spec.replicas.max"},
            {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
            AGE,
        ), categories=("keda", "surge")),
    CRD(InterceptorRoute, "http.keda.sh", "v1beta1", "InterceptorRoute", "interceptorroutes", "Namespaced",
        ("ir",), (
            {"name": "Service", "type": "string", "jsonPath": ".spec.target.service"},
            {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
            AGE,
        ), categories=("keda", "surge")),
    CRD(NodePool, "karpenter.sh", "v1", "NodePool", "nodepools", "Cluster", (), (
        {"name": "NodeClass", "type": "string", "jsonPath": ".spec.template.spec.nodeClassRef.name"},
        {"name": "Weight", "type": "integer", "jsonPath": ".spec.weight"},
        {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
        AGE,
    ), categories=("karpenter", "surge")),
    CRD(NodeClaim, "karpenter.sh", "v1", "NodeClaim", "nodeclaims", "Cluster", (), (
        {"name": "Type", "type": "string",
         "jsonPath": ".metadata.labels.node\\.kubernetes\\.io/instance-type"},
        {"name": "Capacity", "type": "string", "jsonPath": ".metadata.labels.karpenter\\.sh/capacity-type"},
        {"name": "Node", "type": "string", "jsonPath": ".status.nodeName"},
        {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
        AGE,
    ), categories=("karpenter", "surge")),
    CRD(EC2NodeClass, "karpenter.k8s.aws", "v1", "EC2NodeClass", "ec2nodeclasses", "Cluster", ("ec2nc", "ec2ncs"), (
        {"name": "Role", "type": "string", "jsonPath": ".spec.role"},
        {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
        AGE,
    ), categories=("karpenter", "surge")),
)

_DROP = {"title", "default", "examples", "$defs", "discriminator"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Pydantic JSON Schema → a structural OpenAPI v3 schema."""
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            nullable = len(options) < len(schema[key])
            rest = {k: v for k, v in schema.items() if k not in (key, *_DROP)}
            types = sorted({o.get("type", "") for o in options})
            if len(options) == 1:
                union = structural({**options[0], **rest}, defs)
            elif types == ["integer", "string"] or types == ["integer", "number", "string"]:
                union = {"x-kubernetes-int-or-string": True, **_keep(rest)}
            else:
                union = {"x-kubernetes-preserve-unknown-fields": True, **_keep(rest)}
            if nullable:
                union["nullable"] = True
            return union
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _DROP:
            continue
        if k == "const":
            out["enum"] = [v]
            out.setdefault("type", "string" if isinstance(v, str) else "integer")
        elif k == "properties":
            out["properties"] = {name: structural(p, defs) for name, p in v.items()}
        elif k == "items":
            out["items"] = structural(v, defs)
        elif k == "additionalProperties":
            if v is True or v == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif v is not False:
                out["additionalProperties"] = structural(v, defs)
        elif k == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = v, True
        elif k == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = v, True
        else:
            out[k] = v
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in out and out.get("type") is None:
        out["type"] = "object"
    return out


def _keep(rest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rest.items() if k == "description"}


def openapi_schema(crd: CRD) -> dict[str, Any]:
    raw = crd.model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    props = raw.get("properties", {})
    spec = structural(props["spec"], defs)
    return {
        "type": "object",
        "required": ["spec"] if crd.required_spec else [],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }


def crd_manifest(crd: CRD) -> dict[str, Any]:
    names: dict[str, Any] = {"kind": crd.kind, "listKind": f"{crd.kind}List", "plural": crd.plural,
                             "singular": crd.kind.lower()}
    if crd.short_names:
        names["shortNames"] = list(crd.short_names)
    if crd.categories:
        names["categories"] = list(crd.categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{crd.plural}.{crd.group}",
                     "annotations": {"surge.dev/generated-by": "python -m autoscaler.crds"}},
        "spec": {
            "group": crd.group,
            "names": names,
            "scope": crd.scope,
            "versions": [{
                "name": crd.version, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": openapi_schema(crd)},
                "subresources": {"status": {}},
                "additionalPrinterColumns": list(crd.columns),
            }],
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text, for the chart's crds/ directory."""
    return {f"{c.group}_{c.plural}.yaml": yaml.safe_dump(crd_manifest(c), sort_keys=False, width=120)
            for c in CRDS}


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "helm/surge/crds")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
