"""One polling cycle over many triggers: share round trips between triggers on the same server.

A cycle reads every trigger once. Triggers that read the same Redis server are answered by one
pipelined round trip; Kafka triggers on the same brokers share one metadata and one end-offset
request, and only the committed offsets are asked per consumer group. The other triggers read in
parallel over one connection (or pool) per server — SQL pools, the RabbitMQ connection, HTTP
sessions — and Kubernetes-reading triggers share each API read within the cycle. Results are the same
`Reading`s each scaler's own `metrics()` would give (tests check that).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from scalers import kube_source
from scalers.base import Reading, Scaler, as_scaler_error, checked, read_deadline, read_once
from scalers.errors import NotFoundError, ScalerError
from scalers.kafka import KafkaScaler, limit_partitions, shared_connection, total_lag
from scalers.kafka import translate_error as kafka_error
from scalers.redis_common import translate_error as redis_error
from scalers.redis_lists import RedisListScaler, read_list_lengths

Outcome = Reading | ScalerError


def shares_cycle(scaler: Scaler) -> bool:
    """Whether the operator may read this trigger in the common cycle: Redis lists and Kafka are
    answered together; the scalers with one connection or pool per server (`shares_connections`)
    read side by side over it. Others (SQS through worker threads, cron) keep their own cycle."""
    return isinstance(scaler, RedisListScaler | KafkaScaler) or bool(getattr(scaler, "shares_connections", False))


async def poll_cycle(scalers: Sequence[Scaler]) -> list[Outcome]:
    """Read every scaler once; a failing trigger yields its error, never stops the others.

    Whatever goes wrong (an exception no scaler foresaw, a server that hangs) comes back as that
    trigger's `ScalerError`: a cycle always returns one outcome per scaler."""
    results: dict[int, Outcome] = {}
    redis = [(i, s) for i, s in enumerate(scalers) if isinstance(s, RedisListScaler)]
    kafka = [(i, s) for i, s in enumerate(scalers) if isinstance(s, KafkaScaler)]
    others = [(i, s) for i, s in enumerate(scalers) if not isinstance(s, RedisListScaler | KafkaScaler)]

    async def one(i: int, s: Scaler) -> None:
        results[i] = await read_once(s)

    async def bounded(part: list[tuple[int, Any]], read: Any) -> None:
        """A shared read with the deadline of its slowest trigger; what it left unset fails."""
        if not part:
            return
        try:
            await asyncio.wait_for(read(part, results), max(read_deadline(s.trigger) for _, s in part))
        except Exception as exc:  # becomes each trigger's scaler error
            for i, s in part:
                results.setdefault(i, as_scaler_error(s.trigger, exc))
        for i, s in part:
            outcome = results.get(i)
            results[i] = as_scaler_error(s.trigger, TimeoutError()) if outcome is None else \
                outcome if isinstance(outcome, ScalerError) else checked(s, outcome)

    async with kube_source.shared_reads():  # cpu/memory/workload triggers share each namespace's reads
        await asyncio.gather(bounded(redis, _redis_lists), bounded(kafka, _kafka_groups),
                             *(one(i, s) for i, s in others))
    return [results[i] for i in range(len(scalers))]


async def _redis_lists(items: list[tuple[int, RedisListScaler]], results: dict[int, Outcome]) -> None:
    groups: dict[str, list[tuple[int, RedisListScaler]]] = defaultdict(list)
    for i, s in items:
        groups[s.group_key].append((i, s))

    async def read(group: list[tuple[int, RedisListScaler]]) -> None:
        owner = group[0][1]

        async def pipelined() -> list[int]:
            async with owner._slot():
                return await read_list_lengths(owner._connect(), [s.config.list_name for _, s in group])

        try:
            lengths = await asyncio.wait_for(pipelined(), owner.trigger.timeout_s * 2)
        except Exception as exc:
            for i, s in group:
                results[i] = redis_error(s.trigger.label, exc)
            return
        for (i, s), length in zip(group, lengths, strict=True):
            results[i] = Reading({s.metric: float(length)}, active=length > s.config.activation_list_length)

    await asyncio.gather(*(read(g) for g in groups.values()))


async def _kafka_groups(items: list[tuple[int, KafkaScaler]], results: dict[int, Outcome]) -> None:
    by_conn: dict[int, list[tuple[int, KafkaScaler]]] = defaultdict(list)
    for i, s in items:
        if s._conn is None:
            s._conn = shared_connection(s.config, s.trigger.timeout_s)
        by_conn[id(s._conn)].append((i, s))

    async def read(group: list[tuple[int, KafkaScaler]]) -> None:
        conn = group[0][1]._conn
        assert conn is not None
        topics = sorted({s.config.topic for _, s in group if s.config.topic})
        try:
            await conn.start()
            found = await conn.topic_partitions(topics, strict=False) if topics else {}
            latest_all = await conn.latest(found)
        except Exception as exc:
            for i, s in group:
                results[i] = kafka_error(s.trigger.label, exc)
            return

        async def per_group(i: int, s: KafkaScaler) -> None:
            if not s.config.topic:  # all-topics triggers need their own discovery
                results[i] = await read_once(s)
                return
            md = s.config
            if md.topic not in found:
                results[i] = NotFoundError(s.trigger.label, f"topic {md.topic!r} does not exist")
                return
            partitions = {md.topic: limit_partitions(md, md.topic, found.get(md.topic, []))}
            try:
                committed = await conn.committed(md.group, partitions)
            except Exception as exc:
                results[i] = kafka_error(s.trigger.label, exc)
                return
            latest = {md.topic: {p: latest_all[md.topic][p] for p in partitions[md.topic]}}
            totals = total_lag(md, committed, latest, s._previous)
            s._previous = {t: dict(ps) for t, ps in committed.items()}
            results[i] = Reading({s.metric_specs()[0].name: float(totals.lag)},
                                 active=totals.lag_with_persistent > md.activation_lag_threshold)

        await asyncio.gather(*(per_group(i, s) for i, s in group))

    await asyncio.gather(*(read(g) for g in by_conn.values()))
