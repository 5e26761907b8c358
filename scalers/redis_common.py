"""Connection settings shared by the Redis list and stream triggers (plain, cluster, sentinel).

KEDA reads each connection key from the trigger metadata, the scale target's env (`<key>FromEnv`)
or the TriggerAuthentication, and accepts the singular and plural spellings (`address` and
`addresses`, `host`/`hosts`, `port`/`ports`) for every flavour. TLS can be switched on either by
metadata `enableTLS` or by auth param `tls: enable|disable`, never by both.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalers.config import Source, TriggerInput, address_port_error, param, parse_config
from scalers.errors import AuthError, ConfigError, FieldError, NotFoundError, QueryError, ScalerError, UnreachableError

CONN_ORDER: tuple[Source, ...] = ("triggerMetadata", "authParams", "resolvedEnv")

# Upstream error texts; the conformance tables match on them.
ERR_NO_ADDRESSES = (
    "no addresses or hosts given. address should be a comma separated list of host:port or set the host/port values"
)
ERR_UNEQUAL_HOSTS_PORTS = "not enough hosts or ports given. number of hosts should be equal to the number of ports"


@dataclass(frozen=True, kw_only=True)
class _RawConnection:
    address: list[str] = param("address", CONN_ORDER, optional=True)
    addresses: list[str] = param("addresses", CONN_ORDER, optional=True)
    host: list[str] = param("host", CONN_ORDER, optional=True)
    hosts: list[str] = param("hosts", CONN_ORDER, optional=True)
    port: list[str] = param("port", CONN_ORDER, optional=True)
    ports: list[str] = param("ports", CONN_ORDER, optional=True)
    username: str = param("username", CONN_ORDER, optional=True)
    password: str = param("password", CONN_ORDER, optional=True)
    sentinel_username: str = param("sentinelUsername", CONN_ORDER, optional=True)
    sentinel_password: str = param("sentinelPassword", CONN_ORDER, optional=True)
    sentinel_master: str = param("sentinelMaster", CONN_ORDER, optional=True)
    enable_tls: str = param("enableTLS", optional=True)
    tls: str = param("tls", ("authParams",), optional=True)
    unsafe_ssl: bool = param("unsafeSsl", default=False)
    ca: str = param("ca", ("authParams",), optional=True)
    cert: str = param("cert", ("authParams",), optional=True)
    key: str = param("key", ("authParams",), optional=True)
    key_password: str = param("keyPassword", ("authParams",), optional=True)


@dataclass(frozen=True, kw_only=True)
class ConnectionInfo:
    """Where and how to connect; `addresses` is always filled (host:port pairs joined)."""

    addresses: list[str]
    hosts: list[str]
    ports: list[str]
    username: str = ""
    password: str = ""
    sentinel_username: str = ""
    sentinel_password: str = ""
    sentinel_master: str = ""
    enable_tls: bool = False
    unsafe_ssl: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""
    key_password: str = ""


def parse_connection(source: TriggerInput) -> tuple[ConnectionInfo | None, list[FieldError]]:
    """Parse connection keys; returns (info, errors) so callers can merge errors with their own."""
    try:
        raw = parse_config(_RawConnection, source)
    except ConfigError as exc:
        return None, exc.errors
    errors: list[FieldError] = []
    addresses = raw.address or raw.addresses
    hosts = raw.host or raw.hosts
    ports = raw.port or raw.ports
    if not addresses and (hosts or ports):
        if len(hosts) != len(ports):
            errors.append(FieldError("hosts", ERR_UNEQUAL_HOSTS_PORTS))
        else:
            addresses = [f"{h}:{p}" for h, p in zip(hosts, ports, strict=True)]
    if not addresses and not errors:
        errors.append(FieldError("address", ERR_NO_ADDRESSES))
    for address in addresses:
        bad = address_port_error(address)
        if bad:
            errors.append(FieldError("port" if ports else "address", bad))
    enable_tls = False
    if raw.enable_tls:
        if raw.enable_tls not in ("true", "false"):
            errors.append(FieldError("enableTLS", f"got {raw.enable_tls!r}, expected a boolean (true or false)"))
        enable_tls = raw.enable_tls == "true"
    if raw.tls:
        if raw.enable_tls:
            errors.append(FieldError("tls", "may not be set in both ScaledObject (enableTLS) and authentication (tls)"))
        elif raw.tls not in ("enable", "disable"):
            errors.append(FieldError("tls", f"got {raw.tls!r}, expected 'enable' or 'disable'"))
        enable_tls = raw.tls == "enable"
    if enable_tls and bool(raw.cert) != bool(raw.key):
        errors.append(FieldError("cert", "cert and key must be given together"))
    if errors:
        return None, errors
    return (
        ConnectionInfo(
            addresses=addresses,
            hosts=hosts,
            ports=ports,
            username=raw.username,
            password=raw.password,
            sentinel_username=raw.sentinel_username,
            sentinel_password=raw.sentinel_password,
            sentinel_master=raw.sentinel_master,
            enable_tls=enable_tls,
            unsafe_ssl=raw.unsafe_ssl,
            ca=raw.ca,
            cert=raw.cert,
            key=raw.key,
            key_password=raw.key_password,
        ),
        [],
    )


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


def tls_kwargs(conn: ConnectionInfo, workdir: str) -> dict[str, Any]:
    """redis-py TLS settings as KEDA configures TLS: optional CA, optional client cert, unsafeSsl."""
    if not conn.enable_tls:
        return {}
    kwargs: dict[str, Any] = {"ssl": True}
    if conn.ca:
        kwargs["ssl_ca_data"] = conn.ca
    if conn.cert and conn.key:
        # redis-py reads client certificates from files only.
        cert, key = Path(workdir, "cert.pem"), Path(workdir, "key.pem")
        cert.write_text(conn.cert)
        key.write_text(conn.key)
        kwargs.update(ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_password=conn.key_password or None)
    if conn.unsafe_ssl:
        kwargs.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    return kwargs


def make_client(kind: str, conn: ConnectionInfo, db: int, timeout_s: float, workdir: str) -> Any:
    """A redis.asyncio client for `kind` (plain, cluster or sentinel); connects lazily."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel
    from redis.backoff import ExponentialBackoff

    common: dict[str, Any] = {
        # redis-py's default retries 3× with up to 10 s backoff, and counts a refused password as
        # retryable: one quick retry keeps a poll inside KEDA's timeout.
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        "username": conn.username or None,
        "password": conn.password or None,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        **tls_kwargs(conn, workdir),
    }
    if kind == "cluster":
        nodes = [ClusterNode(*split_address(a)) for a in conn.addresses]
        return RedisCluster(startup_nodes=nodes, require_full_coverage=False, **common)
    if kind == "sentinel":
        sentinel_kwargs = {
            "username": conn.sentinel_username or None,
            "password": conn.sentinel_password or None,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
        }
        sentinels = [split_address(a) for a in conn.addresses]
        sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **common)
        return sentinel.master_for(conn.sentinel_master, db=db)
    host, port = split_address(conn.addresses[0])
    return Redis(host=host, port=port, db=db, **common)


