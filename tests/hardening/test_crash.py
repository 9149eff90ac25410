"""A process killed mid-refresh never causes a deadlock or a second use of its refresh token."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actionstep_async import (
    FileTokenStore,
    OAuthClient,
    ReauthorizationRequired,
    RefreshPolicy,
    TokenManager,
    TokenStore,
)
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FakeActionstep

ROOT = Path(__file__).resolve().parents[2]


async def _wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_sigkill_between_sending_refresh_and_saving(kind: str, tmp_path: Path) -> None:
    """Killing the refreshing process leaves others a clean ReauthorizationRequired, no reuse."""
    prefix = f"test-{uuid.uuid4().hex}:"
    redis_client = aioredis.Redis(host="127.0.0.1", port=6379)
    store: TokenStore
    if kind == "file":
        target = str(tmp_path / "tokens")
        store = FileTokenStore(target)
    else:
        target = prefix
        store = RedisTokenStore(redis_client, prefix=prefix, lock_ttl=1.0)
    try:
        async with FakeActionstep(reuse_detection=True, token_latency=5.0) as fake:
            oauth = OAuthClient(
                client_id=fake.client_id,
                client_secret=fake.client_secret,
                redirect_uri=fake.redirect_uri,
                environment=fake.environment,
            )
            survivor = TokenManager(
                oauth, store, policy=RefreshPolicy(claim_timeout=2.0, claim_poll=0.05)
            )
            first = await survivor.save("org", fake.issue_token(expires_in=1))
            await asyncio.sleep(1.1)
            victim = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.manager._worker",
                kind,
                target,
                "org",
                fake.base_url,
                "50",
                "0",
                "1.0",
                cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            # The victim holds the lock and its refresh request is at the server: kill it now.
            await _wait_for(lambda: fake.counters.token_calls == 1, timeout=30)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()

            started = time.monotonic()
            with pytest.raises(ReauthorizationRequired, match="interrupted"):
                await asyncio.wait_for(survivor.token("org"), timeout=15)
            elapsed = time.monotonic() - started
            assert elapsed < 2.0 + 1.0 + 2.0  # claim timeout + lock TTL + slack: no deadlock
            assert fake.counters.refresh_presented[first.refresh_token] == 1
            assert fake.counters.spent_token_reuses == 0
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis_client.delete(*keys)
        await redis_client.aclose()
