"""`kubernetes-workload`: scale on how many pods match a label selector in the ScaledObject's namespace.

Pods that finished (Succeeded, Failed) do not count; with `groupByNode` the metric is the number
of distinct nodes those pods run on. As KEDA: metric `s<index>-workload-<namespace>`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scalers import kube_source
from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import param
from scalers.cron import keda_normalize
from scalers.errors import ConfigError, FieldError, UnreachableError

TERMINATED = ("Succeeded", "Failed")


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig:
    pod_selector: str = param("podSelector")
    value: float = param("value", default=0)
    activation_value: float = param("activationValue", default=0)
    group_by_node: bool = param("groupByNode", default=False)
    as_metric_source: bool = False

    def validate(self) -> list[FieldError]:
        if self.value <= 0 and not self.as_metric_source:
            return [FieldError("value", "value must be a float greater than 0")]
        try:
            kube_source.parse_selector(self.pod_selector)
        except ValueError as exc:
            return [FieldError("podSelector", f"error parsing pod selector: {exc}")]
        return []


def count(pods: list[dict], selector: Callable[[Mapping[str, str]], bool], group_by_node: bool) -> int:
    """KEDA's getMetricValue over already-listed pods."""
    counted = [p for p in pods if selector((p.get("metadata") or {}).get("labels") or {})
               and (p.get("status") or {}).get("phase") not in TERMINATED]
    if group_by_node:
        return len({(p.get("spec") or {}).get("nodeName") for p in counted} - {None, ""})
    return len(counted)


class KubernetesWorkloadScaler:
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(WorkloadConfig, trigger)
        self.selector = kube_source.parse_selector(self.config.pod_selector)
        if not trigger.namespace:
            raise ConfigError(trigger.label, [FieldError("namespace", "the ScaledObject's namespace is needed")])

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, keda_normalize(f"workload-{self.trigger.namespace}"))
        return [MetricSpec(name, self.config.value, self.trigger.metric_type)]

    async def metrics(self) -> Reading:
        try:
            pods = await kube_source.pods(self.trigger.namespace, self.trigger.timeout_s)
        except Exception as exc:  # the API client raises ApiException, aiohttp errors, timeouts
            raise UnreachableError(self.trigger.label, f"listing pods: {exc}") from None
        value = count(pods, self.selector, self.config.group_by_node)
        return Reading({self.metric_specs()[0].name: sanitize(float(value))},
                       active=value > self.config.activation_value)

    async def close(self) -> None:
        return None
