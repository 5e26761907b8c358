"""A lean HTTP/1.1 client for the interceptor's one job: send a request to a pod it has already
chosen and stream the answer back, over pooled keep-alive connections.

A general client (aiohttp's) spends most of a proxied request's CPU on features a proxy does not
use — URL building, cookies, redirects, auto headers, tracing. Here a request is one write of the
head (plus the body, passed through as it arrives: raw under Content-Length, re-chunked
otherwise), and the response is parsed from the connection's buffer: status line and headers, then
the body framed by Content-Length, chunked encoding, or the connection's end. Reading pauses the
socket when a slow client leaves more than `HIGH_WATER` unread, so a large answer is never held
whole. A pooled connection the pod closed while idle is detected on reuse (nothing at all came
back) and the request — if it had no body — is sent once more on a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

HIGH_WATER = 256 * 1024
MAX_HEAD = 64 * 1024
Address = tuple[str, int]


class UpstreamError(Exception):
    """The pod could not be reached or broke the protocol; nothing usable came back."""


class ConnectError(UpstreamError):
    """No connection: refused, unreachable or not accepted within the connect timeout."""


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.paused = False
        self.on_lost: Callable[[_Conn], None] | None = None  # set while the connection idles in the pool

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost(self)
        self.eof = True
        self.error = exc
        self._wake()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # --- reading ---------------------------------------------------------------------------------
    async def _more(self) -> None:
        if self.eof:
            raise UpstreamError("the pod closed the connection mid-response")
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def read_until(self, marker: bytes, limit: int) -> bytes:
        while True:
            at = self.buffer.find(marker)
            if at >= 0:
                end = at + len(marker)
                out = bytes(self.buffer[:end])
                del self.buffer[:end]
                return out
            if len(self.buffer) > limit:
                raise UpstreamError("response head too large")
            await self._more()

    async def read_some(self, at_most: int) -> bytes:
        while not self.buffer:
            if self.eof:
                return b""
            await self._more()
        out = bytes(self.buffer[:at_most])
        del self.buffer[:at_most]
        if self.paused and len(self.buffer) < HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return out

    async def write(self, data: bytes) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            raise UpstreamError("the pod closed the connection")
        self.transport.write(data)
        if self.writable is not None:
            await self.writable

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    conn: _Conn
    pool: Pool
    address: Address
    body_framing: str  # "none", "length", "chunked" or "close"
    length: int = 0
    reusable: bool = True
    done: bool = False
    _released: bool = field(default=False, repr=False)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    async def chunks(self, size: int = 65536) -> AsyncIterator[bytes]:
        conn = self.conn
        if self.body_framing == "length":
            left = self.length
            while left > 0:
                data = await conn.read_some(min(size, left))
                if not data:
                    raise UpstreamError("the pod closed the connection mid-body")
                left -= len(data)
                yield data
        elif self.body_framing == "chunked":
            while True:
                line = await conn.read_until(b"\r\n", 4096)
                try:
                    n = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise UpstreamError("bad chunk size from the pod") from None
                if n == 0:
                    while await conn.read_until(b"\r\n", MAX_HEAD) != b"\r\n":  # trailers: dropped
                        pass
                    break
                while n > 0:
                    data = await conn.read_some(min(size, n))
                    if not data:
                        raise UpstreamError("the pod closed the connection mid-body")
                    n -= len(data)
                    yield data
                if await conn.read_until(b"\r\n", 2) != b"\r\n":
                    raise UpstreamError("bad chunk framing from the pod")
        elif self.body_framing == "close":
            while data := await conn.read_some(size):
                yield data
        self.done = True

    def release(self) -> None:
        """Back to the pool when the body was read to its end and the pod keeps the connection."""
        if self._released:
            return
        self._released = True
        self.pool.free(self.address)
        if self.done and self.reusable and not self.conn.eof and not self.conn.buffer:
            self.pool.give_back(self.address, self.conn)
        else:
            self.conn.close()


class Pool:
    def __init__(self, connect_s: float = 0.5, max_idle_per_host: int = 200, max_per_host: int = 0) -> None:
        self.connect_s = connect_s
        self.max_idle = max_idle_per_host
        self.max_per_host = max_per_host  # connections in use per pod; 0: no limit
        self.idle: dict[Address, list[_Conn]] = {}
        self.slots: dict[Address, asyncio.Semaphore] = {}

    async def _acquire(self, address: Address) -> None:
        if self.max_per_host > 0:
            slot = self.slots.get(address)
            if slot is None:
                slot = self.slots[address] = asyncio.Semaphore(self.max_per_host)
            await slot.acquire()

    def free(self, address: Address) -> None:
        if self.max_per_host > 0:
            self.slots[address].release()

    async def _connect(self, address: Address) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_s):
                _, conn = await loop.create_connection(_Conn, *address)
        except (OSError, TimeoutError) as exc:
            raise ConnectError(f"cannot connect to {address[0]}:{address[1]}: {exc or 'timeout'}") from None
        return conn

    def give_back(self, address: Address, conn: _Conn) -> None:
        idle = self.idle.setdefault(address, [])
        if len(idle) < self.max_idle:
            idle.append(conn)
            conn.on_lost = lambda c: self._forget(address, c)  # a pod gone or closing idle ones
        else:
            conn.close()

    def _forget(self, address: Address, conn: _Conn) -> None:
        idle = self.idle.get(address)
        if idle is not None and conn in idle:
            idle.remove(conn)
            if not idle:
                del self.idle[address]

    def _take(self, address: Address) -> _Conn | None:
        idle = self.idle.get(address)
        while idle:
            conn = idle.pop()
            conn.on_lost = None
            if not conn.eof and conn.transport is not None and not conn.transport.is_closing():
                return conn
            conn.close()
        return None

    async def request(self, address: Address, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool,
                      method: str) -> Response:
        """Send `head` (request line and headers, ending in a blank line) and the body; return once
        the response head has arrived."""
        await self._acquire(address)
        try:
            return await self._request(address, head, body, chunked, method)
        except BaseException:
            self.free(address)
            raise

    async def _request(self, address: Address, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool,
                       method: str) -> Response:
        for attempt in range(2):
            conn = self._take(address)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(address)
            try:
                await conn.write(head)
                if body is not None:
                    async for chunk in body:
                        if chunk:
                            await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    if chunked:
                        await conn.write(b"0\r\n\r\n")
                return await self._response(conn, address, method)
            except UpstreamError:
                conn.close()
                # an idle connection the pod had closed: nothing came back, so nothing was processed
                if reused and attempt == 0 and body is None and not conn.buffer:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
        raise UpstreamError("unreachable")  # pragma: no cover

    async def _response(self, conn: _Conn, address: Address, method: str) -> Response:
        while True:
            head = await conn.read_until(b"\r\n\r\n", MAX_HEAD)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise UpstreamError("the pod did not answer HTTP/1.x")
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and friends: the final answer follows
            headers = []
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers.append((k.strip(), v.strip()))
            break
        r = Response(status, parts[2] if len(parts) > 2 else "", headers, conn, self, address, "none")
        connection = (r.header("Connection") or "").lower()
        r.reusable = "close" not in connection and parts[0] == "HTTP/1.1"
        te = (r.header("Transfer-Encoding") or "").lower()
        if method == "HEAD" or status in (204, 304):
            r.body_framing = "none"
        elif "chunked" in te:
            r.body_framing = "chunked"
        elif r.header("Content-Length") is not None:
            try:
                r.length = int(r.header("Content-Length") or "")
            except ValueError:
                raise UpstreamError("bad Content-Length from the pod") from None
            r.body_framing = "length"
        else:
            r.body_framing, r.reusable = "close", False
        if r.body_framing == "none":
            r.done = True
        return r

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()
        self.idle.clear()
