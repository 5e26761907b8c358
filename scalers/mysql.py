"""`mysql`: scale on the number one SQL query returns (MySQL or MariaDB).

The connection comes from `connectionString` (Go's MySQL DSN, `user:pass@tcp(host:port)/db?...`,
from the authentication or `connectionStringFromEnv`) or from host/port/username/password/dbName.
Triggers on the same server and credentials share one aiomysql pool.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import Source, param
from scalers.cron import keda_normalize
from scalers.errors import AuthError, NotFoundError, QueryError, UnreachableError
from scalers.sql_pools import PooledReader, SharedPools

META_AUTH: tuple[Source, ...] = ("triggerMetadata", "authParams")
META_AUTH_ENV: tuple[Source, ...] = ("triggerMetadata", "authParams", "resolvedEnv")
AUTH_ENV: tuple[Source, ...] = ("authParams", "resolvedEnv")


@dataclass(frozen=True, kw_only=True)
class MySqlConfig:
    connection_string: str = param("connectionString", AUTH_ENV, optional=True)
    username: str = param("username", META_AUTH_ENV, optional=True)
    password: str = param("password", AUTH_ENV, optional=True)
    host: str = param("host", META_AUTH, optional=True)
    port: str = param("port", META_AUTH, optional=True)
    db_name: str = param("dbName", META_AUTH, optional=True)
    query: str = param("query")
    query_value: float = param("queryValue")
    activation_query_value: float = param("activationQueryValue", default=0)

    @property
    def database(self) -> str:
        """KEDA's parseMySQLDbNameFromConnectionStr: the text after the last '/' of the DSN."""
        return self.connection_string.split("/")[-1] if self.connection_string else self.db_name

    @property
    def dsn(self) -> str:
        """KEDA's metadataToConnectionStr (go-sql-driver's FormatDSN for the parts)."""
        if self.connection_string:
            return self.connection_string
        auth = f"{self.username}:{self.password}@" if self.password else (f"{self.username}@" if self.username else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{auth}tcp({host}:{self.port})/{self.db_name}"


_DSN = re.compile(r"^(?:(?P<user>[^:@]*)(?::(?P<password>.*))?@)?(?:(?P<net>[a-z0-9]+)(?:\((?P<addr>[^)]*)\))?)?"
                  r"/(?P<db>[^?]*)(?:\?(?P<params>.*))?$")


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Go MySQL DSN → aiomysql connect arguments."""
    match = _DSN.match(dsn)
    if match is None:
        raise ValueError(f"not a MySQL DSN (user:password@tcp(host:port)/dbname): {dsn!r}")
    kwargs: dict[str, Any] = {"user": match.group("user") or "", "password": match.group("password") or "",
                              "db": match.group("db") or None}
    net, addr = match.group("net") or "tcp", match.group("addr") or "127.0.0.1:3306"
    if net == "unix":
        kwargs["unix_socket"] = addr
    else:
        host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "3306")
        kwargs["host"], kwargs["port"] = host.strip("[]"), int(port or 3306)
    params = {k: v[-1] for k, v in parse_qs(match.group("params") or "").items()}
    if params.get("tls") in ("true", "skip-verify", "preferred"):
        import ssl

        ctx = ssl.create_default_context()
        if params["tls"] != "true":
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        kwargs["ssl"] = ctx
    if "timeout" in params:
        kwargs["connect_timeout"] = float(params["timeout"].rstrip("s"))
    kwargs["password"] = unquote(kwargs["password"]) if "%" in kwargs["password"] else kwargs["password"]
    return kwargs


async def _open(key: tuple[Any, ...]) -> Any:
    import aiomysql

    return await aiomysql.create_pool(minsize=1, maxsize=4, connect_timeout=key[1], autocommit=True,
                                      **parse_dsn(key[0]))


async def _close(pool: Any) -> None:
    pool.close()
    await pool.wait_closed()


POOLS = SharedPools(_open, _close)


class MySqlScaler(PooledReader):
    pools = POOLS
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(MySqlConfig, trigger)

    def pool_key(self) -> tuple[Any, ...]:
        return (self.config.dsn, self.trigger.timeout_s)

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, keda_normalize(f"mysql-{self.config.database}"))
        return [MetricSpec(name, self.config.query_value, self.trigger.metric_type)]

    async def value(self) -> float:
        import pymysql

        label = self.trigger.label
        try:
            pool = await self._connect(self.trigger.timeout_s)
            async with pool.acquire() as conn, conn.cursor() as cur:
                await asyncio.wait_for(cur.execute(self.config.query), self.trigger.timeout_s)
                row = await cur.fetchone()
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else 0
            await self._drop()
            if code in (1045, 1044, 1698):
                raise AuthError(label, f"mysql refused the credentials: {exc}") from None
            if code == 1049:
                raise NotFoundError(label, f"mysql: {exc}") from None
            raise UnreachableError(label, f"mysql unreachable: {exc}") from None
        except pymysql.err.MySQLError as exc:
            raise QueryError(label, f"could not query MySQL: {exc}") from None
        except (OSError, TimeoutError) as exc:
            await self._drop()
            raise UnreachableError(label, f"mysql unreachable: {exc or type(exc).__name__}") from None
        except ValueError as exc:
            raise QueryError(label, f"connection string: {exc}") from None
        if not row or row[0] is None:
            raise QueryError(label, "the query returned no value (NULL or no rows)")
        try:
            return float(row[0])
        except (TypeError, ValueError):
            raise QueryError(label, f"the query returned {row[0]!r}, expected a number") from None

    async def metrics(self) -> Reading:
        value = sanitize(await self.value())
        return Reading({self.metric_specs()[0].name: value}, active=value > self.config.activation_query_value)
