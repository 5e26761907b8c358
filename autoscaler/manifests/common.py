"""Shared pieces of the manifest models: camelCase aliases, object metadata, unknown-field reports."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

# Kubernetes stores replica counts, periods and thresholds as int32: larger numbers are refused by
# the API server, so they are refused here with the field named.
INT32_MAX = 2**31 - 1
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Model(BaseModel):
    """camelCase on the wire, snake_case in code; unknown keys kept so they can be reported."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class StrictModel(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ObjectMeta(Model):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
            raise ValueError("expected a DNS subdomain name (lowercase letters, digits, '-' and '.')")
        return value


def unknown_fields(model: BaseModel, path: str = "", skip: tuple[str, ...] = ("metadata", "status")) -> list[str]:
    """Dotted paths of keys present in the input that no model field takes."""
    found: list[str] = []
    for key in (model.model_extra or {}):
        found.append(f"{path}{key}")
    for name, field in type(model).model_fields.items():
        if name in skip and not path:
            continue
        value = getattr(model, name, None)
        alias = field.alias or name
        found.extend(_walk(value, f"{path}{alias}"))
    return found


def _walk(value: Any, path: str) -> list[str]:
    if isinstance(value, BaseModel):
        return unknown_fields(value, path + ".", skip=())
    if isinstance(value, list):
        out: list[str] = []
        for i, item in enumerate(value):
            out.extend(_walk(item, f"{path}[{i}]"))
        return out
    return []
