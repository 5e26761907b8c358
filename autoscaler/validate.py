"""`surge validate`: check manifests the way KEDA would, and say exactly what is wrong where.

Trigger metadata is checked by building each trigger's scaler config (no I/O). Values that come
from a TriggerAuthentication are taken from Secrets in the same files when present; values
surge cannot see here (Secrets elsewhere, the target's env, external secret stores) are assumed
to be supplied, and problems that could only come from them are not reported.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoscaler.admission import cluster_checks
from autoscaler.manifests.common import unknown_fields
from autoscaler.manifests.keda import (
    ClusterTriggerAuthentication,
    ScaledObject,
    TriggerAuthentication,
    cluster_object_namespace,
    target_of,
)
from autoscaler.manifests.loader import MODELS, Document, load_documents
from autoscaler.redact import remember
from provisioner.nodeclass import EC2NodeClass, nodeclass_crd_problems
from provisioner.nodepool import NodePool, crd_problems

UNRESOLVED = "surge-unresolved"
# API groups of the projects surge stands in for: a kind of theirs that surge does not model is said so
OWN_GROUPS = ("keda.sh", "eventing.keda.sh", "http.keda.sh", "karpenter.sh", "karpenter.k8s.aws")


@dataclass
class Issue:
    field: str
    message: str


@dataclass
class ObjectResult:
    file: str
    kind: str
    name: str
    ok: bool
    errors: list[Issue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_PREFIXED = re.compile(r"^([A-Za-z][\w.\[\]/-]*): (.+)$", re.S)


def join_path(loc: str, prefix: str) -> str:
    """`loc` + `prefix` without repeating the part they share (spec.scaleTargetRef + scaleTargetRef.name
    → spec.scaleTargetRef.name, not spec.scaleTargetRef.scaleTargetRef.name)."""
    if not loc or prefix == loc or prefix.startswith(loc + "."):
        return prefix
    parts = loc.split(".")
    for i in range(len(parts)):
        tail = ".".join(parts[i:])
        if prefix == tail or prefix.startswith(tail + ".") or prefix.startswith(tail + "["):
            return ".".join([*parts[:i], prefix])
    return f"{loc}.{prefix}"


def issues_from(exc: ValidationError) -> list[Issue]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        message = err["msg"].removeprefix("Value error, ")
        match = _PREFIXED.match(message)
        if match and not match.group(1).startswith("http"):
            loc = join_path(loc, match.group(1))
            message = match.group(2)
        if err["type"] == "missing":
            message = "is required"
        elif err["type"] == "extra_forbidden":
            message = "is not a known field"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {err['input']!r})"
        out.append(Issue(loc or "(document)", message))
    return out


@dataclass
class Resolved:
    """What a trigger's authenticationRef gives: params, params assumed supplied, the pod identity."""

    params: dict[str, str]
    assumed: set[str]
    provider: str
    identity: dict[str, str]
    warning: str | None


class AuthIndex:
    """Secrets and (Cluster)TriggerAuthentications found in the files, for resolving auth params."""

    def __init__(self, docs: Iterable[Document], cluster_namespace: str | None = None) -> None:
        self.cluster_namespace = cluster_namespace or cluster_object_namespace()
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.auths: dict[tuple[str, str], TriggerAuthentication] = {}
        self.cluster_auths: dict[str, ClusterTriggerAuthentication] = {}
        for doc in docs:
            raw = doc.raw or {}
            meta: dict[str, Any] = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
            ns = str(meta.get("namespace") or "default")
            try:
                if doc.kind == "Secret" and isinstance(meta.get("name"), str):
                    self.secrets[(ns, meta["name"])] = secret_values(raw)
                elif doc.kind == "TriggerAuthentication":
                    ta = TriggerAuthentication.model_validate(raw)
                    self.auths[(ns, ta.metadata.name)] = ta
                elif doc.kind == "ClusterTriggerAuthentication":
                    cta = ClusterTriggerAuthentication.model_validate(raw)
                    self.cluster_auths[cta.metadata.name] = cta
            except ValidationError:
                continue  # reported on its own

    def resolve(self, so: ScaledObject, index: int) -> Resolved:
        """Auth params, the names of params assumed supplied, the pod identity, and a warning."""
        ref = so.spec.triggers[index].authentication_ref
        if ref is None:
            return Resolved({}, set(), "", {}, None)
        ns = so.metadata.namespace or "default"
        cluster = ref.kind == "ClusterTriggerAuthentication"
        auth = self.cluster_auths.get(ref.name) if cluster else self.auths.get((ns, ref.name))
        if auth is None:
            where = "" if cluster else f" in namespace {ns!r}"
            return Resolved({}, {"*"}, "", {}, (f"spec.triggers[{index}].authenticationRef: {ref.kind} {ref.name!r}"
                                                f"{where} is not in these files; its parameters are assumed to be "
                                                "supplied"))
        pi = auth.spec.pod_identity
        provider, identity = (pi.provider, pi.params()) if pi else ("", {})
        if auth.spec.file_path and cluster:  # KEDA then takes the parameters from the file alone
            return Resolved({}, {"*"}, provider, identity, None)
        # KEDA reads a ClusterTriggerAuthentication's Secrets from its own (cluster object) namespace
        secret_ns = self.cluster_namespace if cluster else ns
        params: dict[str, str] = {}
        assumed: set[str] = set(auth.spec.store_parameters())
        for s in auth.spec.secret_target_ref:
            value = self.secrets.get((secret_ns, s.name), {}).get(s.key)
            if value is None:
                assumed.add(s.parameter)
                params[s.parameter] = UNRESOLVED
            else:
                params[s.parameter] = value
        for ref_list in (auth.spec.config_map_target_ref, auth.spec.env):
            for item in ref_list:
                assumed.add(item.parameter)
                params[item.parameter] = UNRESOLVED
        for p in assumed:
            params.setdefault(p, UNRESOLVED)
        return Resolved(params, assumed, provider, identity, None)


