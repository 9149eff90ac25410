"""No store ever shows a token's secrets: not in repr, logs at DEBUG, or any error it raises."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actionstep_async import ActionstepError
from actionstep_async.stores import FileTokenStore
from actionstep_async.stores.redis import RedisTokenStore

from .conftest import TokenFactory

SECRET_ACCESS = "sentinel-access-token-1d7e55"
SECRET_REFRESH = "sentinel-refresh-token-93fa0c"
SENTINELS = (SECRET_ACCESS, SECRET_REFRESH)


async def error_text(operation: Callable[[], Awaitable[object]]) -> str:
    """Run an operation that must fail and return its full traceback, causes included."""
    with pytest.raises(ActionstepError) as caught:
        await operation()
    return "".join(traceback.format_exception(caught.value))


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for sentinel in SENTINELS:
            assert sentinel not in text


def leaky_document(**overrides: object) -> str:
    """A token document carrying the sentinels, with some fields broken."""
    document: dict[str, object] = {
        "access_token": SECRET_ACCESS,
        "refresh_token": SECRET_REFRESH,
        "expires_at": 2e9,
        "issued_at": 2e9 - 3600,
        "api_endpoint": "https://ap-southeast-2.actionstep.com/api/",
        "version": 1,
        "key": "k",
    }
    document.update(overrides)
    return json.dumps(document)


async def test_file_store_never_reveals_secrets(
    token_dir: Path,
    tmp_path: Path,
    make_token: TokenFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Saving, loading and every failure of the file store keep the sentinels out of sight."""
    caplog.set_level(logging.DEBUG)
    store = FileTokenStore(token_dir, lock_timeout=0.05)
    secret = make_token(SECRET_ACCESS, SECRET_REFRESH)
    assert await store.compare_and_set("k", secret, expected_version=0)
    loaded = await store.load("k")
    assert loaded is not None
    texts = [repr(store), repr(loaded), str(loaded)]

    path = token_dir / "k.json"
    path.chmod(0o644)  # the loose-permission warning must not quote the file
    await store.load("k")
    for document in (
        leaky_document()[:-20],
        leaky_document(expires_at=SECRET_REFRESH, issued_at=SECRET_ACCESS),
        leaky_document(version=SECRET_REFRESH),
        leaky_document(key=SECRET_REFRESH),
        leaky_document(scopes=[SECRET_ACCESS, 5]),
    ):
        path.write_text(document)
        texts.append(await error_text(lambda: store.load("k")))
        texts.append(
            await error_text(lambda: store.compare_and_set("k", secret, expected_version=1))
        )

    path.unlink()
    target = tmp_path / "target.json"
    target.write_text(leaky_document())
    path.symlink_to(target)
    texts.append(await error_text(lambda: store.load("k")))
    path.unlink()

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", full_disk)
        texts.append(
            await error_text(lambda: store.compare_and_set("k", secret, expected_version=0))
        )

    async def locked_twice() -> None:
        async with store.lock("k"), store.lock("k"):
            pass

    texts.append(await error_text(locked_twice))
    assert_no_secret(*texts, caplog.text)
    assert "tightened it to 0600" in caplog.text


async def test_redis_store_never_reveals_secrets(
    redis_client: Redis,
    redis_prefix: str,
    make_token: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Saving, loading and every failure of the Redis store keep the sentinels out of sight."""
    caplog.set_level(logging.DEBUG)
    store = RedisTokenStore(redis_client, prefix=redis_prefix, lock_ttl=0.06, lock_timeout=0.05)
    secret = make_token(SECRET_ACCESS, SECRET_REFRESH)
    assert await store.compare_and_set("k", secret, expected_version=0)
    loaded = await store.load("k")
    assert loaded is not None
    texts = [repr(store), repr(loaded), str(loaded)]

    name = store.token_key("k")
    for version, document in (
        ("1", leaky_document()[:-20]),
        ("1", leaky_document(expires_at=SECRET_REFRESH)),
        (SECRET_REFRESH, leaky_document()),
    ):
        await redis_client.hset(name, "version", version)
        await redis_client.hset(name, "token", document)
        texts.append(await error_text(lambda: store.load("k")))

    async def locked_twice() -> None:
        async with store.lock("k"):
            await redis_client.delete(store.lock_key("k"))  # the watchdog will warn: lock lost
            await asyncio.sleep(0.1)
            rival = RedisTokenStore(redis_client, prefix=redis_prefix)
            async with rival.lock("k"), store.lock("k"):
                pass

    texts.append(await error_text(locked_twice))

    down = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        unreachable = RedisTokenStore(down, prefix=redis_prefix)
        texts.append(await error_text(lambda: unreachable.load("k")))
        texts.append(
            await error_text(lambda: unreachable.compare_and_set("k", secret, expected_version=0))
        )
    finally:
        await down.aclose()
    assert_no_secret(*texts, caplog.text)
    assert "lost the lock" in caplog.text
