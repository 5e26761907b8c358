"""`redis`, `redis-cluster`, `redis-sentinel`: scale on the length of a Redis list (LLEN).

A missing list has length 0, as in Redis itself, so an idle queue that was never created
reads as empty rather than as an error.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scalers.base import MetricSpec, Reading, Trigger, metric_name, normalize_name, sanitize
from scalers.config import param, parse_config
from scalers.errors import ConfigError, FieldError
from scalers.redis_common import (
    ConnectionInfo,
    RedisClientOwner,
    parse_connection,
    translate_error,
)

ERR_NO_LIST_NAME = "no list name given"


@dataclass(frozen=True, kw_only=True)
class _ListSettings:
    list_length: int = param("listLength", default=5)
    activation_list_length: int = param("activationListLength", default=0)
    list_name: str = param("listName", optional=True)
    database_index: int = param("databaseIndex", default=0)


@dataclass(frozen=True, kw_only=True)
class RedisListConfig:
    list_length: int
    activation_list_length: int
    list_name: str
    database_index: int
    connection: ConnectionInfo


def parse_list_config(trigger: Trigger) -> RedisListConfig:
    errors: list[FieldError] = []
    settings: _ListSettings | None = None
    try:
        settings = parse_config(_ListSettings, trigger.input)
    except ConfigError as exc:
        errors.extend(exc.errors)
    if settings is not None and not settings.list_name:
        errors.append(FieldError("listName", ERR_NO_LIST_NAME))
    connection, conn_errors = parse_connection(trigger.input)
    errors.extend(conn_errors)
    if errors or settings is None or connection is None:
        raise ConfigError(trigger.label, errors)
    return RedisListConfig(
        list_length=settings.list_length,
        activation_list_length=settings.activation_list_length,
        list_name=settings.list_name,
        database_index=settings.database_index,
        connection=connection,
    )


# One script call answers any number of lists: one reply to parse instead of one per list, which
# at thousands of lists per second is most of the client's work.
_LENGTHS = "local n = {} for i, k in ipairs(KEYS) do n[i] = redis.call('LLEN', k) end return n"


async def read_list_lengths(client: Any, keys: Sequence[str]) -> list[int]:
    """LLEN of many keys in one round trip (what one polling cycle needs per server). A cluster
    spreads keys over slots a script cannot span: there, one pipeline."""
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import ResponseError

    if len(keys) > 1 and not isinstance(client, RedisCluster):
        try:
            return [int(n) for n in await client.register_script(_LENGTHS)(keys=list(keys))]
        except ResponseError:
            pass  # scripts not allowed (ACL), or a key of the wrong type: the pipeline says which
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        results: list[int] = await pipe.execute()
    return results


class RedisListScaler(RedisClientOwner):
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_list_config(trigger)

    def metric_specs(self) -> list[MetricSpec]:
        return [MetricSpec(self.metric, float(self.config.list_length), self.trigger.metric_type)]

    @functools.cached_property
    def metric(self) -> str:
        return metric_name(self.trigger, normalize_name(f"redis-{self.config.list_name}"))

    @functools.cached_property
    def group_key(self) -> str:
        """Lists read together in one round trip share this (same server, settings and database)."""
        c = self.config
        return repr((self.trigger.type, c.connection, c.database_index))


    async def list_length(self) -> int:
        client = self._connect()

        async def read() -> int:
            async with self._slot():
                return int(await client.llen(self.config.list_name))

        try:
            return await asyncio.wait_for(read(), self.trigger.timeout_s * 2)
        except Exception as exc:
            raise translate_error(self.trigger.label, exc) from exc

    def watched_key(self) -> str:
        return self.config.list_name

    async def metrics(self) -> Reading:
        length = sanitize(float(await self.list_length()))
        return Reading({self.metric_specs()[0].name: length}, active=length > self.config.activation_list_length)

