"""A worker process for the cross-process tests: many concurrent token() calls, one report line.

Usage: python -m tests.manager._worker STORE TARGET KEY BASE_URL CALLS START_AT [LOCK_TTL]
STORE is "file" (TARGET a directory) or "redis" (TARGET a key prefix).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from actionstep_async import Environment, FileTokenStore, OAuthClient, TokenManager, TokenStore


async def main(
    store_kind: str, target: str, key: str, base_url: str, calls: int, start: float, ttl: float
) -> None:
    redis_client = None
    store: TokenStore
    if store_kind == "file":
        store = FileTokenStore(target)
    else:
        import redis.asyncio as aioredis

        from actionstep_async.stores.redis import RedisTokenStore

        redis_client = aioredis.Redis(host="127.0.0.1", port=6379)
        store = RedisTokenStore(redis_client, prefix=target, lock_ttl=ttl)
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=Environment.local(base_url),
    )
    manager = TokenManager(oauth, store)
    # Line up with the other processes so the herd really arrives at once.
    await asyncio.sleep(max(0.0, start - time.time()))
    tokens = await asyncio.gather(*(manager.token(key) for _ in range(calls)))
    await manager.aclose()
    if redis_client is not None:
        await redis_client.aclose()
    fingerprints = sorted({t.fingerprint for t in tokens})
    print(json.dumps({"fingerprints": fingerprints, "refreshes": manager.refresh_count}))  # noqa: T201 - the report line the parent reads


if __name__ == "__main__":
    kind, target, key, base_url, calls, start = sys.argv[1:7]
    ttl = float(sys.argv[7]) if len(sys.argv) > 7 else 30.0
    asyncio.run(main(kind, target, key, base_url, int(calls), float(start), ttl))
