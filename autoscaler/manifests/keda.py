"""KEDA's keda.sh/v1alpha1 kinds: ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication.

Defaults are KEDA 2.20's; the validation rules are those KEDA's admission webhook and CRD
schema enforce, so a manifest surge accepts is one KEDA accepts. `spec.advanced.predictive` is
surge's own extension; without it a ScaledObject behaves exactly as under KEDA.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from autoscaler.engine.formula import FormulaError, compile_formula
from autoscaler.manifests.common import INT32_MAX, Model, ObjectMeta

PAUSED = "autoscaling.keda.sh/paused"
PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
PAUSED_SCALE_IN = "autoscaling.keda.sh/paused-scale-in"
PAUSED_SCALE_OUT = "autoscaling.keda.sh/paused-scale-out"

MetricType = Literal["AverageValue", "Value", "Utilization"]
_DURATION = re.compile(r"^(\d+(\.\d+)?(ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str) -> float:
    """Go-style duration ("90s", "5m", "1h30m", plus "d") in seconds."""
    if not _DURATION.match(value):
        raise ValueError(f"expected a duration such as 90s, 5m or 1h30m, got {value!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


class ScaleTargetRef(Model):
    api_version: str = "apps/v1"
    kind: str = "Deployment"
    name: str = Field(min_length=1)
    env_source_container_name: str | None = None


class HPAScalingPolicy(Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, le=INT32_MAX)
    period_seconds: int = Field(gt=0, le=1800)


class HPAScalingRules(Model):
    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[HPAScalingPolicy] | None = None
    tolerance: float | None = Field(default=None, ge=0)

    @field_validator("tolerance", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        # Kubernetes writes tolerance as a quantity ("0.05", "50m")
        if isinstance(value, str) and value.endswith("m"):
            return float(value[:-1]) / 1000
        return value


class HPABehavior(Model):
    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


class HorizontalPodAutoscalerConfig(Model):
    name: str | None = None
    behavior: HPABehavior | None = None


class ScalingModifiers(Model):
    formula: str | None = None
    target: str | None = None
    activation_target: str | None = None
    metric_type: Literal["AverageValue", "Value"] | None = None


class PredictiveSpec(Model):
    """surge's extension: scale ahead of forecast load (off unless asked for)."""

    mode: Literal["off", "shadow", "on"] = "off"
    horizon: str | None = None
    quantile: float = Field(default=0.9, gt=0, lt=1)
    min_history: str = "24h"
    max_scale_up_from_forecast: int | None = Field(default=None, ge=0, le=INT32_MAX)

    @field_validator("horizon", "min_history")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value


class Advanced(Model):
    restore_to_original_replica_count: bool = False
    horizontal_pod_autoscaler_config: HorizontalPodAutoscalerConfig | None = None
    scaling_modifiers: ScalingModifiers | None = None
    predictive: PredictiveSpec | None = None


class Fallback(Model):
    failure_threshold: int = Field(ge=0, le=INT32_MAX)
    replicas: int = Field(ge=0, le=INT32_MAX)
    behavior: Literal["static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower",
                      "scalingModifiers"] = "static"


class AuthenticationRef(Model):
    name: str
    kind: Literal["TriggerAuthentication", "ClusterTriggerAuthentication"] = "TriggerAuthentication"


class ScaleTrigger(Model):
    type: str = Field(min_length=1)
    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    metric_type: MetricType | None = None
    use_cached_metrics: bool = False
    authentication_ref: AuthenticationRef | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _strings_only(cls, value: Any) -> Any:
        if isinstance(value, dict):
            # the API server prunes null values of non-nullable fields (`offsetResetPolicy:` with
            # nothing after it, as templates leave it) before validation: the key is then absent
            value = {key: item for key, item in value.items() if item is not None}
            for key, item in value.items():
                if not isinstance(item, str):
                    raise ValueError(f"{key}: expected a string, got {type(item).__name__} {item!r} "
                                     "(quote it in YAML)")
        return value


CPU_MEMORY = ("cpu", "memory")