def flavour(trigger_type: str) -> str:
    if trigger_type.startswith("redis-cluster"):
        return "cluster"
    if trigger_type.startswith("redis-sentinel"):
        return "sentinel"
    return "plain"


def translate_error(label: str, exc: BaseException) -> ScalerError:
    """Map redis-py failures to surge's typed errors, keeping Redis's own words."""
    from redis import exceptions as rexc

    if isinstance(exc, rexc.AuthenticationError | rexc.AuthenticationWrongNumberOfArgsError):
        return AuthError(label, f"redis refused the credentials: {exc}")
    if isinstance(exc, rexc.ResponseError) and ("NOAUTH" in str(exc) or "WRONGPASS" in str(exc)):
        return AuthError(label, f"redis refused the credentials: {exc}")
    if isinstance(exc, rexc.ResponseError) and ("NOGROUP" in str(exc) or "no such key" in str(exc)):
        return NotFoundError(label, str(exc))
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | OSError | TimeoutError):
        return UnreachableError(label, f"redis unreachable: {exc}")
    if isinstance(exc, rexc.RedisError):
        return QueryError(label, f"redis error: {exc}")
    return QueryError(label, f"{type(exc).__name__}: {exc}")


class KeyspaceHub:
    """One pub/sub connection per shared client, fanning keyspace notifications out to the
    triggers that watch each key: ten thousand watched lists cost one connection, not ten thousand."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pubsub: Any = None
        self.listeners: dict[str, set[asyncio.Event]] = {}
        self.pump: asyncio.Task[None] | None = None
        self.broken: BaseException | None = None
        self.lock = asyncio.Lock()  # pub/sub connects lazily: racing first subscribes would open one each

    async def listen(self, channel: str) -> AsyncIterator[None]:
        wake = asyncio.Event()
        first = channel not in self.listeners
        self.listeners.setdefault(channel, set()).add(wake)
        try:
            async with self.lock:
                if self.pubsub is None:
                    self.pubsub = self.client.pubsub()
                if first:
                    await self.pubsub.subscribe(channel)
            if self.pump is None:
                self.pump = asyncio.create_task(self._pump())
            while True:
                await wake.wait()
                wake.clear()
                if self.broken is not None:
                    raise self.broken
                yield None
        finally:
            waiting = self.listeners.get(channel, set())
            waiting.discard(wake)
            if not waiting:
                self.listeners.pop(channel, None)
                if self.pubsub is not None and self.broken is None:
                    with contextlib.suppress(Exception):
                        async with self.lock:
                            await self.pubsub.unsubscribe(channel)

    async def _pump(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                for wake in self.listeners.get(channel, ()):
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the listeners fall back to polling
            self.broken = exc
            for waiting in self.listeners.values():
                for wake in waiting:
                    wake.set()

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
            await asyncio.gather(self.pump, return_exceptions=True)
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()


@dataclass
class _SharedClient:
    client: Any
    workdir: tempfile.TemporaryDirectory[str]
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    users: int = 0
    hub: KeyspaceHub | None = None


# Round trips in flight per shared client: the pool opens a connection per concurrent command, so
# without a bound a burst of polls from thousands of triggers would open thousands of connections.
MAX_IN_FLIGHT = 4
# Triggers with identical connection settings share one client (and one connection pool), per
# event loop: a client is bound to the loop that opened it.
_SHARED: dict[tuple[int, str], _SharedClient] = {}


class RedisClientOwner:
    """The redis.asyncio client of one trigger, shared with every trigger on the same server and
    settings, opened on first use and closed when its last user closes.
    Subclasses set `trigger` and a `config` with `connection` and `database_index`."""

    trigger: Any
    config: Any
    _shared_key: tuple[int, str] | None = None

    def _connect(self) -> Any:
        if self._shared_key is None:
            kind = flavour(self.trigger.type)
            key = (id(asyncio.get_running_loop()),
                   repr((kind, self.config.connection, self.config.database_index, self.trigger.timeout_s)))
            shared = _SHARED.get(key)
            if shared is None:
                workdir = tempfile.TemporaryDirectory(prefix="surge-redis-")
                client = make_client(kind, self.config.connection, self.config.database_index,
                                     self.trigger.timeout_s, workdir.name)
                shared = _SHARED[key] = _SharedClient(client, workdir)
            shared.users += 1
            self._shared_key = key
        return _SHARED[self._shared_key].client

    def _slot(self) -> asyncio.Semaphore:
        """Taken around every round trip on the shared client (see MAX_IN_FLIGHT)."""
        self._connect()
        assert self._shared_key is not None
        return _SHARED[self._shared_key].slots

    def watched_key(self) -> str:
        """The key whose changes should wake the polling loop (subclasses name it)."""
        raise NotImplementedError

    async def changes(self) -> AsyncIterator[None]:
        """Yields whenever the watched key changes, from Redis keyspace notifications.

        Only plain (non-cluster, non-sentinel) servers, and only when the server publishes keyspace
        events (`notify-keyspace-events` including K and l/t); otherwise nothing is ever yielded
        and the caller simply keeps polling. surge never changes the server's configuration.
        """
        if flavour(self.trigger.type) != "plain":
            return
        self._connect()
        assert self._shared_key is not None
        shared = _SHARED[self._shared_key]
        if shared.hub is None:
            shared.hub = KeyspaceHub(shared.client)
        channel = f"__keyspace@{self.config.database_index}__:{self.watched_key()}"
        async for _ in shared.hub.listen(channel):
            yield None

    async def close(self) -> None:
        key, self._shared_key = self._shared_key, None
        shared = _SHARED.get(key) if key is not None else None
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del _SHARED[key]  # type: ignore[arg-type]
            if shared.hub is not None:
                await shared.hub.close()
            await shared.client.aclose()
            shared.workdir.cleanup()
