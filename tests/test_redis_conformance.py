"""KEDA's redis and redis-streams scaler test tables, case by case.

Mapping of upstream assertions: an upstream `ErrRedisParse` / `ErrRedisStreamParse` ("error
parsing ... metadata", the wrapper of every parse failure) is our ConfigError; the specific
upstream errors (no addresses, unequal hosts/ports, missing stream name, no list name) must also
appear in our message. Go field names map to ours as snake_case (`ConnectionInfo` → `connection`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from scalers.base import Trigger
from scalers.errors import ConfigError
from scalers.redis_lists import RedisListScaler, parse_list_config
from scalers.redis_streams import RedisStreamsScaler, ScaleFactor, is_active, parse_streams_config
from tests.fixtures.conformance import vector_cases, vector_file

REDIS = vector_file("redis.json")
STREAMS = vector_file("redis-streams.json")
WRAPPER_IDENTS = {"ErrRedisParse", "ErrRedisStreamParse"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace("enable_t_l_s", "enable_tls")


def trigger(case: dict[str, Any], kind: str, index: int = 0) -> Trigger:
    return Trigger(
        type=kind,
        metadata=case.get("metadata") or {},
        auth_params=case.get("authParams") or {},
        resolved_env=case.get("resolvedEnv") or REDIS["fixed_inputs"]["testRedisResolvedEnv"],
        index=index,
    )


def check_error(exc: ConfigError, case: dict[str, Any], idents: dict[str, str]) -> None:
    ident = (case.get("expected_error") or {}).get("go_ident")
    if ident and ident not in WRAPPER_IDENTS:
        assert idents[ident] in str(exc), f"{idents[ident]!r} not in {exc}"


def assert_whole_struct(parsed: Any, want: dict[str, Any], zero: dict[str, Any]) -> None:
    """assert.Equal on the whole struct: every field not in `want` holds its zero value."""
    expected = dict(zero)
    for key, value in want.items():
        expected[snake(key)] = value
    conn_want = {snake(k): v for k, v in want.get("ConnectionInfo", {}).items()}
    conn_zero = {"addresses": [], "hosts": [], "ports": [], "username": "", "password": "", "sentinel_username": "",
                 "sentinel_password": "", "sentinel_master": "", "enable_tls": False, "unsafe_ssl": False,
                 "ca": "", "cert": "", "key": "", "key_password": ""}
    conn_expected = conn_zero | conn_want
    actual_conn = {k: getattr(parsed.connection, k) for k in conn_expected}
    assert actual_conn == conn_expected
    expected.pop("connection_info", None)
    for key, value in expected.items():
        actual = getattr(parsed, key)
        if isinstance(actual, ScaleFactor):
            actual = actual.value
        assert actual == value, f"{key}: {actual!r} != {value!r}"


@pytest.mark.conformance("redis.json")
@pytest.mark.parametrize("case", vector_cases("redis.json"))
def test_redis_table(case: dict[str, Any]) -> None:
    table = case["table"]
    kind = {"TestParseRedisClusterMetadata": "redis-cluster", "TestParseRedisSentinelMetadata": "redis-sentinel"}.get(
        table, "redis"
    )
    if table == "redisMetricIdentifiers":
        scaler = RedisListScaler(trigger(case, kind, case["expected"]["triggerIndex"]))
        assert scaler.metric_specs()[0].name == case["name"]
        return
    if case["expect_error"]:
        with pytest.raises(ConfigError) as err:
            parse_list_config(trigger(case, kind))
        check_error(err.value, case, REDIS["go_idents"])
        return
    parsed = parse_list_config(trigger(case, kind))
    if table == "testRedisMetadata":
        assert parsed.connection.enable_tls is case["expected"]["EnableTLS"]
        if parsed.connection.enable_tls:
            auth = case["authParams"]
            for key, attr in (("ca", "ca"), ("cert", "cert"), ("key", "key"), ("keyPassword", "key_password")):
                assert getattr(parsed.connection, attr) == auth.get(key, "")
        return
    zero = {"list_length": 5, "activation_list_length": 0, "list_name": "", "database_index": 0}
    assert_whole_struct(parsed, case["expected"]["wantMeta"], zero)


@pytest.mark.conformance("redis-streams.json")
@pytest.mark.parametrize("case", vector_cases("redis-streams.json"))
def test_redis_streams_table(case: dict[str, Any]) -> None:
    table = case["table"]
    kind = {
        "TestParseRedisClusterStreamsMetadata": "redis-cluster-streams",
        "TestParseRedisSentinelStreamsMetadata": "redis-sentinel-streams",
    }.get(table, "redis-streams")
    if table.startswith("TestParseRedisStreamsMetadata."):
        meta = case["metadata"]
        parsed = parse_streams_config(trigger(case, kind))
        assert parsed.stream_name == meta["stream"]
        assert parsed.consumer_group_name == meta["consumerGroup"]
        assert parsed.database_index == int(meta["databaseIndex"])
        assert parsed.connection.enable_tls is (meta["enableTLS"] == "true")
        assert (parsed.connection.username, parsed.connection.password) == ("foobarred", "foobarred")
        if table.endswith("testCasesPending"):
            assert parsed.target_pending_entries_count == int(meta["pendingEntriesCount"])
        else:
            assert parsed.target_lag == int(meta["lagCount"])
        return
    if table == "TestParseRedisStreamsMetadataForInvalidCases" or case.get("expect_error"):
        with pytest.raises(ConfigError) as err:
            parse_streams_config(trigger(case | {"authParams": case.get("authParams") or {}}, kind))
        check_error(err.value, case, STREAMS["go_idents"])
        return
    zero = {"stream_name": "", "target_pending_entries_count": 0, "target_stream_length": 0, "target_lag": 0,
            "activation_lag_count": 0, "consumer_group_name": "", "database_index": 0}
    assert_whole_struct(parse_streams_config(trigger(case, kind)), case["expected"]["wantMeta"], zero)


def test_streams_activity_count() -> None:
    """Upstream TestActivityCount (not a table): lag 0 is idle, lag 4 is active over activation 3."""
    meta = {"hosts": "a, b, c", "ports": "1, 2, 3", "stream": "my-stream", "lagCount": "7",
            "activationLagCount": "3", "consumerGroup": "consumer1"}
    scaler = RedisStreamsScaler(Trigger(type="redis-cluster-streams", metadata=meta))
    cfg = scaler.config
    assert (cfg.target_lag, cfg.activation_lag_count, cfg.target_pending_entries_count) == (7, 3, 0)
    assert cfg.scale_factor is ScaleFactor.LAG
    assert not is_active(cfg, 0) and is_active(cfg, 4)