class ScaledObjectSpec(Model):
    scale_target_ref: ScaleTargetRef
    polling_interval: int = Field(default=30, ge=1, le=INT32_MAX)
    cooldown_period: int = Field(default=300, ge=0, le=INT32_MAX)
    initial_cooldown_period: int = Field(default=0, ge=0, le=INT32_MAX)
    idle_replica_count: int | None = Field(default=None, ge=0, le=INT32_MAX)
    min_replica_count: int = Field(default=0, ge=0, le=INT32_MAX)
    max_replica_count: int = Field(default=100, ge=1, le=INT32_MAX)
    fallback: Fallback | None = None
    advanced: Advanced | None = None
    triggers: list[ScaleTrigger] = Field(min_length=1)

    @model_validator(mode="after")
    def _keda_rules(self) -> ScaledObjectSpec:
        """KEDA's admission rules that need only this spec (CRD CEL rule, CheckReplicaCountBoundsAreValid,
        ValidateTriggers, CheckFallbackValid, the scalingModifiers checks), in KEDA's words."""
        given = self.model_fields_set
        if "min_replica_count" in given:
            limit = self.max_replica_count if "max_replica_count" in given else 100
            if self.min_replica_count > limit:
                raise ValueError("minReplicaCount: must be less than or equal to maxReplicaCount "
                                 f"(minReplicaCount={self.min_replica_count}, maxReplicaCount={limit})")
        # KEDA compares against the HPA's minimum: an explicit minReplicaCount of 0 counts as 1
        hpa_min = max(self.min_replica_count, 1) if "min_replica_count" in given else 0
        if hpa_min > self.max_replica_count:
            raise ValueError(f"minReplicaCount: MinReplicaCount={hpa_min} must be less than "
                             f"MaxReplicaCount={self.max_replica_count}")
        if self.idle_replica_count is not None and self.idle_replica_count >= hpa_min:
            raise ValueError(f"idleReplicaCount: IdleReplicaCount={self.idle_replica_count} must be less than "
                             f"MinReplicaCount={hpa_min}")
        seen: set[str] = set()
        for i, trig in enumerate(self.triggers):
            if trig.use_cached_metrics and trig.type in (*CPU_MEMORY, "cron"):
                raise ValueError(f"triggers[{i}].useCachedMetrics: property \"useCachedMetrics\" is not supported "
                                 f"for {trig.type!r} scaler")
            if trig.name:
                if trig.name in seen:
                    raise ValueError(f"triggers[{i}].name: triggerName {trig.name!r} is defined multiple times in "
                                     "the ScaledObject, but it must be unique")
                seen.add(trig.name)
            if trig.type in CPU_MEMORY and trig.metric_type not in (None, "Utilization", "AverageValue"):
                raise ValueError(f"triggers[{i}].metricType: {trig.type} triggers take Utilization or AverageValue")
            if trig.type not in CPU_MEMORY and trig.metric_type == "Utilization":
                raise ValueError(f"triggers[{i}].metricType: Utilization is only for cpu and memory triggers")
        if self.fallback is not None and not self.uses_modifiers and all(t.type in CPU_MEMORY for t in self.triggers):
            raise ValueError("fallback: at least one trigger (that is not cpu or memory) has to have the "
                             "`AverageValue` type for the fallback to be enabled")
        problem = self.scale_to_zero_problem()
        if problem:
            raise ValueError(f"minReplicaCount: {problem}")
        self._check_modifiers()
        if self.fallback is not None and self.fallback.behavior == "scalingModifiers":
            modifiers = self.advanced.scaling_modifiers if self.advanced else None
            if modifiers is None or not modifiers.formula:
                raise ValueError("fallback.behavior: scalingModifiers fallback behavior requires "
                                 "advanced.scalingModifiers.formula to be defined")
        return self

    @property
    def uses_modifiers(self) -> bool:
        """KEDA's IsUsingModifiers: any scalingModifiers field set."""
        m = self.advanced.scaling_modifiers if self.advanced else None
        return m is not None and any((m.formula, m.target, m.activation_target, m.metric_type))

    def scale_to_zero_problem(self) -> str | None:
        """KEDA refuses scale to zero when every trigger is cpu/memory (checked, as KEDA does, for
        Deployment and StatefulSet targets)."""
        ref = self.scale_target_ref
        if ref.api_version != "apps/v1" or ref.kind not in ("Deployment", "StatefulSet"):
            return None
        only_resource = all(t.type in CPU_MEMORY for t in self.triggers)
        if only_resource and self.triggers and self.min_replica_count == 0:
            return ("scaledobject has only cpu/memory triggers AND minReplica is 0 (scale to zero doesn't "
                    "work in this case)")
        return None

    def _check_modifiers(self) -> None:
        if not self.uses_modifiers:
            return
        modifiers = self.advanced.scaling_modifiers if self.advanced else None
        assert modifiers is not None
        if not modifiers.formula:
            raise ValueError("advanced.scalingModifiers.formula: is mandatory when scalingModifiers are used")
        if not modifiers.target:
            raise ValueError("advanced.scalingModifiers.target: formula is given but target is empty")
        # the formula is compiled against the named triggers other than cpu/memory, as KEDA does
        usable = {t.name for t in self.triggers if t.name and t.type not in CPU_MEMORY}
        problem = formula_problem(modifiers.formula, usable)
        if problem:
            raise ValueError(f"advanced.scalingModifiers.formula: {problem}")
        for key in ("target", "activation_target"):
            raw = getattr(modifiers, key)
            if raw is not None:
                try:
                    value = float(raw)
                except ValueError:
                    raise ValueError(f"advanced.scalingModifiers.{key}: expected a number, got {raw!r}") from None
                if not math.isfinite(value):
                    raise ValueError(f"advanced.scalingModifiers.{key}: expected a finite number, got {raw!r}")
                if key == "target" and value <= 0:
                    raise ValueError("advanced.scalingModifiers.target: must be greater than 0")


