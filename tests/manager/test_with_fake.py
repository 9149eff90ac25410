"""TokenManager against FakeActionstep's real token endpoint over loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from actionstep_async import OAuthClient, ReauthorizationRequired, RefreshPolicy, TokenManager
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FakeActionstep, FaultRule


def oauth_for(fake: FakeActionstep) -> OAuthClient:
    return OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=fake.environment,
    )


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    yield client
    await client.aclose()


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_ten_thousand_coroutines_one_token_call() -> None:
    """10,000 coroutines on an expired token: one token-endpoint call, one new access token."""
    async with FakeActionstep(reuse_detection=True) as fake:
        manager = TokenManager(oauth_for(fake))
        first = await manager.save("org", fake.issue_token(expires_in=1))
        await asyncio.sleep(1.1)
        tokens = await asyncio.gather(*(manager.token("org") for _ in range(10_000)))
        assert fake.counters.token_calls == 1
        assert fake.counters.spent_token_reuses == 0
        assert len({t.access_token for t in tokens}) == 1
        assert tokens[0].access_token != first.access_token


async def test_revoked_token_rejections_refresh_once() -> None:
    """100 concurrent 401 reports for a server-revoked token cause exactly one refresh."""
    async with FakeActionstep() as fake:
        manager = TokenManager(oauth_for(fake))
        first = await manager.save("org", fake.issue_token())
        fake.revoke_access_token(first.access_token)
        tokens = await asyncio.gather(*(manager.token_rejected("org", first) for _ in range(100)))
        assert fake.counters.token_calls == 1
        assert len({t.access_token for t in tokens}) == 1


async def test_spent_refresh_token_leads_to_reauthorization_and_silence() -> None:
    """invalid_grant with nothing newer stored raises once and makes no further token calls."""
    async with FakeActionstep() as fake:
        oauth = oauth_for(fake)
        manager = TokenManager(oauth)
        first = await manager.save("org", fake.issue_token(expires_in=1))
        await oauth.refresh(first)  # someone else spends it and loses the result
        calls_before = fake.counters.token_calls
        await asyncio.sleep(1.1)
        for _ in range(3):
            with pytest.raises(ReauthorizationRequired):
                await manager.token("org")
        assert fake.counters.token_calls == calls_before + 1


async def test_token_endpoint_503_in_advisory_window_keeps_requests_working() -> None:
    """A 503 from the token endpoint during an advisory refresh leaves the current token usable."""
    async with FakeActionstep() as fake:
        fake.add_fault(FaultRule(kind="status", status=503, resource="oauth/token", count=1))
        clock_offset = [0.0]
        manager = TokenManager(
            oauth_for(fake),
            clock=lambda: time.time() + clock_offset[0],
            policy=RefreshPolicy(jitter=0.0),
        )
        first = await manager.save("org", fake.issue_token(expires_in=3600))
        clock_offset[0] = 3600 - 300
        assert (await manager.token("org")).access_token == first.access_token
        await manager.aclose()
        assert fake.counters.token_calls == 1
        assert (await manager.token("org")).access_token == first.access_token
        await asyncio.sleep(0.05)
        assert fake.counters.token_calls == 1  # backing off: no second attempt yet


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_redis_lock_expiring_mid_refresh_never_spends_twice(
    redis_client: aioredis.Redis,
) -> None:
    """With a Redis lock TTL shorter than a slow refresh, the second host waits and adopts."""
    prefix = f"test-{uuid.uuid4().hex}:"
    second_client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        async with FakeActionstep(reuse_detection=True, token_latency=1.0) as fake:
            policy = RefreshPolicy(jitter=0.0, claim_poll=0.05)
            host_a = TokenManager(
                oauth_for(fake),
                RedisTokenStore(redis_client, prefix=prefix, lock_ttl=0.2, extend=False),
                policy=policy,
            )
            host_b = TokenManager(
                oauth_for(fake),
                RedisTokenStore(second_client, prefix=prefix, lock_ttl=0.2, extend=False),
                policy=policy,
            )
            first = await host_a.save("org", fake.issue_token(expires_in=1))
            await asyncio.sleep(1.1)
            a = asyncio.create_task(host_a.token("org"))
            await asyncio.sleep(0.4)  # A holds the claim; its lock has already expired
            b = await host_b.token("org")
            assert (await a).access_token == b.access_token
            assert b.access_token != first.access_token
            assert fake.counters.token_calls == 1
            assert fake.counters.spent_token_reuses == 0
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis_client.delete(*keys)
        await second_client.aclose()
