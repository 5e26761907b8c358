"""A fault-injecting TCP proxy: put it between a client and a real server, then break the link.

Modes (`proxy.set(mode, ...)`), applied to every connection, old and new, from the next byte on:

- `pass`     forward both ways untouched;
- `delay`    hold each chunk `seconds` before forwarding it (both directions);
- `hang`     accept and read, never answer (and forward nothing): a server that froze;
- `reset`    close every connection with a TCP RST, and each new one as it arrives;
- `http500`  answer each request with `500 Internal Server Error` without reaching the server;
- `garbage`  answer each request with random bytes (any protocol);
- `badstatus` answer with an HTTP status line that is not one;
- `notutf8`  answer `200 OK` with a body that is not UTF-8;
- `deepjson` answer `200 OK` with JSON nested `depth` levels deep;
- `huge`     answer `200 OK` with a body of `size` bytes, streamed (never built in memory);
- `lostreply` forward everything, but on a connection whose request contained `match` (bytes)
  drop the server's answer: the call took effect, the caller never learns it (e.g. a CreateFleet).

The proxy counts connections and faults (`stats`). A client that gives up takes its pending
bytes with it: nothing it sent is forwarded after it closed (as with a real dropped connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

CANNED = {"http500", "garbage", "badstatus", "notutf8", "deepjson", "huge"}
MODES = {"pass", "delay", "hang", "reset", "lostreply", *CANNED}


@dataclass
class Stats:
    connections: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def fault(self, mode: str) -> None:
        self.faults[mode] = self.faults.get(mode, 0) + 1


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", seed: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.params: dict[str, Any] = {}
        self.stats = Stats()
        self.rng = random.Random(seed)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._changed = asyncio.Event()
        self._lost: set[int] = set()  # connections whose answers are dropped (lostreply)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for client, upstream in list(self._conns):
                client.transport.abort()
                if upstream is not None:
                    upstream.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def set(self, mode: str, **params: Any) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}, expected one of {sorted(MODES)}")
        self.mode, self.params = mode, params
        if mode == "reset":
            for client, upstream in list(self._conns):
                self.stats.fault("reset")
                _rst(client)
                if upstream is not None:
                    upstream.transport.abort()
        self._changed.set()
        self._changed = asyncio.Event()

    # --- one connection ---------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        if self.mode == "reset":
            self.stats.fault("reset")
            _rst(writer)
            return
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        if self.mode not in CANNED and self.mode != "hang":
            try:
                upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                _rst(writer)
                return
        entry = (writer, upstream[1] if upstream else None)
        self._conns.add(entry)
        try:
            if upstream is None:
                await self._answer_alone(reader, writer)
            else:
                await asyncio.gather(self._pump(reader, upstream[1], writer, True),
                                     self._pump(upstream[0], writer, upstream[1], False))
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the proxy (or its loop) is shutting down: this connection ends
            pass
        finally:
            self._conns.discard(entry)
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.transport.abort()

    async def _answer_alone(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A connection opened while faulty: never reaches the server."""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if self.mode == "hang":
                self.stats.fault("hang")
                continue
            if self.mode in CANNED:
                await self._canned(writer)
                continue
            writer.transport.abort()  # the fault ended: let the client reconnect to the server
            return

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, src_writer: asyncio.StreamWriter,
                    to_server: bool) -> None:
        while True:
            data = await src.read(65536)
            if not data:
                if not to_server and id(dst) in self._lost and self.mode == "lostreply":
                    await self._wait_change()  # the answer is lost, not refused: the caller waits
                with contextlib.suppress(OSError):
                    dst.write_eof()
                return
            mode = self.mode
            if mode == "lostreply":
                if to_server and bytes(self.params["match"]) in data:
                    self._lost.add(id(src_writer))
                elif not to_server and id(dst) in self._lost:
                    self.stats.fault("lostreply")
                    continue
            if mode == "delay":
                self.stats.fault("delay")
                await asyncio.sleep(float(self.params.get("seconds", 1.0)))
                if src.at_eof() or src_writer.transport.is_closing() or dst.transport.is_closing():
                    return  # the sender gave up meanwhile: what it sent dies with its connection
            elif mode == "hang":
                self.stats.fault("hang")
                await self._wait_change()
                continue  # the chunk is lost, as with a link that died
            elif mode in CANNED:
                if to_server:
                    await self._canned(src_writer)
                continue
            elif mode == "reset":
                self.stats.fault("reset")
                _rst(src_writer)
                dst.transport.abort()
                return
            dst.write(data)
            await dst.drain()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def _canned(self, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self.stats.fault(mode)
        if mode == "garbage":
            writer.write(self.rng.randbytes(int(self.params.get("size", 512))))
        elif mode == "http500":
            body = b'{"kind":"Status","status":"Failure","message":"injected","code":500}'
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        elif mode == "badstatus":
            writer.write(b"HTTP/1.1 OKAY maybe\r\nContent-Length: 2\r\n\r\n{}")
        elif mode == "notutf8":
            body = b'{"status":"success","data":{"resultType":"vector","result":[]}}\xff\xfe\xfa'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
        elif mode == "deepjson":
            depth = int(self.params.get("depth", 100_000))
            body = b"[" * depth + b"]" * depth
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
        elif mode == "huge":
            size = int(self.params.get("size", 300 * 1024 * 1024))
            chunked = bool(self.params.get("chunked", False))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            writer.write(head + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else
                                 b"Content-Length: %d\r\n\r\n" % size))
            block = b" " * 65536
            sent = 0
            while sent < size and not writer.transport.is_closing():
                n = min(len(block), size - sent)
                writer.write(b"%x\r\n%s\r\n" % (n, block[:n]) if chunked else block[:n])
                sent += n
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
        await writer.drain()
