"""Typed scaler errors.

Every error carries the trigger it came from, so the operator can turn it into a status
condition, an Event and a metric without guessing which trigger broke.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One bad metadata key: which key, and what was expected of it."""

    field: str
    message: str
    # KEDA accepts the setting but surge does not implement it: `surge validate` warns instead of
    # rejecting the manifest, and the operator reports it at run time
    unsupported: bool = False

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ScalerError(Exception):
    """Base of every error a scaler raises; `trigger` names the trigger (type/name/index)."""

    def __init__(self, trigger: str, message: str) -> None:
        super().__init__(f"trigger {trigger}: {message}")
        self.trigger = trigger
        self.cause = message


class ConfigError(ScalerError):
    """Trigger metadata, auth params or env did not describe a usable scaler."""

    def __init__(self, trigger: str, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__(trigger, "; ".join(str(e) for e in self.errors))


class UnreachableError(ScalerError):
    """The server could not be reached (refused, DNS, timeout)."""


class AuthError(ScalerError):
    """The server refused our credentials."""


class NotFoundError(ScalerError):
    """The topic, stream, queue, key or series the trigger names does not exist."""


class QueryError(ScalerError):
    """The server answered, but not with one usable number."""


class UnexpectedError(ScalerError):
    """The read failed in a way its scaler did not foresee (a client library's own exception, a
    bug): still a scaler error for that trigger, so the object falls back or holds its replicas
    exactly as KEDA does for any error a scaler returns."""
