"""Issue 12 section 4: a frozen Redis (SIGSTOP) bounds every wait and leaves no orphan lock;
section 1: ``wait_replicas`` makes a token write wait for replicas (Redis ``WAIT``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actionstep_async import TokenManager, TokenStoreError
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FakeActionstep

from ._private_redis import private_redis_server

pytestmark = pytest.mark.slow  # a private redis-server per test


async def test_frozen_redis_bounds_every_wait_and_leaves_no_orphan_lock(tmp_path: Path) -> None:
    """SIGSTOP: lock(), load() and compare_and_set fail in bounded time; after SIGCONT the lock
    is free at once, not after its 30-second TTL."""
    with private_redis_server(tmp_path) as server:
        # No socket_timeout at all: only the store's own asyncio timeouts bound the waits.
        client = aioredis.Redis(host="127.0.0.1", port=server.port)
        store = RedisTokenStore(client, lock_ttl=30, lock_timeout=1.0, command_timeout=0.5)
        rival = RedisTokenStore(client, lock_ttl=30, lock_timeout=12.0, command_timeout=0.5)
        try:
            await client.ping()
            with server.frozen():
                started = time.monotonic()
                with pytest.raises(TokenStoreError, match="timed out"):
                    async with store.lock("k"):
                        pass
                assert time.monotonic() - started < 1.0 + 0.5 + 5.0  # generous: loaded CI
                started = time.monotonic()
                with pytest.raises(TokenStoreError, match="no answer"):
                    await store.load("k")
                assert time.monotonic() - started < 0.5 + 5.0
                await asyncio.sleep(0.3)
            # The SET NX sent into the frozen server runs when it thaws; the release retries
            # remove it, so a rival gets the lock long before the TTL would have freed it.
            started = time.monotonic()
            async with rival.lock("k"):
                held = time.monotonic() - started
            assert held < 10.0  # the TTL alone would keep it 30 s
            assert await client.exists(store.lock_key("k")) == 0
        finally:
            await client.aclose()


async def test_a_retried_lock_attempt_that_finds_its_own_value_is_acquired(tmp_path: Path) -> None:
    """An attempt that timed out but was executed once Redis thawed counts as acquired."""
    with private_redis_server(tmp_path) as server:
        client = aioredis.Redis(host="127.0.0.1", port=server.port)
        store = RedisTokenStore(client, lock_ttl=30, lock_timeout=5.0, command_timeout=0.3)
        try:
            await client.ping()
            held = store.lock("k")
            with server.frozen():
                # The first SET NX lands only when Redis thaws, after its attempt timed out; the
                # retry then finds our own value and must count it as acquired.
                attempt = asyncio.create_task(held.__aenter__())
                await asyncio.sleep(0.8)
            await asyncio.wait_for(attempt, timeout=5)
            assert await client.get(store.lock_key("k")) is not None
            await held.__aexit__(None, None, None)
            assert await client.exists(store.lock_key("k")) == 0  # no orphan left behind
        finally:
            await client.aclose()


async def test_wait_replicas_confirms_each_token_write(tmp_path: Path) -> None:
    """With a replica attached, writes return once it acknowledged; without one they raise
    TokenStoreError and the manager keeps the refreshed token in memory."""
    primary_dir, replica_dir = tmp_path / "primary", tmp_path / "replica"
    primary_dir.mkdir()
    replica_dir.mkdir()
    with private_redis_server(primary_dir) as primary:
        client = aioredis.Redis(host="127.0.0.1", port=primary.port)
        try:
            lonely = RedisTokenStore(client, prefix="w1:", wait_replicas=1, wait_timeout=0.3)
            async with FakeActionstep() as fake:
                manager = TokenManager(fake.oauth_client(), lonely)
                with pytest.raises(TokenStoreError, match="0 of 1 replicas"):
                    await manager.save("org", fake.issue_token())
            with private_redis_server(replica_dir, replica_of=primary.port) as replica:
                replica_client = aioredis.Redis(host="127.0.0.1", port=replica.port)
                try:
                    deadline = time.monotonic() + 20
                    while (await client.info("replication"))["connected_slaves"] < 1:
                        assert time.monotonic() < deadline, "replica did not attach"
                        await asyncio.sleep(0.1)
                    # Attached is not yet in sync: WAIT counts a replica only once its link is up.
                    while (await replica_client.info("replication")).get(
                        "master_link_status"
                    ) != "up":
                        assert time.monotonic() < deadline, "replica did not finish its sync"
                        await asyncio.sleep(0.1)
                    store = RedisTokenStore(client, prefix="w2:", wait_replicas=1, wait_timeout=5)
                    async with FakeActionstep() as fake:
                        manager = TokenManager(fake.oauth_client(), store)
                        saved = await manager.save("org", fake.issue_token())
                        fresh = await manager.refresh("org")
                    # Acknowledged means on the replica: a failover now would keep it.
                    on_replica = await replica_client.hget(store.token_key("org"), "version")
                    assert on_replica is not None
                    # (a claim written before the refresh also bumps the version)
                    assert int(on_replica) == fresh.version > saved.version
                finally:
                    await replica_client.aclose()
        finally:
            await client.aclose()
