"""Redis list and stream triggers against real redis-server, cluster and sentinel."""

from __future__ import annotations

import time
import uuid

import pytest

from scalers.base import Trigger
from scalers.errors import AuthError, NotFoundError, UnreachableError
from scalers.redis_lists import RedisListScaler, read_list_lengths
from scalers.redis_streams import RedisStreamsScaler
from tests.fixtures.redis import PASSWORD, RedisCluster, RedisSentinel, cli
from tests.servers import Server, free_port


def key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_list_length_and_activation(redis_plain: Server) -> None:
    name = key("jobs")
    trig = Trigger(type="redis", name="jobs", metadata={
        "address": redis_plain.address, "listName": name, "listLength": "5", "activationListLength": "2"})
    scaler = RedisListScaler(trig)
    try:
        reading = await scaler.metrics()
        assert reading.values == {"s0-redis-" + name: 0.0} and not reading.active
        cli(redis_plain.port, "RPUSH", name, "a", "b")
        assert not (await scaler.metrics()).active  # 2 is not above activationListLength 2
        cli(redis_plain.port, "RPUSH", name, "c")
        reading = await scaler.metrics()
        assert reading.values["s0-redis-" + name] == 3.0 and reading.active
    finally:
        await scaler.close()


async def test_pipelined_reads_match_single_reads(redis_plain: Server) -> None:
    names = [key("q") for _ in range(20)]
    for i, n in enumerate(names):
        if i:
            cli(redis_plain.port, "RPUSH", n, *["x"] * i)
    scaler = RedisListScaler(Trigger(type="redis", metadata={"address": redis_plain.address, "listName": names[0]}))
    try:
        lengths = await read_list_lengths(scaler._connect(), names)
        assert lengths == list(range(20))
    finally:
        await scaler.close()


async def test_password_and_acl_user(redis_auth: Server) -> None:
    name = key("secure")
    cli(redis_auth.port, "RPUSH", name, "1", "2", "3", password=PASSWORD)
    for auth in ({"password": PASSWORD}, {"username": "scaler", "password": PASSWORD}):
        scaler = RedisListScaler(Trigger(type="redis", metadata={"address": redis_auth.address, "listName": name},
                                         auth_params=auth))
        try:
            assert (await scaler.metrics()).active
        finally:
            await scaler.close()
    bad = RedisListScaler(Trigger(type="redis", name="wrong", metadata={"address": redis_auth.address,
                                  "listName": name}, auth_params={"password": "nope"}))
    with pytest.raises(AuthError, match='trigger redis "wrong"'):
        await bad.metrics()
    await bad.close()


async def test_unreachable_server_is_a_typed_error_within_the_timeout() -> None:
    scaler = RedisListScaler(Trigger(type="redis", name="gone", metadata={
        "address": f"127.0.0.1:{free_port()}", "listName": "x"}, timeout_s=0.5))
    start = time.monotonic()
    with pytest.raises(UnreachableError, match='redis "gone"'):
        await scaler.metrics()
    assert time.monotonic() - start < 5
    await scaler.close()


async def test_cluster_list(redis_cluster: RedisCluster) -> None:
    name = key("cluster-list")
    cli(redis_cluster.ports[0], "-c", "RPUSH", name, *["x"] * 7)
    scaler = RedisListScaler(Trigger(type="redis-cluster", metadata={
        "hosts": redis_cluster.hosts, "ports": redis_cluster.port_list, "listName": name}))
    try:
        assert (await scaler.metrics()).values == {f"s0-redis-{name}": 7.0}
    finally:
        await scaler.close()


async def test_sentinel_list(redis_sentinel: RedisSentinel) -> None:
    name = key("sentinel-list")
    cli(redis_sentinel.master_port, "RPUSH", name, "a", "b", "c", "d")
    scaler = RedisListScaler(Trigger(type="redis-sentinel", metadata={
        "addresses": f"127.0.0.1:{redis_sentinel.sentinel_port}", "sentinelMaster": "mymaster", "listName": name}))
    try:
        assert (await scaler.metrics()).values == {f"s0-redis-{name}": 4.0}
    finally:
        await scaler.close()


