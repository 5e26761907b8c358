"""`rabbitmq`: scale on a RabbitMQ queue's backlog or message rates.

Two protocols, as KEDA: AMQP (a passive queue declare: the ready-message count; QueueLength only)
and the management HTTP API (`/api/queues/<vhost>/<queue>`: messages or messages_ready, publish
and deliver/get rates; regex over many queues with sum/avg/max). `protocol: auto` picks by the
host's URL scheme. Modes: QueueLength, MessageRate, DeliverGetRate, PublishedToDeliveredRatio,
ExpectedQueueConsumptionTime (the last four need HTTP). Triggers on the same broker share one
AMQP connection (or one HTTP session) and read in parallel.
"""

from __future__ import annotations

import asyncio
import base64
import json
import posixpath
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import Source, param
from scalers.cron import keda_normalize
from scalers.errors import AuthError, FieldError, NotFoundError, QueryError, UnreachableError
from scalers.http import read_body
from scalers.metrics_api import duration_s
from scalers.sql_pools import SharedPools

MODES = ("QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio", "ExpectedQueueConsumptionTime")
HTTP_ONLY = MODES[1:]
DEFAULT_QUEUE_LENGTH = 20.0
ROOT_VHOST = "/%2F"
META_AUTH_ENV: tuple[Source, ...] = ("triggerMetadata", "authParams", "resolvedEnv")
META_AUTH: tuple[Source, ...] = ("triggerMetadata", "authParams")
AUTH_ENV: tuple[Source, ...] = ("authParams", "resolvedEnv")
AUTH: tuple[Source, ...] = ("authParams",)


@dataclass(frozen=True, kw_only=True)
class RabbitConfig:
    queue_name: str = param("queueName")
    mode: str = param("mode", default="Unknown")
    queue_length: float = param("queueLength", optional=True)
    value: float = param("value", optional=True)
    activation_value: float = param("activationValue", optional=True)
    host: str = param("host", META_AUTH_ENV)
    protocol: str = param("protocol", META_AUTH, default="auto")
    vhost_name: str = param("vhostName", META_AUTH, optional=True)
    use_regex: bool = param("useRegex", optional=True)
    exclude_unacknowledged: bool = param("excludeUnacknowledged", optional=True)
    page_size: int = param("pageSize", default=100)
    operation: str = param("operation", default="sum")
    timeout: str = param("timeout", optional=True)
    username: str = param("username", AUTH_ENV, optional=True)
    password: str = param("password", AUTH_ENV, optional=True)
    ca: str = param("ca", AUTH, optional=True)
    cert: str = param("cert", AUTH, optional=True)
    key: str = param("key", AUTH, optional=True)
    key_password: str = param("keyPassword", AUTH, optional=True)
    tls: str = param("tls", AUTH, default="disable")
    unsafe_ssl: bool = param("unsafeSsl", optional=True)
    workload_identity_resource: str = param("workloadIdentityResource", AUTH, optional=True)
    oauth_token_uri: str = param("oauthTokenURI", AUTH, optional=True)
    client_id: str = param("clientID", AUTH, optional=True)
    client_secret: str = param("clientSecret", AUTH, optional=True)

    @property
    def resolved_protocol(self) -> str:
        if self.protocol != "auto":
            return self.protocol
        scheme = urlsplit(self.host).scheme
        return "amqp" if scheme in ("amqp", "amqps") else "http"

    @property
    def resolved(self) -> tuple[str, float]:
        """(mode, value) after KEDA's defaulting: nothing given → QueueLength 20; queueLength → QueueLength."""
        if self.queue_length == 0 and self.mode == "Unknown" and self.value == 0:
            return "QueueLength", DEFAULT_QUEUE_LENGTH
        if self.queue_length != 0:
            return "QueueLength", self.queue_length
        return self.mode, self.value

    def validate(self) -> list[FieldError]:
        def err(key: str, message: str) -> list[FieldError]:
            return [FieldError(key, message)]

        if self.protocol not in ("amqp", "http", "auto"):
            return err("protocol", f"the protocol has to be either `amqp`, `http`, or `auto` but is `{self.protocol}`")
        if self.tls not in ("enable", "disable"):
            return err("tls", f"incorrect value for TLS given: {self.tls}")
        if bool(self.cert) != bool(self.key):
            return err("cert", "both key and certificate must be provided")
        if self.page_size < 1:
            return err("pageSize", "pageSize should be 1 or greater")
        if bool(self.username) != bool(self.password):
            return err("username", "username and password must be given together")
        if self.protocol == "auto" and urlsplit(self.host).scheme not in ("amqp", "amqps", "http", "https"):
            return err("host", f"unknown host URL scheme: `{urlsplit(self.host).scheme}`")
        protocol = self.resolved_protocol
        if protocol == "amqp" and self.workload_identity_resource:
            return err("workloadIdentityResource", "workload identity is not supported for the AMQP protocol")
        if self.oauth_token_uri or self.client_id or self.client_secret:
            if not (self.oauth_token_uri and self.client_id and self.client_secret):
                return err("oauthTokenURI", "OAuth2 requires tokenUrl clientId and clientSecret to be configured in "
                                            "TriggerAuthentication")
            if protocol == "amqp":
                return err("oauthTokenURI", "OAuth2 authentication is only supported with HTTP protocol, not AMQP")
            if (self.username and self.password) or self.workload_identity_resource:
                return err("oauthTokenURI", "OAuth2 authentication cannot be combined with username/password "
                                            "authentication or Azure Workload Identity")
        if self.use_regex and protocol != "http":
            return err("useRegex", "configure useRegex=true only with HTTP protocol")
        if self.exclude_unacknowledged and protocol != "http":
            return err("excludeUnacknowledged", "configure excludeUnacknowledged=true only with HTTP protocol")
        if self.timeout:
            try:
                duration_s(self.timeout)
            except ValueError as exc:
                return err("timeout", str(exc))
        if self.queue_length == 0 and self.mode == "Unknown" and self.value == 0:
            return []
        if self.queue_length != 0 and (self.mode != "Unknown" or self.value != 0):
            return err("queueLength", "queueLength is deprecated; use mode and value")
        if self.queue_length != 0:
            return []
        if self.mode == "Unknown":
            return err("mode", "mode must be specified")
        if self.value == 0:
            return err("value", "value must be specified")
        if self.mode not in MODES:
            return err("mode", f"trigger mode {self.mode} must be one of {', '.join(MODES)}")
        if self.mode in HTTP_ONLY and protocol != "http":
            return err("mode", f"protocol {protocol} not supported; must be HTTP to use trigger mode {self.mode}")
        if protocol == "amqp" and self.timeout:
            return err("timeout", f"AMQP protocol doesn't support custom timeouts: {self.timeout}")
        return []


