"""Typed trigger configuration with declared defaults, in the manner of KEDA's typed config.

A scaler declares its settings once, as a frozen dataclass whose fields carry a `param(...)`
(key name, where to look, default, allowed values). `parse_config` fills it from the three
sources KEDA knows — trigger metadata, the resolved environment of the scale target (through
`<key>FromEnv`) and the authentication parameters — and collects every problem at once, so a
user fixes a manifest in one round instead of one error at a time.

Parsing rules follow KEDA 2.20: values are trimmed, an empty value counts as absent, sources are
tried in the declared order, defaults apply only when no source has the key, booleans and
numbers parse as JSON scalars, lists split on commas (optionally with `a-b` ranges), maps are
`k=v` pairs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from scalers.errors import ConfigError, FieldError

Source = Literal["triggerMetadata", "resolvedEnv", "authParams"]
METADATA: tuple[Source, ...] = ("triggerMetadata",)
METADATA_OR_ENV: tuple[Source, ...] = ("triggerMetadata", "resolvedEnv")
AUTH_OR_ENV: tuple[Source, ...] = ("authParams", "resolvedEnv")
ANY_SOURCE: tuple[Source, ...] = ("triggerMetadata", "authParams", "resolvedEnv")

_PARAM_KEY = "surge.param"


@dataclass(frozen=True)
class Param:
    """Where a setting comes from and what it may be."""

    name: str
    order: tuple[Source, ...] = METADATA
    optional: bool = False
    default: str | None = None
    enum: tuple[str, ...] | None = None
    exclusive_set: tuple[str, ...] | None = None
    range_separator: str | None = None
    deprecated: str | None = None


def param(
    name: str,
    order: tuple[Source, ...] = METADATA,
    *,
    optional: bool = False,
    default: str | float | bool | None = None,
    enum: tuple[str, ...] | None = None,
    exclusive_set: tuple[str, ...] | None = None,
    range_separator: str | None = None,
    deprecated: str | None = None,
) -> Any:
    """Declare a config field. Defaults are written as KEDA writes them (strings), then parsed."""
    if isinstance(default, bool):
        default = "true" if default else "false"
    spec = Param(
        name=name,
        order=order,
        optional=optional,
        default=None if default is None else str(default),
        enum=enum,
        exclusive_set=exclusive_set,
        range_separator=range_separator,
        deprecated=deprecated,
    )
    return dataclasses.field(metadata={_PARAM_KEY: spec})


@dataclass(frozen=True)
class TriggerInput:
    """The raw material of one trigger: the three string maps KEDA hands a scaler."""

    metadata: Mapping[str, str]
    auth_params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    resolved_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # KEDA's AsMetricSource: the ScaledObject has a scalingModifiers formula, so a trigger's own
    # target (targetValue, value, targetQueryValue) may be left out; a config class that declares an
    # `as_metric_source` field gets this value
    as_metric_source: bool = False

    def lookup(self, spec: Param) -> str | None:
        """First non-empty value for `spec` along its order, trimmed; None when absent."""
        return self.lookup_with_source(spec)[0]

    def lookup_with_source(self, spec: Param) -> tuple[str | None, Source | None]:
        """The value and where it came from (authParams and resolvedEnv may hold secrets)."""
        for source in spec.order:
            if source == "triggerMetadata":
                raw = self.metadata.get(spec.name)
            elif source == "authParams":
                raw = self.auth_params.get(spec.name)
            else:
                env_key = self.metadata.get(f"{spec.name}FromEnv")
                raw = None if env_key is None else self.resolved_env.get(env_key)
            if raw is not None and raw.strip() != "":
                return raw.strip(), source
        return None, None


T = TypeVar("T")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of a config class, once: resolving them costs more than parsing."""
    return typing.get_type_hints(cls)


