"""One process of the store-loss run: asks for tokens until ``end_at`` while the store loses the
record right after every refresh it makes. Prints a JSON summary on its last line.

argv: fake_base_url redis_port_or_file_dir mode end_at key
``end_at`` is a wall-clock time (``time.time()``) shared by every worker: they stop together.
One that stopped early could take the only copy of the newest token with it, which the README
states as the bound of this promise (a login is then needed), not what this run tests.
mode: ``redis-del`` (the token's Redis key is deleted), ``redis-flushall``, ``file-delete``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from actionstep_async import (
    Environment,
    OAuthClient,
    ReauthorizationRequired,
    RefreshPolicy,
    Token,
    TokenManager,
    TokenStore,
)
from actionstep_async.stores import FileTokenStore
from actionstep_async.stores.redis import RedisTokenStore

POLICY = RefreshPolicy(
    store_check_interval=0.3, restore_quarantine=0.8, backoff_base=0.05, backoff_cap=0.2
)


async def main(base_url: str, where: str, mode: str, end_at: float, key: str) -> None:
    oauth = OAuthClient(
        "test-client-id",
        "test-client-secret",
        "http://127.0.0.1/callback",
        environment=Environment.local(base_url),
    )
    client = None
    store: TokenStore
    if mode.startswith("redis"):
        client = aioredis.Redis(host="127.0.0.1", port=int(where))
        redis_store = RedisTokenStore(client, prefix="loss:", lock_timeout=10)
        store = redis_store

        async def lose(key: str, token: Token) -> None:
            assert client is not None
            if mode == "redis-flushall":
                await client.flushall()
            else:
                await client.delete(redis_store.token_key(key))
    else:
        file_store = FileTokenStore(Path(where))
        store = file_store

        async def lose(key: str, token: Token) -> None:
            await file_store.delete(key)

    manager = TokenManager(oauth, store, policy=POLICY, on_refresh=lose)
    counts = {"tokens": 0, "reauthorization": 0, "other_errors": 0}
    deadline = time.monotonic() + (end_at - time.time())
    while time.monotonic() < deadline:
        try:
            await manager.token(key)
            counts["tokens"] += 1
        except ReauthorizationRequired:
            counts["reauthorization"] += 1
        except Exception:  # counted: the parent asserts on what kind of failure it was
            counts["other_errors"] += 1
        await asyncio.sleep(0.01)
    await manager.aclose()
    counts["refreshes"] = manager.refresh_count
    if client is not None:
        await client.aclose()
    sys.stdout.write(json.dumps(counts) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    base_url, where, mode, end_at, key = sys.argv[1:6]
    asyncio.run(main(base_url, where, mode, float(end_at), key))
