"""Fixtures for the token store tests: tokens, a private directory and a real Redis with a
unique key prefix per test (cleaned up afterwards, never FLUSHALL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from actionstep_async import Token
from actionstep_async.stores import FileTokenStore, MemoryTokenStore, TokenStore
from actionstep_async.stores.redis import RedisTokenStore

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379

TokenFactory = Callable[..., Token]


def token(access: str = "access-1", refresh: str = "refresh-1", **changes: object) -> Token:
    """A plausible token; tests tell tokens apart by their access token."""
    fields: dict[str, object] = {
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": 2_000_003_600.0,
        "issued_at": 2_000_000_000.0,
        "api_endpoint": "https://ap-southeast-2.actionstep.com/api/",
        "orgkey": "demoorg",
        "scopes": ("actions", "participants"),
    }
    fields.update(changes)
    return Token(**fields)  # type: ignore[arg-type]


@pytest.fixture
def make_token() -> TokenFactory:
    return token


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    return tmp_path / "tokens"


@pytest.fixture
def file_store(token_dir: Path) -> FileTokenStore:
    return FileTokenStore(token_dir, lock_timeout=10.0)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis(host=REDIS_HOST, port=REDIS_PORT)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    prefix = f"actionstep-test-{uuid.uuid4().hex}:"
    yield prefix
    keys = [k async for k in redis_client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def redis_store(redis_client: Redis, redis_prefix: str) -> RedisTokenStore:
    return RedisTokenStore(
        redis_client, prefix=redis_prefix, lock_timeout=10.0, poll_interval=0.005
    )


@pytest.fixture(params=["memory", "file", "redis"])
def store(request: pytest.FixtureRequest) -> TokenStore:
    """Each store in turn, for the behaviour every TokenStore shares."""
    if request.param == "memory":
        return MemoryTokenStore()
    fixture = "file_store" if request.param == "file" else "redis_store"
    result: TokenStore = request.getfixturevalue(fixture)
    return result
