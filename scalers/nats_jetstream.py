"""`nats-jetstream`: scale on a JetStream consumer's backlog, read from the server's monitoring API.

As KEDA does, the lag is the consumer's `num_pending + num_ack_pending` from `/jsz?acc=<account>
&consumers=true&config=true` on `natsServerMonitoringEndpoint`. In a cluster KEDA walks the nodes
to find the consumer's leader; surge reads the endpoint it is given (a cluster's monitoring
Service answers from any node) and reports an error when that node has no view of the consumer.
Triggers on the same endpoint share one HTTP session.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import Source, param
from scalers.cron import keda_normalize
from scalers.errors import FieldError, NotFoundError, QueryError, UnreachableError
from scalers.http import read_body
from scalers.sql_pools import SharedPools

AUTH_META: tuple[Source, ...] = ("authParams", "triggerMetadata")


@dataclass(frozen=True, kw_only=True)
class JetStreamConfig:
    account: str = param("account", AUTH_META, optional=True)
    account_id: str = param("accountID", AUTH_META, optional=True)
    stream: str = param("stream")
    consumer: str = param("consumer")
    lag_threshold: int = param("lagThreshold", default=10)
    activation_lag_threshold: int = param("activationLagThreshold", default=0)
    use_https: bool = param("useHttps", default=False)
    endpoint: str = param("natsServerMonitoringEndpoint", AUTH_META)

    def validate(self) -> list[FieldError]:
        if not self.account and not self.account_id:
            return [FieldError("account", "no account name or id given")]
        return []

    @property
    def monitoring_url(self) -> str:
        """KEDA's getNATSJetStreamMonitoringURL."""
        scheme = "https" if self.use_https else "http"
        # Go's url.Values.Encode sorts the keys
        query = urlencode([("acc", self.account_id or self.account), ("config", "true"), ("consumers", "true")])
        return f"{scheme}://{self.endpoint}/jsz?{query}"


def consumer_lag(body: dict[str, Any], cfg: JetStreamConfig) -> int:
    """The consumer's backlog in a /jsz answer; ValueError says what is missing."""
    cluster_size = int((body.get("meta_cluster") or {}).get("cluster_size") or 0)
    stream_found = False
    for account in body.get("account_details") or []:
        if account.get("id") != (cfg.account_id or cfg.account) and account.get("name") != cfg.account:
            continue
        for stream in account.get("stream_detail") or []:
            if stream.get("name") != cfg.stream:
                continue
            stream_found = True
            for consumer in stream.get("consumer_detail") or []:
                if consumer.get("name") == cfg.consumer:
                    return int(consumer.get("num_pending") or 0) + int(consumer.get("num_ack_pending") or 0)
    if cluster_size > 1:
        raise LookupError(f"leader node not found for consumer {cfg.consumer}")
    if not stream_found:
        raise LookupError("stream not found")
    raise LookupError(f"consumer {cfg.consumer!r} not found in stream {cfg.stream!r}")


async def _open(key: tuple[Any, ...]) -> Any:
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=key[1]))


async def _close(session: Any) -> None:
    await session.close()


SESSIONS = SharedPools(_open, _close)


class NatsJetStreamScaler:
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(JetStreamConfig, trigger)
        self._key: tuple[Any, ...] | None = None
        self._session: Any = None

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, keda_normalize(f"nats-jetstream-{self.config.stream}"))
        return [MetricSpec(name, float(self.config.lag_threshold), self.trigger.metric_type)]

    async def lag(self) -> int:
        import aiohttp

        label, cfg = self.trigger.label, self.config
        if self._session is None:
            key = (cfg.endpoint, self.trigger.timeout_s)
            self._session = await asyncio.wait_for(SESSIONS.acquire(key), self.trigger.timeout_s * 2)
            self._key = key
        try:
            async with self._session.get(cfg.monitoring_url) as resp:
                text = (await read_body(resp, label, "NATS monitoring endpoint")).decode("utf-8", "replace")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise UnreachableError(label, f"NATS monitoring endpoint {cfg.endpoint} unreachable: "
                                          f"{exc or type(exc).__name__}") from None
        if resp.status != 200:
            raise QueryError(label, f"NATS monitoring endpoint answered {resp.status}: {text[:200]}")
        try:
            return consumer_lag(json.loads(text), cfg)
        except LookupError as exc:
            raise NotFoundError(label, str(exc).strip("'\"")) from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise QueryError(label, f"unexpected /jsz answer: {exc}") from None

    async def metrics(self) -> Reading:
        lag = await self.lag()
        return Reading({self.metric_specs()[0].name: sanitize(float(lag))},
                       active=lag > self.config.activation_lag_threshold)

    async def close(self) -> None:
        if self._key is not None:
            key, session, self._key, self._session = self._key, self._session, None, None
            await SESSIONS.release(key, session)
