"""Bounded HTTP replies for scalers that read metrics over HTTP.

A metrics endpoint is outside our control: a proxy can answer with 300 MB, bytes that are not
UTF-8 or JSON nested 100,000 deep. Each of these must become a `QueryError` naming the trigger,
never an exception the operator does not expect and never a reply held whole in memory.
"""

from __future__ import annotations

import json
from typing import Any

from scalers.errors import QueryError

# Far above any sane metrics answer (a Prometheus instant query of one series is ~100 bytes),
# far below the operator's memory limit (the chart's 512 Mi).
MAX_BODY_BYTES = 8 * 1024 * 1024


async def read_body(resp: Any, label: str, what: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of an aiohttp response, refused as soon as it exceeds `limit` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise QueryError(label, f"{what} answered {declared} bytes, more than the {limit} allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise QueryError(label, f"{what} answered more than the {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes, label: str, what: str) -> Any:
    """Strict UTF-8 JSON; a reply that is not becomes a QueryError saying why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(label, f"{what} answer is not UTF-8 (byte {exc.start}: {body[exc.start:exc.start + 1]!r})"
                         ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise QueryError(label, f"{what} answer is JSON nested too deeply") from None
    except ValueError as exc:
        raise QueryError(label, f"{what} answer is not JSON: {exc}") from None


def snippet(body: bytes, n: int = 200) -> str:
    """The start of a body for an error message, whatever its bytes."""
    return body[:n].decode("utf-8", errors="replace")
