"""`postgresql`: scale on the number one SQL query returns.

The connection comes from `connection` (a libpq URI or `key=value` string, from the
authentication or `connectionFromEnv`) or from host/port/userName/dbName/sslmode (+ password),
which are assembled into a libpq string exactly as KEDA assembles them (values with spaces,
quotes or backslashes quoted). Triggers on the same server share one asyncpg pool.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config, sanitize
from scalers.config import Source, param
from scalers.errors import AuthError, FieldError, NotFoundError, QueryError, UnreachableError
from scalers.sql_pools import PooledReader, SharedPools

AUTH_OR_META: tuple[Source, ...] = ("authParams", "triggerMetadata")
AUTH_OR_ENV: tuple[Source, ...] = ("authParams", "resolvedEnv")


@dataclass(frozen=True, kw_only=True)
class PostgresConfig:
    target_query_value: float = param("targetQueryValue", optional=True)
    activation_target_query_value: float = param("activationTargetQueryValue", optional=True)
    connection: str = param("connection", AUTH_OR_ENV, optional=True)
    query: str = param("query")
    host: str = param("host", AUTH_OR_META, optional=True)
    port: str = param("port", AUTH_OR_META, optional=True)
    user_name: str = param("userName", AUTH_OR_META, optional=True)
    db_name: str = param("dbName", AUTH_OR_META, optional=True)
    sslmode: str = param("sslmode", AUTH_OR_META, optional=True)
    password: str = param("password", AUTH_OR_ENV, optional=True)
    azure_workload: bool = False  # podIdentity azure-workload: the password is an Azure AD token
    as_metric_source: bool = False  # the ScaledObject has a scalingModifiers formula: targetQueryValue optional

    def validate(self) -> list[FieldError]:
        if not self.connection:
            for key, value in (("host", self.host), ("port", self.port), ("userName", self.user_name),
                               ("dbName", self.db_name), ("sslmode", self.sslmode)):
                if not value:
                    return [FieldError(key, f"no {key} given (or give a connection string in `connection`)")]
        if self.target_query_value == 0 and not self.as_metric_source:
            return [FieldError("targetQueryValue", "no targetQueryValue given (expected a non-zero number)")]
        return []

    @property
    def conninfo(self) -> str:
        """KEDA's connection string: `connection`, else the parts joined as libpq key=value pairs."""
        parts = [("host", self.host), ("port", self.port), ("user", self.user_name), ("dbname", self.db_name),
                 ("sslmode", self.sslmode)]
        if self.azure_workload:  # KEDA puts a placeholder where the token goes
            return " ".join([*(f"{k}={escape(v)}" for k, v in parts), "%PASSWORD%"])
        if self.connection:
            return self.connection
        return " ".join(f"{k}={escape(v)}" for k, v in [*parts, ("password", self.password)])


def escape(value: str) -> str:
    """KEDA's escapePostgreConnectionParameter: quote values with whitespace, quotes or backslashes."""
    if not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """A libpq `key=value ...` string as a dict (a URI is returned as {"dsn": uri})."""
    if re.match(r"^postgres(ql)?://", conninfo):
        return {"dsn": conninfo}
    out, pos = {}, 0
    while pos < len(conninfo.rstrip()):
        match = _PAIR.match(conninfo, pos)
        if match is None:
            raise ValueError(f"cannot parse the connection string near {conninfo[pos:pos + 20]!r}")
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[match.group(1)] = value
        pos = match.end()
    return out


def connect_kwargs(conninfo: str) -> dict[str, Any]:
    """asyncpg.connect/create_pool keyword arguments for a libpq connection string."""
    info = parse_conninfo(conninfo)
    if "dsn" in info:
        return {"dsn": info["dsn"]}
    names = {"host": "host", "port": "port", "user": "user", "dbname": "database", "password": "password"}
    kwargs: dict[str, Any] = {names[k]: v for k, v in info.items() if k in names and v != ""}
    if "host" in kwargs and "," in kwargs["host"]:
        kwargs["host"] = kwargs["host"].split(",")
    if "port" in kwargs:
        kwargs["port"] = [int(p) for p in str(kwargs["port"]).split(",")] if "," in str(kwargs["port"]) else int(
            kwargs["port"])
    sslmode = info.get("sslmode")
    if sslmode:
        kwargs["ssl"] = {"disable": False, "allow": "allow", "prefer": "prefer", "require": "require",
                         "verify-ca": "verify-ca", "verify-full": "verify-full"}.get(sslmode, sslmode)
    return kwargs


async def _open(key: tuple[Any, ...]) -> Any:
    import asyncpg

    return await asyncpg.create_pool(**connect_kwargs(key[0]), min_size=1, max_size=4, timeout=key[1])


async def _close(pool: Any) -> None:
    await pool.close()


POOLS = SharedPools(_open, _close)


class PostgresScaler(PooledReader):
    pools = POOLS
    shares_connections = True  # read in the operator's common cycle (scalers/batch.py)

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(PostgresConfig, trigger)
        if trigger.pod_identity == "azure-workload":
            self.config = dataclasses.replace(self.config, azure_workload=True)

    def pool_key(self) -> tuple[Any, ...]:
        return (self.config.conninfo, self.trigger.timeout_s)

    def metric_specs(self) -> list[MetricSpec]:
        return [MetricSpec(metric_name(self.trigger, "postgresql"), self.config.target_query_value,
                           self.trigger.metric_type)]

    async def value(self) -> float:
        import asyncpg

        label, timeout = self.trigger.label, self.trigger.timeout_s
        if self.config.azure_workload:
            raise AuthError(label, "podIdentity azure-workload (an Azure AD token as the password) is not supported "
                                   "by surge; give a password in the authentication")
        try:
            pool = await self._connect(self.trigger.timeout_s)
            row = await pool.fetchval(self.config.query, timeout=timeout)
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
            await self._drop()
            raise AuthError(label, f"postgresql refused the credentials: {exc}") from None
        except asyncpg.InvalidCatalogNameError as exc:
            await self._drop()
            raise NotFoundError(label, f"postgresql: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise QueryError(label, f"could not query postgreSQL: {exc}") from None
        except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            await self._drop()
            raise UnreachableError(label, f"postgresql unreachable: {exc or type(exc).__name__}") from None
        except ValueError as exc:
            raise QueryError(label, f"connection string: {exc}") from None
        if row is None:
            raise QueryError(label, "the query returned no value (NULL or no rows)")
        try:
            return float(row)
        except (TypeError, ValueError):
            raise QueryError(label, f"the query returned {row!r}, expected a number") from None

    async def metrics(self) -> Reading:
        value = sanitize(await self.value())
        active = value > self.config.activation_target_query_value
        return Reading({self.metric_specs()[0].name: value}, active=active)
