"""`cpu` and `memory`: scale on the resource usage of the scale target's pods (metrics.k8s.io).

KEDA hands these to the HPA as Resource metrics; surge computes what the HPA would: with
`metricType: Utilization` the metric is total usage / total requests × 100 over the target's
running pods that have metrics (every one of them must request the resource), compared with
`value` percent against the ready pod count; with `AverageValue` it is the total usage against
`value` (a quantity) per pod. `containerName` narrows both to one container. As with KEDA, the
trigger is always active (it cannot scale to zero on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scalers import kube_source
from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config
from scalers.config import param
from scalers.errors import ConfigError, FieldError, NotFoundError, QueryError, UnreachableError
from scalers.http_auth import parse_quantity

RESOURCES = ("cpu", "memory")


@dataclass(frozen=True, kw_only=True)
class ResourceConfig:
    type: str = param("type", optional=True, deprecated="The 'type' setting is DEPRECATED and is removed in v2.18 - "
                                                        "Use 'metricType' instead.")
    value: str = param("value")
    container_name: str = param("containerName", optional=True)


def target_value(trigger: Trigger, raw: str) -> float:
    """The target as KEDA parses it: an integer percentage (Utilization) or a quantity (AverageValue)."""
    if not trigger.metric_type_given or trigger.metric_type not in ("Utilization", "AverageValue"):
        given = trigger.metric_type if trigger.metric_type_given else ""
        raise ValueError(f"unknown metric type: {given}, allowed values are 'Utilization' or 'AverageValue'")
    if trigger.metric_type == "Utilization":
        try:
            return float(int(raw, 10))
        except ValueError:
            raise ValueError(f"value {raw!r} is not an integer percentage") from None
    return parse_quantity(raw)


def usage(pods: list[dict[str, Any]], metrics: dict[str, dict[str, Any]], resource: str, container: str,
          utilization: bool) -> float:
    """Total usage (AverageValue) or usage/requests × 100 (Utilization) over running pods with metrics."""
    used = requested = 0.0
    counted = 0
    for pod in pods:
        name = pod["metadata"]["name"]
        if (pod.get("status") or {}).get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            continue
        if name not in metrics:
            continue
        containers = [c for c in (pod.get("spec") or {}).get("containers") or []
                      if not container or c.get("name") == container]
        usage_by_name = {c["name"]: c.get("usage") or {} for c in metrics[name].get("containers") or []}
        for c in containers:
            used += parse_quantity(str(usage_by_name.get(c["name"], {}).get(resource, "0")))
            if utilization:
                request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
                if request is None:
                    raise LookupError(f"missing request for {resource} in container {c['name']} of pod {name}")
                requested += parse_quantity(str(request))
        counted += 1
    if counted == 0:
        raise LookupError(f"no running pods of the scale target have {resource} metrics yet")
    if utilization:
        return used / requested * 100 if requested else 0.0
    return used


class CpuMemoryScaler:
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.resource = trigger.type
        self.config = parse_trigger_config(ResourceConfig, trigger)
        try:
            self.target = target_value(trigger, self.config.value)
        except ValueError as exc:
            field = "value" if "value" in str(exc) and "metric type" not in str(exc) else "metricType"
            raise ConfigError(trigger.label, [FieldError(field, str(exc))]) from None

    def metric_specs(self) -> list[MetricSpec]:
        return [MetricSpec(metric_name(self.trigger, self.resource), self.target, self.trigger.metric_type)]

    async def metrics(self) -> Reading:
        label, ns, timeout = self.trigger.label, self.trigger.namespace, self.trigger.timeout_s
        api_version, kind, name = self.trigger.scale_target
        try:
            target = await kube_source.workload(api_version, kind, ns, name, timeout)
            pods = await kube_source.pods(ns, timeout)
            metrics = await kube_source.pod_metrics(ns, timeout)
        except LookupError as exc:
            raise QueryError(label, str(exc)) from None
        except Exception as exc:  # ApiException (404 for a missing target or metrics API), transport errors
            status = getattr(exc, "status", None)
            if status == 404:
                raise NotFoundError(label, f"{kind} {name!r} or the metrics.k8s.io API not found") from None
            raise UnreachableError(label, f"reading pods and metrics: {exc}") from None
        selector = kube_source.selector_from_match((target.get("spec") or {}).get("selector") or {})
        own = [p for p in pods if selector((p.get("metadata") or {}).get("labels") or {})]
        try:
            value = usage(own, metrics, self.resource, self.config.container_name,
                          self.trigger.metric_type == "Utilization")
        except LookupError as exc:
            raise QueryError(label, str(exc).strip("'\"")) from None
        return Reading({self.metric_specs()[0].name: value}, active=True)

    async def close(self) -> None:
        return None
