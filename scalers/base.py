"""The one small interface every trigger type implements.

A scaler is built from a `Trigger` without I/O (so a bad manifest fails fast and the same object
can be built in `surge validate`), reads its source in `metrics()`, and releases connections in
`close()`. It knows nothing of Kubernetes: the caller resolves secrets and env beforehand.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from scalers.config import TriggerInput, parse_config
from scalers.errors import ConfigError, ScalerError, UnexpectedError, UnreachableError

_C = TypeVar("_C")

MetricType = Literal["AverageValue", "Value", "Utilization"]

# KEDA's global HTTP timeout (KEDA_HTTP_DEFAULT_TIMEOUT) is 3 s; we use it for every server call.
DEFAULT_TIMEOUT_S = 3.0
# A whole read may take a few calls (connect, metadata, offsets); past this it is a timeout, even
# when a client library has no timeout of its own or ignores it (a server that accepts and hangs).
READ_DEADLINE_CALLS = 3


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
    # the ScaledObject has a scalingModifiers formula (KEDA's AsMetricSource): per-trigger targets optional
    as_metric_source: bool = False

    @property
    def input(self) -> TriggerInput:
        return TriggerInput(self.metadata, self.auth_params, self.resolved_env, self.as_metric_source)

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


def read_deadline(trigger: Trigger) -> float:
    """How long one read of this trigger may take in all before it counts as failed."""
    return READ_DEADLINE_CALLS * trigger.timeout_s + 1.0


def as_scaler_error(trigger: Trigger, exc: BaseException) -> ScalerError:
    """Any failure of a read, as the scaler error KEDA would count for this trigger."""
    if isinstance(exc, ScalerError):
        return exc
    if isinstance(exc, TimeoutError):
        return UnreachableError(trigger.label, f"no answer within {read_deadline(trigger):g} s")
    return UnexpectedError(trigger.label, f"{type(exc).__name__}: {str(exc)[:300] or 'no message'}")


def checked(scaler: Scaler, reading: object) -> Reading | ScalerError:
    """A reading that carries every metric the trigger exposes, as a number; otherwise an error."""
    if not isinstance(reading, Reading):
        return UnexpectedError(scaler.trigger.label, f"read returned {type(reading).__name__}, not a Reading")
    for spec in scaler.metric_specs():
        value = reading.values.get(spec.name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return UnexpectedError(scaler.trigger.label, f"read returned no number for metric {spec.name}")
    return reading


async def read_once(scaler: Scaler) -> Reading | ScalerError:
    """One read of one trigger, never raising: any exception (not only `ScalerError`) and a read
    that outlives `read_deadline` become this trigger's scaler error. Cancellation passes."""
    try:
        reading = await asyncio.wait_for(scaler.metrics(), read_deadline(scaler.trigger))
    except Exception as exc:  # every failure is a scaler error, as in KEDA
        return as_scaler_error(scaler.trigger, exc)
    return checked(scaler, reading)
