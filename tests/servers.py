"""Start real servers as child processes on free ports, and stop them. Shared by all fixtures."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class Server:
    """A running child process and where it listens."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def require_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        raise RuntimeError(f"{name} is not installed; run `make setup` (the README's test command does)")
    return path


@contextlib.contextmanager
def run_server(
    argv: Sequence[str], port: int, *, timeout_s: float = 20.0, workdir: Path | None = None
) -> Iterator[Server]:
    """Run `argv` until the port accepts connections; kill the process group on exit."""
    own_dir = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="surge-srv-")) if workdir is None else workdir
    log = open(wd / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=wd, start_new_session=True)
    try:
        try:
            wait_for_port(port, timeout_s, proc)
        except Exception as exc:
            log.flush()
            tail = (wd / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{argv[0]} did not start: {exc}\n{tail}") from exc
        yield Server(proc, port, wd)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
        if own_dir:
            shutil.rmtree(wd, ignore_errors=True)