@dataclass(frozen=True)
class QueueStats:
    messages: int
    messages_ready: int
    publish_rate: float
    deliver_get_rate: float


def vhost_and_path(raw_path: str, vhost_name: str) -> tuple[str, str]:
    """KEDA's getVhostAndPathFromURL: the last path segment is the vhost, the rest a URL prefix."""
    parts = raw_path.split("/")
    vhost = "/" + parts[-1]
    joined = posixpath.join(*parts[:-1]) if len(parts) > 1 else ""  # Go's path.Join: empty parts vanish
    path = "/" + posixpath.normpath(joined) if joined.strip("/") else ""
    if vhost_name:
        vhost = "/" + quote_plus(vhost_name)
    if vhost in ("", "/"):
        vhost = ROOT_VHOST
    return vhost, path


def queue_stats(info: dict[str, Any]) -> QueueStats:
    stats = info.get("message_stats") or {}
    return QueueStats(int(info.get("messages") or 0), int(info.get("messages_ready") or 0),
                      float((stats.get("publish_details") or {}).get("rate") or 0),
                      float((stats.get("deliver_get_details") or {}).get("rate") or 0))


def compose(items: list[dict[str, Any]], operation: str) -> QueueStats:
    """KEDA's getComposedQueue over the queues a regex matched."""
    qs = [queue_stats(i) for i in items]
    if not qs:
        return QueueStats(0, 0, 0.0, 0.0)
    if operation == "sum":
        return QueueStats(sum(q.messages for q in qs), sum(q.messages_ready for q in qs),
                          sum(q.publish_rate for q in qs), sum(q.deliver_get_rate for q in qs))
    if operation == "avg":
        n = len(qs)
        return QueueStats(sum(q.messages for q in qs) // n, sum(q.messages_ready for q in qs) // n,
                          sum(q.publish_rate for q in qs) / n, sum(q.deliver_get_rate for q in qs) / n)
    if operation == "max":
        return QueueStats(max(0, *(q.messages for q in qs)), max(0, *(q.messages_ready for q in qs)),
                          max(0.0, *(q.publish_rate for q in qs)), max(0.0, *(q.deliver_get_rate for q in qs)))
    raise ValueError(f"operation mode {operation} must be one of sum, avg, max")


