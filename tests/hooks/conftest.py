"""Fixtures for REST hook tests: the fake, a client, a secret and a receiver on its own port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web

from actionstep_async import AsyncResourceClient, HookSecret
from actionstep_async.testing import FakeActionstep
from actionstep_async.testing._data import SEEDED_RESOURCES
from actionstep_async.webhooks import WebhookEvent, WebhookReceiver

from .._secrets import SENTINELS

SECRET = HookSecret(SENTINELS[-1])


@attrs.define
class Recorder:
    """A handler that records events; ``fail`` events raise first (how many times each)."""

    events: list[WebhookEvent] = attrs.field(factory=list)
    fail: dict[tuple[str, str], int] = attrs.field(factory=dict)
    calls: int = 0
    arrived: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def __call__(self, event: WebhookEvent) -> None:
        self.calls += 1
        key = (event.event_name, event.id)
        if self.fail.get(key, 0) > 0:
            self.fail[key] -= 1
            raise RuntimeError(f"handler failed on {key}")
        self.events.append(event)
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()


class Served:
    """A receiver's app running on a loopback port, restartable on the same port."""

    def __init__(self, receiver: WebhookReceiver, port: int = 0) -> None:
        self.receiver = receiver
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.receiver.app("/hooks"), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"


def fake_records() -> dict[str, int]:
    """Small tables, and no pre-existing hooks where the fake would seed some."""
    counts = {"actions": 20, "participants": 20}
    if "resthooks" in SEEDED_RESOURCES:
        counts["resthooks"] = 0
    return counts


@pytest.fixture
async def fake() -> AsyncIterator[FakeActionstep]:
    async with FakeActionstep(fake_records()) as server:
        yield server


@pytest.fixture
async def client(fake: FakeActionstep) -> AsyncIterator[AsyncResourceClient]:
    async with await fake.connect(scopes=("all",)) as connected:
        yield connected


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def served(recorder: Recorder) -> AsyncIterator[Served]:
    receiver = WebhookReceiver(recorder, secret=SECRET, retry_base=0.05, retry_cap=0.2)
    server = Served(receiver)
    await server.start()
    yield server
    await server.stop()


def attributes(event: WebhookEvent) -> dict[str, Any]:
    return dict(getattr(event.record, "extra", {}))
