"""The `k8s_api` fixture: the emulator on a free port and a kubernetes-asyncio configuration for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from kubernetes_asyncio.client import Configuration

from tests.k8s.emulator import Emulator
from tests.servers import free_port


@dataclass
class K8s:
    emulator: Emulator
    configuration: Configuration
    url: str


@pytest.fixture
async def k8s_api() -> AsyncIterator[K8s]:
    emulator = Emulator()
    runner = web.AppRunner(emulator.app, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = Configuration(host=f"http://127.0.0.1:{port}")
    yield K8s(emulator, config, f"http://127.0.0.1:{port}")
    await runner.cleanup()