def secret_values(raw: dict[str, Any]) -> dict[str, str]:
    """A Secret's values: stringData as is, data base64-decoded (or as written, when it is not base64,
    as in documentation examples)."""
    values: dict[str, str] = {}
    data, string_data = raw.get("data"), raw.get("stringData")
    for key, value in (data if isinstance(data, dict) else {}).items():
        if not isinstance(value, str | int | float):
            continue  # a Secret's values are strings; nested data is the API server's to refuse
        text = str(value)
        try:
            values[key] = base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            values[key] = text
    values.update({k: str(v) for k, v in (string_data if isinstance(string_data, dict) else {}).items()
                   if isinstance(v, str | int | float)})
    remember(*values.values())
    return values


def check_triggers(so: ScaledObject, auth: AuthIndex) -> tuple[list[Issue], list[str]]:
    from scalers.base import Trigger
    from scalers.errors import ConfigError
    from scalers.registry import build_scaler, known_types

    errors: list[Issue] = []
    warnings: list[str] = []
    for i, trig in enumerate(so.spec.triggers):
        path = f"spec.triggers[{i}]"
        if trig.type not in known_types():
            warnings.append(f"{path}.type: trigger type {trig.type!r} is not implemented by surge; KEDA accepts it, "
                            "and the operator will report it as not active at run time")
            continue
        resolved = auth.resolve(so, i)
        params, assumed = resolved.params, resolved.assumed
        if resolved.warning:
            warnings.append(resolved.warning)
        env = {v: UNRESOLVED for k, v in trig.metadata.items() if k.endswith("FromEnv")}
        from_env = {k.removesuffix("FromEnv") for k in trig.metadata if k.endswith("FromEnv")}
        try:
            build_scaler(Trigger(type=trig.type, name=trig.name or "", index=i, metadata=trig.metadata,
                                 auth_params=params, resolved_env=env, metric_type=trig.metric_type or "AverageValue",
                                 metric_type_given=trig.metric_type is not None, scale_target=target_of(so),
                                 namespace=so.metadata.namespace or "default", pod_identity=resolved.provider,
                                 pod_identity_params=resolved.identity, as_metric_source=so.spec.uses_modifiers))
        except ConfigError as exc:
            for err in exc.errors:
                if err.unsupported:
                    warnings.append(f"{path}.metadata.{err.field}: {err.message}; KEDA accepts it, and the "
                                    "operator will report it as not implemented by surge at run time")
                    continue
                if "*" in assumed or err.field in assumed or err.field in from_env:
                    continue
                where = "metadata" if err.field in trig.metadata or err.field not in params else "authentication"
                errors.append(Issue(f"{path}.{where}.{err.field}", err.message))
        except (ImportError, AttributeError) as exc:
            warnings.append(f"{path}: metadata not checked ({exc})")
    return errors, warnings


def validate_documents(docs: list[Document]) -> list[ObjectResult]:
    auth = AuthIndex(docs)
    results: list[ObjectResult] = []
    for doc in docs:
        if doc.raw is None:
            results.append(ObjectResult(doc.file, "", "", False, [Issue("(document)", doc.error or "unreadable")]))
            continue
        result = ObjectResult(doc.file, doc.kind, doc.name, True)
        model = MODELS.get(doc.kind)
        if model is None:  # kinds surge does not model pass through; its own API groups' are named
            group = str(doc.raw.get("apiVersion", "")).partition("/")[0]
            if group in OWN_GROUPS:
                result.warnings.append(f"kind {doc.kind} ({group}) is not implemented by surge: not checked")
            elif not doc.kind:
                result.warnings.append(f"document {doc.index}: no kind, not a Kubernetes object: not checked")
            results.append(result)
            continue
        try:
            obj = model.model_validate(doc.raw)
        except ValidationError as exc:
            result.errors = issues_from(exc)
        else:
            result.warnings += [f"{p}: unknown field, ignored by surge" for p in unknown_fields(obj)]
            if isinstance(obj, NodePool):
                result.errors += [Issue(f, m) for f, m in crd_problems(obj)]
            if isinstance(obj, EC2NodeClass):
                result.errors += [Issue(f, m) for f, m in nodeclass_crd_problems(obj)]
            if isinstance(obj, NodePool | EC2NodeClass):
                result.warnings += [f if ":" in f else f"{f}: not supported by surge" for f in obj.unsupported_fields()]
            if isinstance(obj, ScaledObject):
                result.warnings += obj.admission_warnings()
                errors, warnings = cluster_checks(obj, docs, doc.file)
                result.errors += [Issue(f, m) for f, m in errors]
                result.warnings += warnings
                errors2, warnings = check_triggers(obj, auth)
                result.errors += errors2
                result.warnings += warnings
            if isinstance(obj, TriggerAuthentication | ClusterTriggerAuthentication):
                stores = sorted(n for n in ("hashiCorpVault", "azureKeyVault", "awsSecretManager", "gcpSecretManager")
                                if getattr(obj.spec, re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower()) is not None)
                result.warnings += [f"spec.{s}: external secret store is not read by surge yet" for s in stores]
                if isinstance(obj, TriggerAuthentication) and obj.spec.file_path:
                    result.warnings.append("spec.filePath: only a ClusterTriggerAuthentication's filePath is read "
                                           "(KEDA and surge refuse it at run time on a TriggerAuthentication)")
        result.ok = not result.errors
        results.append(result)
    return results


def validate_paths(paths: Iterable[str | Path]) -> list[ObjectResult]:
    return validate_documents(load_documents(paths))
