"""`redis-streams` (and its cluster / sentinel flavours): scale on a Redis stream.

Which number is read depends on the keys given, with KEDA's precedence:
- `consumerGroup` + `lagCount`  → the group's lag from XINFO GROUPS (Redis ≥ 7),
- `consumerGroup` alone         → the group's pending entries (XPENDING summary count),
- no `consumerGroup`            → the stream length (XLEN).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any

from scalers.base import MetricSpec, Reading, Trigger, metric_name, normalize_name, sanitize
from scalers.config import _json_int, param, parse_config
from scalers.errors import ConfigError, FieldError, NotFoundError
from scalers.redis_common import (
    ConnectionInfo,
    RedisClientOwner,
    parse_connection,
    translate_error,
)

ERR_MISSING_STREAM_NAME = "missing redis stream name"


class ScaleFactor(enum.Enum):
    PENDING = "xPendingFactor(XPENDING count)"
    LENGTH = "xLengthFactor(XLEN)"
    LAG = "lagFactor(XINFO GROUPS lag)"


@dataclass(frozen=True, kw_only=True)
class _StreamSettings:
    stream: str = param("stream", optional=True)
    consumer_group: str = param("consumerGroup", optional=True)
    pending_entries_count: str = param("pendingEntriesCount", optional=True)
    stream_length: str = param("streamLength", optional=True)
    lag_count: str = param("lagCount", optional=True)
    activation_lag_count: str = param("activationLagCount", optional=True)
    database_index: int = param("databaseIndex", default=0)


@dataclass(frozen=True, kw_only=True)
class RedisStreamsConfig:
    stream_name: str
    consumer_group_name: str
    target_pending_entries_count: int
    target_stream_length: int
    target_lag: int
    activation_lag_count: int
    database_index: int
    connection: ConnectionInfo
    scale_factor: ScaleFactor

    @property
    def target(self) -> int:
        return {
            ScaleFactor.PENDING: self.target_pending_entries_count,
            ScaleFactor.LENGTH: self.target_stream_length,
            ScaleFactor.LAG: self.target_lag,
        }[self.scale_factor]


def _int_field(errors: list[FieldError], key: str, raw: str, default: int) -> int:
    if not raw:
        return default
    try:
        return _json_int(raw)
    except ValueError:
        errors.append(FieldError(key, f"got {raw!r}, expected an integer"))
        return default


def parse_streams_config(trigger: Trigger) -> RedisStreamsConfig:
    errors: list[FieldError] = []
    connection, conn_errors = parse_connection(trigger.input)
    errors.extend(conn_errors)
    try:
        s = parse_config(_StreamSettings, trigger.input)
    except ConfigError as exc:
        raise ConfigError(trigger.label, errors + exc.errors) from None
    if not s.stream:
        errors.append(FieldError("stream", ERR_MISSING_STREAM_NAME))
    pending = length = lag = activation = 0
    if s.consumer_group:
        if s.lag_count:
            factor = ScaleFactor.LAG
            lag = _int_field(errors, "lagCount", s.lag_count, 0)
            if not s.activation_lag_count:
                errors.append(FieldError("activationLagCount", "is required together with lagCount"))
            activation = _int_field(errors, "activationLagCount", s.activation_lag_count, 0)
        else:
            factor = ScaleFactor.PENDING
            pending = _int_field(errors, "pendingEntriesCount", s.pending_entries_count, 5)
    else:
        factor = ScaleFactor.LENGTH
        length = _int_field(errors, "streamLength", s.stream_length, 5)
    if errors or connection is None:
        raise ConfigError(trigger.label, errors)
    return RedisStreamsConfig(
        stream_name=s.stream,
        consumer_group_name=s.consumer_group,
        target_pending_entries_count=pending,
        target_stream_length=length,
        target_lag=lag,
        activation_lag_count=activation,
        database_index=s.database_index,
        connection=connection,
        scale_factor=factor,
    )


def is_active(config: RedisStreamsConfig, value: float) -> bool:
    """Every mode activates above activationLagCount (0 unless lag mode sets it)."""
    return value > config.activation_lag_count


async def group_lag(client: Any, stream: str, group: str) -> int:
    """The group's lag from XINFO GROUPS. Redis leaves it nil when it cannot tell (after
    deletions or trimming); then every entry the group has not yet been delivered counts,
    which is an upper bound and errs toward scaling out."""
    groups = await client.xinfo_groups(stream)
    for info in groups:
        name = info.get("name")
        name = name.decode() if isinstance(name, bytes) else name
        if name == group:
            lag = info.get("lag")
            if lag is not None:
                return int(lag)
            stream_info = await client.xinfo_stream(stream)
            added = int(stream_info.get("entries-added", stream_info.get("length", 0)))
            return max(0, added - int(info.get("entries-read") or 0))
    raise NotFoundError("", f"consumer group {group!r} does not exist on stream {stream!r}")


class RedisStreamsScaler(RedisClientOwner):
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_streams_config(trigger)

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, normalize_name(f"redis-streams-{self.config.stream_name}"))
        return [MetricSpec(name, float(self.config.target), self.trigger.metric_type)]


    async def _read(self) -> int:
        client = self._connect()
        cfg = self.config
        if cfg.scale_factor is ScaleFactor.LENGTH:
            return int(await client.xlen(cfg.stream_name))
        if cfg.scale_factor is ScaleFactor.PENDING:
            summary = await client.xpending(cfg.stream_name, cfg.consumer_group_name)
            return int(summary["pending"])
        return await group_lag(client, cfg.stream_name, cfg.consumer_group_name)

    async def value(self) -> int:
        async def read() -> int:
            async with self._slot():
                return await self._read()

        try:
            return await asyncio.wait_for(read(), self.trigger.timeout_s * 2)
        except NotFoundError as exc:
            raise NotFoundError(self.trigger.label, exc.cause) from exc
        except Exception as exc:
            raise translate_error(self.trigger.label, exc) from exc

    def watched_key(self) -> str:
        return self.config.stream_name

    async def metrics(self) -> Reading:
        value = sanitize(float(await self.value()))
        return Reading({self.metric_specs()[0].name: value}, active=is_active(self.config, value))

