"""postgresql and mysql triggers against real servers (tests/fixtures/sql.py), and KEDA's tables."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from scalers.base import Trigger
from scalers.batch import poll_cycle
from scalers.errors import AuthError, ConfigError, QueryError, UnreachableError
from scalers.mysql import POOLS as MYSQL_POOLS
from scalers.mysql import MySqlScaler, parse_dsn
from scalers.postgresql import POOLS as PG_POOLS
from scalers.postgresql import PostgresScaler, connect_kwargs, escape
from tests.fixtures.conformance import vector_cases
from tests.fixtures.sql import Database
from tests.servers import free_port


def trig(kind: str, case: dict[str, Any], index: int = 0) -> Trigger:
    pi = dict((case.get("inputs") or {}).get("podIdentity") or {})
    return Trigger(type=kind, metadata=case.get("metadata") or {}, auth_params=case.get("authParams") or {},
                   resolved_env=case.get("resolvedEnv") or {}, index=index, pod_identity=pi.pop("provider", ""),
                   pod_identity_params=pi)


@pytest.mark.conformance("postgresql.json")
@pytest.mark.parametrize("case", vector_cases("postgresql.json"))
def test_postgresql_table(case: dict[str, Any]) -> None:
    table, expected = case["table"], case.get("expected") or {}
    if table == "TestEscapePostgreConnectionParameter":
        assert escape(case["inputs"]["input"]) == expected["want"]
    elif case["expect_error"]:
        with pytest.raises(ConfigError):
            PostgresScaler(trig("postgresql", case))
    else:
        scaler = PostgresScaler(trig("postgresql", case, expected.get("triggerIndex", 0)))
        if "connectionString" in expected:
            assert scaler.config.conninfo == expected["connectionString"]
        if table == "postgreSQLMetricIdentifiers":
            assert scaler.metric_specs()[0].name == case["name"]


@pytest.mark.conformance("mysql.json")
@pytest.mark.parametrize("case", vector_cases("mysql.json"))
def test_mysql_table(case: dict[str, Any]) -> None:
    expected = case.get("expected") or {}
    if case["expect_error"]:
        with pytest.raises(ConfigError):
            MySqlScaler(trig("mysql", case))
        return
    scaler = MySqlScaler(trig("mysql", case, expected.get("triggerIndex", 0)))
    if "connStr" in expected:
        assert scaler.config.dsn == expected["connStr"]
    if case["table"] == "mySQLMetricIdentifiers":
        assert scaler.metric_specs()[0].name == case["name"]


def test_connection_strings_parse() -> None:
    assert connect_kwargs("host=h port=5 user='a b' dbname=d sslmode=disable password='x\\'y'") == {
        "host": "h", "port": 5, "user": "a b", "database": "d", "password": "x'y", "ssl": False}
    assert connect_kwargs("postgresql://u:p@h:5/d") == {"dsn": "postgresql://u:p@h:5/d"}
    assert parse_dsn("u:p@tcp(db:3307)/stats?tls=skip-verify")["port"] == 3307
    assert parse_dsn("u@unix(/run/my.sock)/x")["unix_socket"] == "/run/my.sock"


async def test_postgresql_reads_a_query(postgres_server: Database) -> None:
    db = postgres_server
    conn = await asyncpg.connect(host=db.host, port=db.port, user=db.user, password=db.password, database=db.database)
    await conn.execute("CREATE TABLE IF NOT EXISTS task (id serial, state text)")
    await conn.execute("INSERT INTO task (state) SELECT 'waiting' FROM generate_series(1, 12)")
    await conn.close()
    meta = {"query": "SELECT count(*) FROM task WHERE state = 'waiting'", "targetQueryValue": "5",
            "activationTargetQueryValue": "20", "host": db.host, "port": str(db.port), "userName": db.user,
            "dbName": db.database, "sslmode": "disable"}
    # two triggers on one server share one pool; a third with a URI from the env reads the same table
    a = PostgresScaler(Trigger(type="postgresql", name="a", metadata=meta, auth_params={"password": db.password}))
    b = PostgresScaler(Trigger(type="postgresql", name="b", index=1, metadata=meta,
                               auth_params={"password": db.password}))
    uri = f"postgresql://{db.user}:{db.password.replace(' ', '%20').replace(chr(39), '%27')}@{db.host}:{db.port}/" \
          f"{db.database}"
    c = PostgresScaler(Trigger(type="postgresql", name="c", resolved_env={"PG": uri}, metadata={
        "query": "SELECT 2.5", "targetQueryValue": "1", "connectionFromEnv": "PG"}))
    try:
        ra, rb, rc = await poll_cycle([a, b, c])
        assert not isinstance(ra, Exception) and ra.values == {"s0-postgresql": 12.0} and not ra.active
        assert not isinstance(rb, Exception) and rb.values == {"s1-postgresql": 12.0}
        assert not isinstance(rc, Exception) and rc.values == {"s0-postgresql": 2.5} and rc.active
        assert a._pool is b._pool and a._pool is not c._pool
        bad = PostgresScaler(Trigger(type="postgresql", metadata={**meta, "query": "SELECT nope"},
                                     auth_params={"password": db.password}))
        with pytest.raises(QueryError, match="could not query postgreSQL"):
            await bad.metrics()
        await bad.close()
        wrong = PostgresScaler(Trigger(type="postgresql", metadata=meta, auth_params={"password": "wrong"}))
        with pytest.raises(AuthError):
            await wrong.metrics()
    finally:
        for s in (a, b, c):
            await s.close()
    assert len(PG_POOLS) == 0


async def test_postgresql_unreachable() -> None:
    s = PostgresScaler(Trigger(type="postgresql", metadata={"query": "SELECT 1", "targetQueryValue": "1"},
                               auth_params={"connection": f"host=127.0.0.1 port={free_port()} user=u dbname=d "
                                                          "sslmode=disable"}, timeout_s=1))
    with pytest.raises(UnreachableError):
        await s.metrics()


async def test_mysql_reads_a_query(mariadb_server: Database) -> None:
    db = mariadb_server
    meta = {"query": "SELECT 42", "queryValue": "10", "host": db.host, "port": str(db.port), "username": db.user,
            "dbName": db.database}
    a = MySqlScaler(Trigger(type="mysql", name="a", metadata=meta, auth_params={"password": db.password}))
    dsn = f"{db.user}:{db.password}@tcp({db.host}:{db.port})/{db.database}"
    b = MySqlScaler(Trigger(type="mysql", name="b", index=1, resolved_env={"DSN": dsn}, metadata={
        "query": "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'jobs'", "queryValue": "1",
        "activationQueryValue": "5", "connectionStringFromEnv": "DSN"}))
    try:
        ra, rb = await asyncio.wait_for(poll_cycle([a, b]), 30)
        assert not isinstance(ra, Exception) and ra.values == {"s0-mysql-jobs": 42.0} and ra.active
        assert not isinstance(rb, Exception) and rb.values == {"s1-mysql-jobs": 0.0} and not rb.active
        assert a._pool is b._pool  # same server, same credentials: one pool
        wrong = MySqlScaler(Trigger(type="mysql", metadata=meta, auth_params={"password": "nope"}))
        with pytest.raises(AuthError):
            await wrong.metrics()
        bad = MySqlScaler(Trigger(type="mysql", metadata={**meta, "query": "SELECT FROM"},
                                  auth_params={"password": db.password}))
        with pytest.raises(QueryError):
            await bad.metrics()
        await bad.close()
    finally:
        await a.close()
        await b.close()
    assert len(MYSQL_POOLS) == 0