def parse_config(cls: type[T], source: TriggerInput) -> T:
    """Build `cls` from `source`; raise ConfigError listing every bad field.

    After the fields are filled, `cls.validate(self) -> list[FieldError]` (if defined) checks the
    rules that span fields (mutual exclusions, ranges), as KEDA's Validate() does.
    """
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    hints = _type_hints(cls)  # type: ignore[arg-type]  # classes are hashable
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        spec: Param | None = f.metadata.get(_PARAM_KEY)
        if spec is None:
            continue
        raw, origin = source.lookup_with_source(spec)
        # a value from a Secret or the environment is never repeated in an error: name it, not show it
        shown = f"the value from {origin} (not shown)" if origin in ("authParams", "resolvedEnv") else None
        if raw is not None and spec.deprecated is not None:
            errors.append(FieldError(spec.name, f"is deprecated: {spec.deprecated}"))
            values[f.name] = None
            continue
        if raw is None:
            raw = spec.default
        if raw is None:
            if not (spec.optional or spec.deprecated is not None):
                errors.append(FieldError(spec.name, f"is required (looked in {', '.join(spec.order)})"))
            values[f.name] = _empty_value(hints[f.name])
            continue
        if spec.enum is not None:
            bad = [p.strip() for p in raw.split(",") if p.strip() not in spec.enum]
            if bad:
                errors.append(FieldError(spec.name, f"got {shown or repr(raw)}, expected one of {list(spec.enum)}"))
                values[f.name] = _empty_value(hints[f.name])
                continue
        if spec.exclusive_set is not None:
            chosen = [p.strip() for p in raw.split(",") if p.strip() in spec.exclusive_set]
            if len(chosen) > 1:
                errors.append(
                    FieldError(spec.name, f"got {shown or repr(raw)}, may contain only one of "
                                          f"{list(spec.exclusive_set)}")
                )
                values[f.name] = _empty_value(hints[f.name])
                continue
        try:
            values[f.name] = convert(raw, hints[f.name], spec.range_separator)
        except ValueError as exc:
            errors.append(FieldError(spec.name, f"got {shown or repr(raw)}, expected {exc}"))
            values[f.name] = _empty_value(hints[f.name])
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "as_metric_source":
            values[f.name] = source.as_metric_source
        elif f.name not in values:
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
            else:
                values[f.name] = _empty_value(hints[f.name])
    instance = cls(**values)
    if not errors:
        validate: Callable[[], list[FieldError]] | None = getattr(instance, "validate", None)
        if validate is not None:
            errors.extend(validate())
    if errors:
        raise ConfigError("", errors)
    return instance


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _empty_value(tp: Any) -> Any:
    """The value a field holds when nothing set it: None if Optional, else the type's zero."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp):
        return None
    base = typing.get_origin(tp) or tp
    zeros: dict[Any, Any] = {str: "", int: 0, float: 0.0, bool: False, list: [], dict: {}, tuple: ()}
    return zeros.get(base)


# A list a trigger's metadata expands to (ranges included) holds at most this many items: one
# object's `0-2000000000` must be an error naming the field, not gigabytes in the operator.
MAX_LIST_ITEMS = 100_000


def check_list_size(count: int) -> None:
    if count > MAX_LIST_ITEMS:
        raise ValueError(f"at most {MAX_LIST_ITEMS} items in all (ranges expanded), got {count}")


def convert(raw: str, tp: Any, range_separator: str | None = None) -> Any:
    """Parse one trimmed string into `tp`; ValueError says what was expected."""
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (elem_tp, *_) = typing.get_args(tp) or (str,)
        items: list[Any] = []
        for part in (p.strip() for p in raw.split(",")):
            if range_separator and elem_tp is int and range_separator in part:
                lo, _, hi = part.partition(range_separator)
                first, last = _json_int(lo), _json_int(hi)
                check_list_size(len(items) + max(0, last - first + 1))
                items.extend(range(first, last + 1))
            else:
                items.append(convert(part, elem_tp))
        return tuple(items) if origin is tuple else items
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        out: dict[Any, Any] = {}
        for pair in (p.strip() for p in raw.split(",")):
            kv = pair.split("=")
            if len(kv) != 2:
                raise ValueError(f"key=value pairs separated by commas (bad pair {pair!r})")
            out[convert(kv[0].strip(), key_tp)] = convert(kv[1].strip(), val_tp)
        return out
    if origin is Literal:
        if raw not in typing.get_args(tp):
            raise ValueError(f"one of {list(typing.get_args(tp))}")
        return raw
    if tp is str or tp is Any:
        return raw
    if tp is bool:
        if raw not in ("true", "false"):
            raise ValueError("a boolean (true or false)")
        return raw == "true"
    if tp is int:
        return _json_int(raw)
    if tp is float:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("a number")
        return float(value)
    raise TypeError(f"no parser for config field type {tp!r}")


def _json_int(raw: str) -> int:
    try:
        value = json.loads(raw.strip())
    except json.JSONDecodeError:
        raise ValueError("an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an integer")
    return value


def parse_bool_like_go(raw: str) -> bool:
    """Go's strconv.ParseBool, which some KEDA scalers use instead of the typed config."""
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("a boolean (true/false, 1/0, t/f)")


def address_port_error(address: str) -> str | None:
    """Why `host:port` has a port number outside 1–65535, or None. A missing port is fine (defaults)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or host.endswith(":") or "]" in port:  # no port, or a bare IPv6 address
        return None
    # KEDA leaves non-numeric ports to fail at connect time (its vectors rely on it); numbers are checked
    if port.isdigit() and not 1 <= int(port) <= 65535:
        return f"port {port[:20]!r} in {host[:60]!r} is not a port number (1-65535)"
    return None


def url_port_error(url: str) -> str | None:
    """Why the URL's port is not usable (1–65535), or None."""
    from urllib.parse import urlsplit

    try:
        _ = urlsplit(url.strip()).port  # raises for a port outside 0-65535 or not a number
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    return None
