"""Trigger type name → scaler class. A new scaler is one module and one line here."""

from __future__ import annotations

import importlib

from scalers.base import Scaler, Trigger
from scalers.errors import ConfigError, FieldError

# "module:Class", imported on first use so one broken client library cannot break every trigger.
SCALERS: dict[str, str] = {
    "kafka": "scalers.kafka:KafkaScaler",
    "redis": "scalers.redis_lists:RedisListScaler",
    "redis-cluster": "scalers.redis_lists:RedisListScaler",
    "redis-sentinel": "scalers.redis_lists:RedisListScaler",
    "redis-streams": "scalers.redis_streams:RedisStreamsScaler",
    "redis-cluster-streams": "scalers.redis_streams:RedisStreamsScaler",
    "redis-sentinel-streams": "scalers.redis_streams:RedisStreamsScaler",
    "prometheus": "scalers.prometheus:PrometheusScaler",
    "aws-sqs-queue": "scalers.aws_sqs:SqsQueueScaler",
    "cron": "scalers.cron:CronScaler",
    "external-push": "scalers.http_addon:HTTPAddonScaler",  # the KEDA HTTP add-on's triggers only
    "metrics-api": "scalers.metrics_api:MetricsApiScaler",
    "postgresql": "scalers.postgresql:PostgresScaler",
    "mysql": "scalers.mysql:MySqlScaler",
    "rabbitmq": "scalers.rabbitmq:RabbitMQScaler",
    "nats-jetstream": "scalers.nats_jetstream:NatsJetStreamScaler",
    "cpu": "scalers.cpu_memory:CpuMemoryScaler",
    "memory": "scalers.cpu_memory:CpuMemoryScaler",
    "kubernetes-workload": "scalers.kubernetes_workload:KubernetesWorkloadScaler",
}


def known_types() -> list[str]:
    return sorted(SCALERS)


def scaler_class(type_name: str) -> type[Scaler] | None:
    target = SCALERS.get(type_name)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    cls: type[Scaler] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_scaler(trigger: Trigger) -> Scaler:
    """Parse and build the scaler for `trigger` without I/O; unknown type → ConfigError on `type`."""
    cls = scaler_class(trigger.type)
    if cls is None:
        raise ConfigError(
            trigger.label,
            [FieldError("type", f"unsupported trigger type {trigger.type!r}; surge implements {known_types()}")],
        )
    try:
        return cls(trigger)  # type: ignore[call-arg]
    except ConfigError as exc:
        raise without_secrets(exc, trigger) from None


def without_secrets(exc: ConfigError, trigger: Trigger) -> ConfigError:
    """The same errors with every authentication value replaced by its parameter's name: a
    Secret mapped to the wrong parameter is named in the error, never shown."""
    secrets = sorted(((v.strip(), k) for k, v in trigger.auth_params.items() if len(v.strip()) >= 4),
                     key=lambda item: -len(item[0]))
    if not secrets:
        return exc

    def scrub(text: str) -> str:
        for value, key in secrets:
            text = text.replace(repr(value), f"<the value of {key}>").replace(value, f"<the value of {key}>")
        return text

    return ConfigError(exc.trigger, [FieldError(e.field, scrub(e.message), e.unsupported) for e in exc.errors])