def formula_problem(formula: str, triggers: set[str]) -> str | None:
    """Why KEDA would not compile `formula` with `triggers` as its variables, or None.

    Compiled by the engine's own formula compiler (syntax, number literals, length and depth
    limits: what would fail at run time fails here)."""
    from autoscaler.engine.formula import names, parse

    try:
        node = parse(formula)
    except FormulaError as exc:
        return f"does not parse: {exc}"
    unknown = sorted(names(node) - triggers)
    if unknown:
        return (f"refers to {unknown}, which are not names of triggers it can use (named triggers other than "
                f"cpu/memory: {sorted(triggers)})")
    try:
        compile_formula(formula, triggers)
    except FormulaError as exc:
        return str(exc)
    return None


_FORMULA_FUNCTIONS = {"min", "max", "abs", "ceil", "floor", "round", "true", "false", "nil", "len", "float", "int"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def formula_identifiers(formula: str) -> list[str]:
    """Names a scalingModifiers formula refers to (trigger names), ignoring functions and strings."""
    without_strings = re.sub(r"\"[^\"]*\"|'[^']*'", " ", formula)
    out = []
    for match in _IDENT.finditer(without_strings):
        token = match.group(0)
        end = match.end()
        if token in _FORMULA_FUNCTIONS or without_strings[end:end + 1] == "(":
            continue
        out.append(token)
    return out


HPA_PREFIX = "keda-hpa-"
LABEL_VALUE_MAX = 63
TRANSFER_HPA = "scaledobject.keda.sh/transfer-hpa-ownership"
HPA_OWNERSHIP_CHECK = "validations.keda.sh/hpa-ownership"


class ScaledObject(Model):
    api_version: Literal["keda.sh/v1alpha1"]
    kind: Literal["ScaledObject"]
    metadata: ObjectMeta
    spec: ScaledObjectSpec
    status: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _names(self) -> ScaledObject:
        name = self.metadata.name
        if len(name) > LABEL_VALUE_MAX:
            raise ValueError(f"metadata.name: scaledobject name {name!r} is {len(name)} characters long; must be no "
                             f"more than {LABEL_VALUE_MAX} characters because it is used as the "
                             "\"scaledobject.keda.sh/name\" label value")
        hpa = self.hpa_name
        if len(hpa) > LABEL_VALUE_MAX:
            raise ValueError(f"spec.advanced.horizontalPodAutoscalerConfig.name: HPA name {hpa!r} derived from "
                             f"scaledobject is {len(hpa)} characters long; must be no more than {LABEL_VALUE_MAX} "
                             "characters; set spec.advanced.horizontalPodAutoscalerConfig.name to a shorter name or "
                             "shorten the scaledobject name")
        return self

    @property
    def hpa_name(self) -> str:
        """KEDA's getHpaName: the custom name, else keda-hpa-<name>."""
        adv = self.spec.advanced
        custom = adv.horizontal_pod_autoscaler_config.name if adv and adv.horizontal_pod_autoscaler_config else None
        return custom or f"{HPA_PREFIX}{self.metadata.name}"

    def admission_warnings(self) -> list[str]:
        """KEDA's admission warnings: settings that have no effect as written."""
        spec, given = self.spec, self.spec.model_fields_set
        min_replicas = spec.min_replica_count if "min_replica_count" in given else 0
        idle_disabled = spec.idle_replica_count is None
        cached = any(t.use_cached_metrics for t in spec.triggers)
        out = []
        if "polling_interval" in given and min_replicas > 0 and idle_disabled and not cached:
            out.append("spec.pollingInterval: PollingInterval is configured but is not relevant. PollingInterval is "
                       "only relevant when minReplicaCount = 0, idleReplicaCount is set, or useCachedMetrics is "
                       "enabled")
        if "cooldown_period" in given and min_replicas > 0 and idle_disabled:
            out.append("spec.cooldownPeriod: CooldownPeriod is configured but is not relevant. CooldownPeriod is "
                       "only relevant when minReplicaCount = 0 or idleReplicaCount is set")
        return out

    @model_validator(mode="after")
    def _annotations(self) -> ScaledObject:
        value = self.metadata.annotations.get(PAUSED_REPLICAS)
        if value is not None and not value.strip().isdigit():
            raise ValueError(f"metadata.annotations[{PAUSED_REPLICAS}]: expected a non-negative integer, got {value!r}")
        for key in (PAUSED, PAUSED_SCALE_IN, PAUSED_SCALE_OUT):
            flag = self.metadata.annotations.get(key)
            if flag is not None and flag.lower() not in ("true", "false"):
                raise ValueError(f"metadata.annotations[{key}]: expected \"true\" or \"false\", got {flag!r}")
        return self

    @property
    def paused(self) -> bool:
        return self.metadata.annotations.get(PAUSED, "").lower() == "true"

    @property
    def paused_replicas(self) -> int | None:
        value = self.metadata.annotations.get(PAUSED_REPLICAS)
        return int(value) if value is not None else None

    @property
    def paused_scale_in(self) -> bool:
        return self.metadata.annotations.get(PAUSED_SCALE_IN, "").lower() == "true"

    @property
    def paused_scale_out(self) -> bool:
        return self.metadata.annotations.get(PAUSED_SCALE_OUT, "").lower() == "true"


class SecretTargetRef(Model):
    parameter: str
    name: str
    key: str


class EnvRef(Model):
    parameter: str
    name: str
    container_name: str | None = None


class PodIdentity(Model):
    provider: Literal["none", "azure-workload", "aws", "aws-eks", "gcp"] = "none"
    identity_id: str | None = None
    identity_tenant_id: str | None = None
    identity_authority_host: str | None = None
    role_arn: str | None = None
    external_id: str | None = Field(default=None, alias="externalID")
    identity_owner: Literal["keda", "workload"] | None = None

    def params(self) -> dict[str, str]:
        """The fields given, under KEDA's names, for the scalers (roleArn, externalID, ...)."""
        dumped = self.model_dump(by_alias=True, exclude_none=True, exclude={"provider"})
        return {k: str(v) for k, v in dumped.items() if isinstance(v, str)}


class OAuth2(Model):
    type: Literal["clientCredentials"] = "clientCredentials"
    client_id: str = ""
    client_secret: dict[str, Any] | None = None
    token_url: str = ""
    scopes: list[str] = Field(default_factory=list)
    token_url_params: dict[str, str] = Field(default_factory=dict)


class TriggerAuthenticationSpec(Model):
    pod_identity: PodIdentity | None = None
    secret_target_ref: list[SecretTargetRef] = Field(default_factory=list)
    config_map_target_ref: list[SecretTargetRef] = Field(default_factory=list)
    env: list[EnvRef] = Field(default_factory=list)
    file_path: str | None = None
    hashi_corp_vault: dict[str, Any] | None = None
    azure_key_vault: dict[str, Any] | None = None
    aws_secret_manager: dict[str, Any] | None = None
    gcp_secret_manager: dict[str, Any] | None = None
    bound_service_account_token: list[dict[str, Any]] | None = None
    oauth2: OAuth2 | None = None

    @model_validator(mode="after")
    def _keda_rules(self) -> TriggerAuthenticationSpec:
        """KEDA's TriggerAuthentication admission rules (validateSpec), in its words."""
        pi = self.pod_identity
        if pi is not None and pi.provider == "azure-workload":
            if pi.identity_id == "":
                raise ValueError("podIdentity.identityId: identityId of PodIdentity should not be empty. If it's "
                                 "set, identityId has to be different than \"\"")
            if pi.identity_authority_host:
                if not pi.identity_tenant_id:
                    raise ValueError("podIdentity.identityTenantId: identityTenantID of PodIdentity should not be "
                                     "nil or empty when identityAuthorityHost of PodIdentity is set")
            elif pi.identity_tenant_id == "":
                raise ValueError("podIdentity.identityTenantId: identityTenantId of PodIdentity should not be empty. "
                                 "If it's set, identityTenantId has to be different than \"\"")
        elif pi is not None and pi.provider == "aws":
            if pi.role_arn and pi.identity_owner == "workload":
                raise ValueError("podIdentity.roleArn: roleArn of PodIdentity can't be set if KEDA isn't "
                                 "identityOwner")
            if pi.external_id and not pi.role_arn:
                raise ValueError("podIdentity.externalID: externalID of PodIdentity requires roleArn to be set")
        if self.oauth2 is not None:
            o = self.oauth2
            if not o.client_id:
                raise ValueError("oauth2.clientId: is required when oauth2 is configured")
            if not o.token_url:
                raise ValueError("oauth2.tokenUrl: is required when oauth2 is configured")
            parsed = urlparse(o.token_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"oauth2.tokenUrl: must be a valid http or https URL, got {o.token_url!r}")
        return self

    def store_parameters(self) -> set[str]:
        """Parameters filled from external secret stores surge does not read itself."""
        params: set[str] = set()
        for store in (self.hashi_corp_vault, self.azure_key_vault, self.aws_secret_manager, self.gcp_secret_manager):
            for secret in (store or {}).get("secrets", []) or []:
                if isinstance(secret, dict) and "parameter" in secret:
                    params.add(str(secret["parameter"]))
        for item in self.bound_service_account_token or []:
            if "parameter" in item:
                params.add(str(item["parameter"]))
        return params


class _AuthenticationBase(Model):
    api_version: Literal["keda.sh/v1alpha1"]
    metadata: ObjectMeta
    spec: TriggerAuthenticationSpec = Field(default_factory=TriggerAuthenticationSpec)

    @field_validator("spec", mode="before")
    @classmethod
    def _empty_spec(cls, value: Any) -> Any:
        return {} if value is None else value


class TriggerAuthentication(_AuthenticationBase):
    kind: Literal["TriggerAuthentication"]


class ClusterTriggerAuthentication(_AuthenticationBase):
    kind: Literal["ClusterTriggerAuthentication"]


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def cluster_object_namespace(env: dict[str, str] | None = None, sa_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """Where ClusterTriggerAuthentication Secrets (and other cluster-scoped objects' Secrets) are read:
    KEDA_CLUSTER_OBJECT_NAMESPACE when set, else the operator's own namespace, as KEDA does."""
    env = dict(os.environ) if env is None else env
    if env.get("KEDA_CLUSTER_OBJECT_NAMESPACE"):
        return env["KEDA_CLUSTER_OBJECT_NAMESPACE"]
    try:
        return sa_file.read_text().strip() or "default"
    except OSError:
        return env.get("POD_NAMESPACE") or "default"


def target_of(so: ScaledObject) -> tuple[str, str, str]:
    """The scaleTargetRef as (apiVersion, kind, name), for the triggers that read the target's pods."""
    ref = so.spec.scale_target_ref
    return ref.api_version, ref.kind, ref.name
