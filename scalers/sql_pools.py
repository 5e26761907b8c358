"""One connection pool per database server, shared by every SQL trigger that reads it.

The polling cycle reads all triggers in parallel (scalers/batch.py); triggers naming the same
server and credentials draw connections from the same small pool instead of each holding its
own, so N triggers on one database cost one pool, and their queries still run side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class SharedPools:
    """Refcounted pools by key; `opener(key)` creates one on first use."""

    def __init__(self, opener: Callable[[tuple[Any, ...]], Awaitable[Any]],
                 closer: Callable[[Any], Awaitable[None]]) -> None:
        self._opener, self._closer = opener, closer
        self._pools: dict[tuple[Any, ...], Any] = {}
        self._users: dict[tuple[Any, ...], int] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    async def acquire(self, key: tuple[Any, ...]) -> Any:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._pools:
                self._pools[key] = await self._opener(key)
                self._users[key] = 0
            self._users[key] += 1
            return self._pools[key]

    async def release(self, key: tuple[Any, ...], pool: Any, broken: bool = False) -> None:
        """One user less of `pool`; it closes with its last user, or at once when `broken` (a pool
        already replaced after an earlier break is left alone)."""
        if self._pools.get(key) is not pool:
            return
        self._users[key] -= 1
        if self._users[key] <= 0 or broken:
            pool = self._pools.pop(key)
            self._users.pop(key, None)
            await self._closer(pool)

    def __len__(self) -> int:
        return len(self._pools)


class PooledReader:
    """The pool handling of a SQL trigger: take the shared pool on first read, give it back on
    close, and throw it away (for every user) when the server or the credentials failed."""

    pools: SharedPools
    _key: tuple[Any, ...] | None = None
    _pool: Any = None

    def pool_key(self) -> tuple[Any, ...]:
        raise NotImplementedError

    async def _connect(self, timeout_s: float) -> Any:
        if self._pool is None:
            key = self.pool_key()
            self._pool = await asyncio.wait_for(self.pools.acquire(key), timeout_s * 2)
            self._key = key
        return self._pool

    async def _drop(self, broken: bool = True) -> None:
        if self._key is not None:
            key, pool, self._key, self._pool = self._key, self._pool, None, None
            await self.pools.release(key, pool, broken=broken)

    async def close(self) -> None:
        await self._drop(broken=False)