def metric_and_activity(mode: str, activation: float, messages: int, publish: float,
                        deliver: float) -> tuple[float, bool]:
    """KEDA's GetMetricsAndActivity switch: the metric value and whether the trigger is active."""
    if mode == "QueueLength":
        return float(messages), messages > activation
    if mode == "MessageRate":
        return publish, publish > activation or messages > activation
    if mode == "DeliverGetRate":
        return deliver, deliver > activation
    if mode == "PublishedToDeliveredRatio":
        ratio = activation if publish > 0 and deliver == 0 else (publish / deliver if publish > 0 else 0.0)
        return ratio, ratio > activation or (publish > 0 and deliver == 0)
    if messages == 0:
        eta = 0.0
    elif deliver == 0:
        eta = activation
    else:
        eta = (publish - deliver) / deliver + messages / deliver
    return eta, eta > activation or (deliver == 0 and messages > 0)


_CREDENTIALS = re.compile(r"([^ /:]+):([^/:]+)@")


def anonymize(message: str) -> str:
    """KEDA's anonymizeRabbitMQError: user:password@ in URLs is masked."""
    return _CREDENTIALS.sub("user:password@", message)


def management_url(cfg: RabbitConfig) -> str:
    parts = urlsplit(cfg.host)
    vhost, prefix = vhost_and_path(parts.path, cfg.vhost_name)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    base = urlunsplit((parts.scheme, netloc, prefix, "", ""))
    if cfg.use_regex:
        return (f"{base}/api/queues{vhost}?page=1&use_regex=true&pagination=false&name="
                f"{quote_plus(cfg.queue_name)}&page_size={cfg.page_size}")
    return f"{base}/api/queues{vhost}/{quote_plus(cfg.queue_name)}"


def amqp_url(cfg: RabbitConfig) -> str:
    parts = urlsplit(cfg.host)
    netloc = parts.netloc
    if cfg.username and cfg.password:
        netloc = f"{quote_plus(cfg.username)}:{quote_plus(cfg.password)}@{netloc.rsplit('@', 1)[-1]}"
    path = "/" + quote_plus(cfg.vhost_name) if cfg.vhost_name else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


async def _open(key: tuple[Any, ...]) -> Any:
    kind, target, timeout, tls = key
    if kind == "amqp":
        import aio_pika

        return await aio_pika.connect(target, timeout=timeout, ssl_context=tls,
                                      client_properties={"connection_name": "surge"})
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout),
                                 connector=aiohttp.TCPConnector(ssl=tls if tls is not None else True))


async def _close(conn: Any) -> None:
    _CHANNELS.pop(id(conn), None)
    _CHANNEL_LOCKS.pop(id(conn), None)
    await conn.close()


CONNECTIONS = SharedPools(_open, _close)
_CHANNELS: dict[int, Any] = {}  # AMQP connection id → its shared channel
_CHANNEL_LOCKS: dict[int, asyncio.Lock] = {}


