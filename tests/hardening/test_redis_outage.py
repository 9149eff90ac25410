"""A private Redis stopped and restarted mid-run: tokens keep working, errors are typed, no loss."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actionstep_async import OAuthClient, Token, TokenManager, TokenStoreError
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FakeActionstep

# The machine (and CI) has redis-server; a missing binary must fail loudly, not skip.
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class PrivateRedis:
    """A redis-server of the test's own, on a port of its own, with its data kept on disk."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "private redis did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.stop()


@pytest.mark.slow
async def test_redis_restart_mid_run(private_redis: PrivateRedis) -> None:
    """Requests go on during a Redis outage, store errors are typed, and all recovers after."""
    client = aioredis.Redis(host="127.0.0.1", port=private_redis.port, socket_timeout=1)
    try:
        async with FakeActionstep() as fake:
            oauth = OAuthClient(
                fake.client_id, fake.client_secret, fake.redirect_uri, environment=fake.environment
            )
            manager = TokenManager(oauth, RedisTokenStore(client, lock_timeout=2.0))
            first = await manager.save("org", fake.issue_token())

            private_redis.stop()
            # A fresh in-memory token needs no store: requests keep working through the outage.
            for _ in range(100):
                assert (await manager.token("org")).access_token == first.access_token
            with pytest.raises(TokenStoreError):
                await manager.refresh("org")
            with pytest.raises(TokenStoreError):
                await manager.load("org")
            assert fake.counters.token_calls == 0  # never refreshed without the lock

            private_redis.start()
            deadline = time.monotonic() + 10
            stored: Token | None = None
            while True:
                try:
                    stored = await manager.load("org")
                    break
                except TokenStoreError:
                    assert time.monotonic() < deadline, "store did not recover"
                    await asyncio.sleep(0.1)
            assert stored is not None
            assert stored.access_token == first.access_token  # nothing lost
            fresh = await manager.refresh("org")
            assert fresh.access_token != first.access_token
            reloaded = await manager.load("org")
            assert reloaded is not None
            assert reloaded.access_token == fresh.access_token
            assert fake.counters.token_calls == 1
            assert fake.counters.spent_token_reuses == 0
    finally:
        await client.aclose()
