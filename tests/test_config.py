"""The typed trigger config follows KEDA's typed-config rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalers.base import Trigger, parse_trigger_config
from scalers.config import AUTH_OR_ENV, METADATA_OR_ENV, TriggerInput, convert, param, parse_bool_like_go, parse_config
from scalers.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Sample:
    threshold: int = param("threshold", default=10)
    topic: str = param("topic", optional=True)
    ratio: float = param("ratio", optional=True)
    partitions: list[int] = param("partitions", optional=True, range_separator="-")
    password: str | None = param("password", AUTH_OR_ENV, optional=True)
    host: str = param("host", METADATA_OR_ENV)
    mode: str = param("mode", default="latest", enum=("latest", "earliest"))
    headers: dict[str, str] = param("headers", optional=True)
    flag: bool = param("flag", default=False)


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None) -> Sample:
    return parse_config(Sample, TriggerInput(metadata, auth or {}, env or {}))


def test_defaults_apply_when_absent() -> None:
    cfg = parse({"host": "h"})
    assert (cfg.threshold, cfg.topic, cfg.mode, cfg.flag, cfg.password) == (10, "", "latest", False, None)


def test_values_are_trimmed_and_empty_counts_as_absent() -> None:
    cfg = parse({"host": " h ", "threshold": "  ", "topic": " t\n"})
    assert (cfg.host, cfg.threshold, cfg.topic) == ("h", 10, "t")


def test_from_env_and_auth_order() -> None:
    cfg = parse({"hostFromEnv": "H", "passwordFromEnv": "P"}, auth={"password": "from-auth"}, env={"H": "h1", "P": "p"})
    assert cfg.host == "h1"
    assert cfg.password == "from-auth"  # authParams comes first in AUTH_OR_ENV
    assert parse({"passwordFromEnv": "P", "host": "x"}, env={"P": "p"}).password == "p"


def test_lists_ranges_and_maps() -> None:
    cfg = parse({"host": "h", "partitions": "1, 3-5,9", "headers": "a=1, b = 2"})
    assert cfg.partitions == [1, 3, 4, 5, 9]
    assert cfg.headers == {"a": "1", "b": "2"}


def test_every_error_is_reported_at_once_with_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"threshold": "1.5", "mode": "newest", "flag": "yes", "headers": "novalue"})
    fields = {e.field for e in err.value.errors}
    assert fields == {"threshold", "mode", "flag", "headers", "host"}
    assert "expected one of ['latest', 'earliest']" in str(err.value)
    assert "is required" in str(err.value)


def test_trigger_label_names_the_trigger() -> None:
    trig = Trigger(type="sample", name="orders", metadata={"threshold": "x", "host": "h"})
    with pytest.raises(ConfigError, match='trigger sample "orders": threshold: got \'x\', expected an integer'):
        parse_trigger_config(Sample, trig)


def test_validate_hook_runs_after_fields() -> None:
    from scalers.errors import FieldError

    @dataclass(frozen=True, kw_only=True)
    class Checked:
        low: int = param("low", default=0)
        high: int = param("high", default=1)

        def validate(self) -> list[FieldError]:
            return [FieldError("low", "must be <= high")] if self.low > self.high else []

    assert parse_config(Checked, TriggerInput({"low": "1", "high": "2"})).low == 1
    with pytest.raises(ConfigError, match="low: must be <= high"):
        parse_config(Checked, TriggerInput({"low": "3", "high": "2"}))


@pytest.mark.parametrize("raw", ["true", "false"])
def test_bool_is_json(raw: str) -> None:
    assert convert(raw, bool) is (raw == "true")
    with pytest.raises(ValueError):
        convert(raw.upper(), bool)
    assert parse_bool_like_go(raw.upper()) is (raw == "true")


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_int_roundtrip(n: int) -> None:
    assert convert(str(n), int) == n
    assert convert(str(n), float) == float(n)