class RabbitMQScaler:
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(RabbitConfig, trigger)
        self.mode, self.value = self.config.resolved
        self._key: tuple[Any, ...] | None = None
        self._conn: Any = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, keda_normalize(f"rabbitmq-{quote_plus(self.config.queue_name)}"))
        return [MetricSpec(name, self.value, self.trigger.metric_type)]

    @property
    def timeout_s(self) -> float:
        return duration_s(self.config.timeout) if self.config.timeout else self.trigger.timeout_s

    def _tls(self) -> ssl.SSLContext | None:
        cfg = self.config
        if cfg.tls != "enable" and not cfg.unsafe_ssl:
            return None
        ctx = ssl.create_default_context(cadata=cfg.ca or None)
        if cfg.cert and cfg.key:
            self._workdir = self._workdir or tempfile.TemporaryDirectory(prefix="surge-rabbitmq-")
            cert, key = Path(self._workdir.name, "cert.pem"), Path(self._workdir.name, "key.pem")
            cert.write_text(cfg.cert)
            key.write_text(cfg.key)
            key.chmod(0o600)
            ctx.load_cert_chain(str(cert), str(key), password=cfg.key_password or None)
        if cfg.unsafe_ssl:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return ctx

    def connection_key(self) -> tuple[Any, ...]:
        if self.config.resolved_protocol == "amqp":
            return ("amqp", amqp_url(self.config), self.timeout_s, self._tls())
        return ("http", urlsplit(self.config.host).netloc.rsplit("@", 1)[-1], self.timeout_s, self._tls())

    async def _connect(self) -> Any:
        if self._conn is None:
            key = self.connection_key()
            self._conn = await asyncio.wait_for(CONNECTIONS.acquire(key), self.timeout_s * 2)
            self._key = key
        return self._conn

    async def _drop(self, broken: bool = True) -> None:
        if self._key is not None:
            key, conn, self._key, self._conn = self._key, self._conn, None, None
            await CONNECTIONS.release(key, conn, broken=broken)

    async def stats(self) -> QueueStats:
        label, cfg = self.trigger.label, self.config
        if cfg.workload_identity_resource or cfg.oauth_token_uri:
            raise AuthError(label, "rabbitmq: OAuth2 / Azure workload identity authentication is not supported by "
                                   "surge; use username and password")
        try:
            if cfg.resolved_protocol == "amqp":
                return await self._amqp()
            return await self._http()
        except (OSError, TimeoutError) as exc:
            await self._drop()
            raise UnreachableError(label, anonymize(f"rabbitmq at {cfg.host} unreachable: "
                                                    f"{exc or type(exc).__name__}")) from None

    async def _amqp(self) -> QueueStats:
        import aio_pika
        import aiormq

        label = self.trigger.label
        try:
            conn = await self._connect()
            lock = _CHANNEL_LOCKS.setdefault(id(conn), asyncio.Lock())
            async with lock:
                channel = _CHANNELS.get(id(conn))
                if channel is None or channel.is_closed:
                    channel = _CHANNELS[id(conn)] = await conn.channel()
        except aiormq.exceptions.ProbableAuthenticationError as exc:
            await self._drop()
            raise AuthError(label, anonymize(f"rabbitmq refused the credentials: {exc}")) from None
        except (aiormq.exceptions.AMQPConnectionError, aio_pika.exceptions.AMQPConnectionError) as exc:
            await self._drop()
            raise UnreachableError(label, anonymize(f"rabbitmq: {exc}")) from None
        try:
            # one channel per connection, passive declares in turn (a missing queue closes the
            # channel; the next read opens a new one)
            async with lock:
                queue = await asyncio.wait_for(channel.declare_queue(self.config.queue_name, passive=True),
                                               self.timeout_s)
            count = int(queue.declaration_result.message_count)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise NotFoundError(label, f"queue {self.config.queue_name!r} does not exist") from None
        except aiormq.exceptions.AMQPError as exc:
            raise QueryError(label, anonymize(f"rabbitmq: {exc}")) from None
        return QueueStats(count, count, 0.0, 0.0)

    async def _http(self) -> QueueStats:
        import aiohttp
        import yarl

        label, cfg = self.trigger.label, self.config
        session = await self._connect()
        url = management_url(cfg)
        parts = urlsplit(cfg.host)
        user, password = cfg.username or parts.username or "", cfg.password or parts.password or ""
        # credentials per request: the session is shared by every trigger on this broker
        headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()} if user else {}
        try:
            async with session.get(yarl.URL(url, encoded=True), headers=headers) as resp:  # sent as KEDA sends it
                text = (await read_body(resp, label, "rabbitmq management API")).decode("utf-8", "replace")
        except aiohttp.ClientConnectionError as exc:
            await self._drop()
            raise UnreachableError(label, anonymize(f"rabbitmq management API unreachable: {exc}")) from None
        if resp.status != 200:
            message = anonymize(f"error requesting RabbitMQ API status: {resp.status} {resp.reason}, response: "
                                f"{text[:200]}, from: {url}")
            if resp.status in (401, 403):
                raise AuthError(label, message)
            if resp.status == 404:
                raise NotFoundError(label, message)
            raise QueryError(label, message)
        try:
            body = json.loads(text)
            if cfg.use_regex:
                if int(body.get("page_count") or 0) > 1:
                    raise ValueError("regex matches more queues than can be recovered at once")
                stats = compose(list(body.get("items") or []), cfg.operation)
            else:
                stats = queue_stats(body)
        except (ValueError, TypeError, AttributeError) as exc:
            raise QueryError(label, f"rabbitmq management API answer: {exc}") from None
        return stats

    async def metrics(self) -> Reading:
        stats = await self.stats()
        messages = stats.messages_ready if self.config.exclude_unacknowledged else stats.messages
        value, active = metric_and_activity(self.mode, self.config.activation_value, messages, stats.publish_rate,
                                            stats.deliver_get_rate)
        return Reading({self.metric_specs()[0].name: sanitize(value)}, active=active)

    async def close(self) -> None:
        await self._drop(broken=False)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