async def test_stream_modes(redis_plain: Server) -> None:
    stream = key("events")
    port = redis_plain.port
    for i in range(10):
        cli(port, "XADD", stream, "*", "n", str(i))
    cli(port, "XGROUP", "CREATE", stream, "workers", "0")
    cli(port, "XREADGROUP", "GROUP", "workers", "w1", "COUNT", "4", "STREAMS", stream, ">")  # 4 delivered, pending
    base = {"address": redis_plain.address, "stream": stream}

    async def read(meta: dict[str, str]) -> float:
        scaler = RedisStreamsScaler(Trigger(type="redis-streams", metadata=base | meta))
        try:
            return next(iter((await scaler.metrics()).values.values()))
        finally:
            await scaler.close()

    assert await read({"streamLength": "5"}) == 10.0
    assert await read({"consumerGroup": "workers", "pendingEntriesCount": "2"}) == 4.0
    assert await read({"consumerGroup": "workers", "lagCount": "3", "activationLagCount": "1"}) == 6.0


async def test_stream_missing_group_is_not_found(redis_plain: Server) -> None:
    stream = key("lonely")
    cli(redis_plain.port, "XADD", stream, "*", "n", "1")
    for meta in ({"consumerGroup": "nobody"}, {"consumerGroup": "nobody", "lagCount": "1", "activationLagCount": "0"}):
        scaler = RedisStreamsScaler(Trigger(type="redis-streams", name="s",
                                            metadata={"address": redis_plain.address, "stream": stream} | meta))
        with pytest.raises(NotFoundError, match="nobody"):
            await scaler.metrics()
        await scaler.close()


async def test_cluster_stream_lag(redis_cluster: RedisCluster) -> None:
    stream = key("cstream")
    port = redis_cluster.ports[0]
    for i in range(5):
        cli(port, "-c", "XADD", stream, "*", "n", str(i))
    cli(port, "-c", "XGROUP", "CREATE", stream, "g", "0")
    scaler = RedisStreamsScaler(Trigger(type="redis-cluster-streams", metadata={
        "hosts": redis_cluster.hosts, "ports": redis_cluster.port_list, "stream": stream, "consumerGroup": "g",
        "lagCount": "2", "activationLagCount": "0"}))
    try:
        reading = await scaler.metrics()
        assert list(reading.values.values()) == [5.0] and reading.active
    finally:
        await scaler.close()


async def test_batched_lengths_without_scripting_rights_and_with_a_wrong_type(redis_auth: Server) -> None:
    """Many lists are read with one script call; a user whose ACL allows only LLEN, and a key
    that is not a list, fall back to the pipeline: same lengths, and the exact per-key error."""
    names = [key(f"acl{i}") for i in range(4)]
    for i, name in enumerate(names):
        if i:
            cli(redis_auth.port, "RPUSH", name, *["x"] * i, password=PASSWORD)
    for auth in ({"password": PASSWORD}, {"username": "scaler", "password": PASSWORD}):
        scaler = RedisListScaler(Trigger(type="redis", metadata={"address": redis_auth.address,
                                                                 "listName": names[0]}, auth_params=auth))
        try:
            assert await read_list_lengths(scaler._connect(), names) == [0, 1, 2, 3]
        finally:
            await scaler.close()
    wrong = key("a-string")
    cli(redis_auth.port, "SET", wrong, "v", password=PASSWORD)
    scaler = RedisListScaler(Trigger(type="redis", metadata={"address": redis_auth.address, "listName": wrong},
                                     auth_params={"password": PASSWORD}))
    try:
        with pytest.raises(Exception, match="WRONGTYPE"):
            await read_list_lengths(scaler._connect(), [names[1], wrong])
    finally:
        await scaler.close()
