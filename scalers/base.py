"""The one small interface every trigger type implements.

A scaler is built from a `Trigger` without I/O (so a bad manifest fails fast and the same object
can be built in `surge validate`), reads its source in `metrics()`, and releases connections in
`close()`. It knows nothing of Kubernetes: the caller resolves secrets and env beforehand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from scalers.config import TriggerInput, parse_config
from scalers.errors import ConfigError

_C = TypeVar("_C")

MetricType = Literal["AverageValue", "Value", "Utilization"]

# KEDA's global HTTP timeout (KEDA_HTTP_DEFAULT_TIMEOUT) is 3 s; we use it for every server call.
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Trigger:
    """One entry of `spec.triggers`, with auth params and env already resolved by the caller."""

    type: str
    metadata: Mapping[str, str]
    auth_params: Mapping[str, str] = field(default_factory=dict)
    resolved_env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    index: int = 0
    metric_type: MetricType = "AverageValue"
    metric_type_given: bool = True  # False when the trigger set no metricType (cpu/memory need one)
    namespace: str = "default"
    pod_identity: str = ""  # TriggerAuthentication spec.podIdentity.provider, "" when none
    # the rest of spec.podIdentity as written (roleArn, externalID, identityOwner, identityId, ...)
    pod_identity_params: Mapping[str, str] = field(default_factory=dict)
    # the ScaledObject's scaleTargetRef (apiVersion, kind, name): cpu/memory read its pods' usage
    scale_target: tuple[str, str, str] = ("apps/v1", "Deployment", "")
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def input(self) -> TriggerInput:
        return TriggerInput(self.metadata, self.auth_params, self.resolved_env)

    @property
    def label(self) -> str:
        """How errors name this trigger: `kafka "orders"` or `kafka #0`."""
        return f'{self.type} "{self.name}"' if self.name else f"{self.type} #{self.index}"


@dataclass(frozen=True)
class MetricSpec:
    """The external metric a trigger exposes to the HPA, as KEDA names and targets it."""

    name: str
    target: float
    metric_type: MetricType = "AverageValue"


@dataclass(frozen=True)
class Reading:
    """One poll's result: the value of each metric this trigger exposes, and whether it is active."""

    values: Mapping[str, float]
    active: bool


@runtime_checkable
class Scaler(Protocol):
    """What the operator and the simulator need from a trigger type."""

    trigger: Trigger

    def metric_specs(self) -> list[MetricSpec]: ...

    async def metrics(self) -> Reading: ...

    async def close(self) -> None: ...


class ScalerFactory(Protocol):
    type_names: ClassVar[tuple[str, ...]]

    def __call__(self, trigger: Trigger) -> Scaler: ...


_NORMALIZE = re.compile(r"[/.:%]")


def normalize_name(value: str) -> str:
    """KEDA's NormalizeString: characters not allowed in metric names become '-'."""
    return _NORMALIZE.sub("-", value).replace("(", "-").replace(")", "-").replace('"', "-").replace(" ", "-")


def metric_name(trigger: Trigger, name: str) -> str:
    """KEDA's GenerateMetricNameWithIndex: `s<index>-<name>`."""
    return f"s{trigger.index}-{name}"


def sanitize(value: float) -> float:
    """KEDA reports NaN, infinities and negative readings as 0 rather than failing the HPA."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return 0.0
    return value


def parse_trigger_config(cls: type[_C], trigger: Trigger) -> _C:
    """parse_config, with errors attributed to this trigger."""
    try:
        return parse_config(cls, trigger.input)
    except ConfigError as exc:
        raise ConfigError(trigger.label, exc.errors) from None
