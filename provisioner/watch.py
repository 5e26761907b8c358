"""One list-then-watch helper (an informer without the cache) for every controller in surge.

Both controllers follow collections the same way: list them (one `ADDED` per object, then a
`SYNCED` marker saying the picture is complete, even when empty), then watch from the list's
resourceVersion, resuming from the last event's resourceVersion whenever the server ends a watch.
A `410 Gone` (the version is too old) or any failure makes the next `events()` list again, and
objects that vanished meanwhile come out as `DELETED` — a controller never keeps acting on an
object deleted while its watch was down.

Every call has a deadline: the list the request timeout, a watch its server-side
`timeoutSeconds` plus a grace period, so a hung API server (or a proxy in front of it) ends the
stream instead of silencing it. Objects stay plain dicts: no model objects for thousands of pods.

It lives under `provisioner/` only because of the dependency direction (the autoscaler may
import the provisioner, never the reverse); nothing in it is about nodes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

DEFAULT_REQUEST_TIMEOUT_S = 5.0
WATCH_GRACE_S = 15.0  # beyond the server-side timeoutSeconds before the client gives up

ObjKey = tuple[str, str]


def object_key(obj: dict[str, Any]) -> ObjKey:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class Watcher:
    """Follows one collection; keep the instance: it remembers what exists between reconnects."""

    def __init__(self, lister: Callable[..., Any], *args: Any, timeout_s: int = 300,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        self.lister, self.args = lister, args
        self.timeout_s, self.request_timeout_s = timeout_s, request_timeout_s
        self.known: set[ObjKey] = set()

    async def _list(self) -> dict[str, Any]:
        resp = await self.lister(*self.args, _preload_content=False, _request_timeout=self.request_timeout_s)
        try:
            listed: dict[str, Any] = json.loads(await resp.read())
        finally:
            resp.release()
        return listed

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """`{"type": ADDED|MODIFIED|DELETED|SYNCED, "object": dict}` until the watch breaks."""
        listed = await self._list()
        items = listed.get("items") or []
        now = {object_key(item) for item in items}
        for item in items:
            yield {"type": "ADDED", "object": item}
        for ns, name in sorted(self.known - now):  # deleted while we were not watching
            yield {"type": "DELETED", "object": {"metadata": {"namespace": ns, "name": name}}}
        self.known = now
        yield {"type": "SYNCED", "object": {}}
        version = (listed.get("metadata") or {}).get("resourceVersion") or ""
        while version:  # a watch the server ended resumes where it stopped; without a version, list again
            async for event in self._watch(version):
                obj = event["object"]
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if event["type"] == "BOOKMARK":
                    continue
                if event["type"] == "DELETED":
                    self.known.discard(object_key(obj))
                else:
                    self.known.add(object_key(obj))
                yield event

    async def _watch(self, version: str) -> AsyncIterator[dict[str, Any]]:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s + WATCH_GRACE_S, sock_connect=self.request_timeout_s)
        kwargs: dict[str, Any] = {"watch": True, "timeout_seconds": self.timeout_s, "allow_watch_bookmarks": True,
                                  "_preload_content": False, "_request_timeout": timeout}
        if version:
            kwargs["resource_version"] = version
        resp = await self.lister(*self.args, **kwargs)
        try:
            if not 200 <= resp.status < 300:
                raise ApiException(status=resp.status, reason=(await resp.content.read(500)).decode(errors="replace"))
            while True:
                line = await resp.content.readline()  # bounded by the client's read buffer (2 MiB)
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiException(status=status.get("code", 0), reason=status.get("message", "watch error"))
                yield {"type": event["type"], "object": event.get("object") or {}}
        finally:
            resp.release()
