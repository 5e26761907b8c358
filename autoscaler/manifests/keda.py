"""KEDA's keda.sh/v1alpha1 kinds: ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication.

Defaults are KEDA 2.20's; the validation rules are those KEDA's admission webhook and CRD
schema enforce, so a manifest surge accepts is one KEDA accepts. `spec.advanced.predictive` is
surge's own extension; without it a ScaledObject behaves exactly as under KEDA.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

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
    name: str
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
    behavior: Literal["static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"] = "static"


class AuthenticationRef(Model):
    name: str
    kind: Literal["TriggerAuthentication", "ClusterTriggerAuthentication"] = "TriggerAuthentication"


class ScaleTrigger(Model):
    type: str
    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    metric_type: MetricType | None = None
    use_cached_metrics: bool = False
    authentication_ref: AuthenticationRef | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _strings_only(cls, value: Any) -> Any:
        if isinstance(value, dict):
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
    max_replica_count: int = Field(default=100, ge=0, le=INT32_MAX)
    fallback: Fallback | None = None
    advanced: Advanced | None = None
    triggers: list[ScaleTrigger] = Field(min_length=1)

    @model_validator(mode="after")
    def _keda_rules(self) -> ScaledObjectSpec:
        if self.min_replica_count > self.max_replica_count:
            raise ValueError(f"minReplicaCount={self.min_replica_count} must be less than or equal to "
                             f"maxReplicaCount={self.max_replica_count}")
        if self.idle_replica_count is not None and self.idle_replica_count >= self.min_replica_count:
            raise ValueError(f"idleReplicaCount={self.idle_replica_count} must be less than "
                             f"minReplicaCount={self.min_replica_count}")
        names = [t.name for t in self.triggers if t.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"triggers: names must be unique, repeated: {duplicates}")
        only_resource = all(t.type in CPU_MEMORY for t in self.triggers)
        for i, trig in enumerate(self.triggers):
            if trig.type in CPU_MEMORY and trig.metric_type not in (None, "Utilization", "AverageValue"):
                raise ValueError(f"triggers[{i}].metricType: {trig.type} triggers take Utilization or AverageValue")
            if trig.type not in CPU_MEMORY and trig.metric_type == "Utilization":
                raise ValueError(f"triggers[{i}].metricType: Utilization is only for cpu and memory triggers")
        if only_resource and self.min_replica_count == 0:
            raise ValueError("minReplicaCount: scale to zero needs at least one trigger other than cpu/memory")
        if self.fallback is not None:
            modifiers = self.advanced.scaling_modifiers if self.advanced else None
            if modifiers is not None and modifiers.formula:
                if (modifiers.metric_type or "AverageValue") != "AverageValue":
                    raise ValueError("fallback: with scalingModifiers, scalingModifiers.metricType must be "
                                     "AverageValue")
            else:
                for i, trig in enumerate(self.triggers):
                    if trig.type in CPU_MEMORY:
                        raise ValueError(f"fallback: not supported with {trig.type} triggers (triggers[{i}])")
                    if (trig.metric_type or "AverageValue") != "AverageValue":
                        raise ValueError(f"fallback: needs metricType AverageValue on every trigger "
                                         f"(triggers[{i}] has {trig.metric_type})")
        self._check_modifiers()
        return self

    def _check_modifiers(self) -> None:
        modifiers = self.advanced.scaling_modifiers if self.advanced else None
        if modifiers is None or not modifiers.formula:
            return
        if not modifiers.target:
            raise ValueError("advanced.scalingModifiers.target: is required with a formula")
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
        # compiled as the engine will run it (KEDA's webhook compiles it with expr-lang likewise);
        # cpu/memory triggers are not formula inputs in KEDA
        names = {t.name for t in self.triggers if t.name and t.type not in CPU_MEMORY}
        try:
            compile_formula(modifiers.formula, names)
        except FormulaError as exc:
            raise ValueError(f"advanced.scalingModifiers.formula: {exc}") from None


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


class ScaledObject(Model):
    api_version: Literal["keda.sh/v1alpha1"]
    kind: Literal["ScaledObject"]
    metadata: ObjectMeta
    spec: ScaledObjectSpec
    status: dict[str, Any] | None = None

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


class FilePathRef(Model):
    parameter: str
    path: str


class PodIdentity(Model):
    provider: Literal["none", "azure-workload", "aws", "aws-eks", "aws-kiam", "gcp"] = "none"
    identity_id: str | None = None
    role_arn: str | None = None
    identity_owner: Literal["keda", "workload"] | None = None




class TriggerAuthenticationSpec(Model):
    pod_identity: PodIdentity | None = None
    secret_target_ref: list[SecretTargetRef] = Field(default_factory=list)
    config_map_target_ref: list[SecretTargetRef] = Field(default_factory=list)
    env: list[EnvRef] = Field(default_factory=list)
    file_path: list[FilePathRef] = Field(default_factory=list)
    hashi_corp_vault: dict[str, Any] | None = None
    azure_key_vault: dict[str, Any] | None = None
    aws_secret_manager: dict[str, Any] | None = None
    gcp_secret_manager: dict[str, Any] | None = None
    bound_service_account_token: list[dict[str, Any]] | None = None

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

    @model_validator(mode="after")
    def _no_file_path(self) -> TriggerAuthentication:
        if self.spec.file_path:
            raise ValueError("spec.filePath: only ClusterTriggerAuthentication may read files")
        return self


class ClusterTriggerAuthentication(_AuthenticationBase):
    kind: Literal["ClusterTriggerAuthentication"]
