"""RedisTokenStore against the real Redis: layout, lock ownership, TTL watchdog, failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from actionstep_async import TokenStoreError
from actionstep_async.stores import TokenStore
from actionstep_async.stores._base import encode_key
from actionstep_async.stores.redis import RedisTokenStore

from .conftest import REDIS_HOST, REDIS_PORT, TokenFactory
from .test_file import (
    assert_brackets_never_interleave,
    assert_each_version_won_once,
    kill_while_holding_lock,
    run_workers,
)


def other_host(redis_client: Redis, prefix: str, **options: float | bool | None) -> RedisTokenStore:
    """A second store object on the same Redis and prefix: shares no in-process lock state."""
    return RedisTokenStore(redis_client, prefix=prefix, poll_interval=0.005, **options)  # type: ignore[arg-type]


async def test_repr_shows_only_the_prefix(redis_store: RedisTokenStore, redis_prefix: str) -> None:
    """repr names the key prefix and nothing else."""
    assert repr(redis_store) == f"RedisTokenStore(prefix={redis_prefix!r})"


async def test_store_satisfies_the_protocol(redis_store: RedisTokenStore) -> None:
    """RedisTokenStore is a TokenStore."""
    assert isinstance(redis_store, TokenStore)


async def test_layout_is_a_versioned_hash_under_the_prefix(
    redis_store: RedisTokenStore, redis_client: Redis, redis_prefix: str, make_token: TokenFactory
) -> None:
    """The token lives in {prefix}token:<encoded key> as a hash of version and token JSON."""
    await redis_store.compare_and_set("a/b", make_token(), expected_version=0)
    name = f"{redis_prefix}token:{encode_key('a/b')}"
    assert redis_store.token_key("a/b") == name
    assert redis_store.lock_key("a/b") == f"{redis_prefix}lock:{encode_key('a/b')}"
    stored = await redis_client.hgetall(name)
    assert stored[b"version"] == b"1"
    assert b'"key":"a/b"' in stored[b"token"]


async def test_works_with_decoded_responses(redis_prefix: str, make_token: TokenFactory) -> None:
    """A client created with decode_responses=True works the same."""
    client = Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    try:
        store = RedisTokenStore(client, prefix=redis_prefix)
        assert await store.compare_and_set("k", make_token(), expected_version=0)
        assert await store.load("k") == make_token(version=1)
        async with store.lock("k"):
            pass
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "fields",
    [
        {"version": "1", "token": "{torn"},
        {"version": "x", "token": "{}"},
        {"version": "0", "token": "{}"},
        {"token": "{}"},
    ],
    ids=["torn-json", "bad-version", "version-0", "no-version"],
)
async def test_corrupt_entry_raises_token_store_error(
    redis_store: RedisTokenStore,
    redis_client: Redis,
    make_token: TokenFactory,
    fields: dict[str, str],
) -> None:
    """An entry that does not decode raises TokenStoreError."""
    await redis_store.compare_and_set("k", make_token(), expected_version=0)
    await redis_client.hdel(redis_store.token_key("k"), "version")
    for field, value in fields.items():
        await redis_client.hset(redis_store.token_key("k"), field, value)
    with pytest.raises(TokenStoreError, match="corrupt"):
        await redis_store.load("k")


async def test_the_callers_client_is_never_closed(
    redis_store: RedisTokenStore, redis_client: Redis
) -> None:
    """After the store has been used (and garbage collected) the caller's client still works."""
    async with redis_store.lock("k"):
        await redis_store.load("k")
    del redis_store
    assert await redis_client.ping()


async def test_release_never_deletes_another_holders_lock(
    redis_client: Redis, redis_prefix: str
) -> None:
    """A holder whose lock expired and was taken over leaves the new holder's lock in place."""
    first = other_host(redis_client, redis_prefix, lock_ttl=0.1, extend=False)
    second = other_host(redis_client, redis_prefix, lock_ttl=10.0)
    lock_key = first.lock_key("k")
    async with first.lock("k"):
        await asyncio.sleep(0.2)
        second_cm = second.lock("k")
        await second_cm.__aenter__()
        taken_over = await redis_client.get(lock_key)
    assert await redis_client.get(lock_key) == taken_over
    await second_cm.__aexit__(None, None, None)
    assert await redis_client.exists(lock_key) == 0


async def test_lock_expired_mid_refresh_the_compare_and_set_stops_the_second_writer(
    redis_client: Redis, redis_prefix: str, make_token: TokenFactory
) -> None:
    """With the TTL shorter than a slow refresh, whoever saves second loses and keeps nothing."""
    slow = other_host(redis_client, redis_prefix, lock_ttl=0.1, extend=False)
    fast = other_host(redis_client, redis_prefix)
    await fast.compare_and_set("k", make_token("a1"), expected_version=0)
    async with slow.lock("k"):
        seen = await slow.load("k")
        assert seen is not None
        await asyncio.sleep(0.2)  # the "refresh" outlives the lock
        async with asyncio.timeout(2), fast.lock("k"):
            assert await fast.compare_and_set("k", make_token("fast"), expected_version=1)
        assert not await slow.compare_and_set("k", make_token("slow"), expected_version=1)
    loaded = await fast.load("k")
    assert loaded is not None
    assert (loaded.access_token, loaded.version) == ("fast", 2)


async def test_watchdog_keeps_a_long_hold_locked(redis_client: Redis, redis_prefix: str) -> None:
    """A hold three times longer than the TTL keeps the lock: nobody else gets in meanwhile."""
    holder = other_host(redis_client, redis_prefix, lock_ttl=0.3)
    rival = other_host(redis_client, redis_prefix, lock_timeout=0.05)
    async with holder.lock("k"):
        for _ in range(6):
            await asyncio.sleep(0.1)
            with pytest.raises(TokenStoreError, match="timed out"):
                async with rival.lock("k"):
                    pass
        assert await redis_client.pttl(holder.lock_key("k")) > 0


async def test_without_watchdog_the_ttl_lets_a_rival_in(
    redis_client: Redis, redis_prefix: str
) -> None:
    """With extend=False a hold longer than the TTL loses the lock to a rival."""
    holder = other_host(redis_client, redis_prefix, lock_ttl=0.1, extend=False)
    rival = other_host(redis_client, redis_prefix, lock_timeout=1.0)
    async with holder.lock("k"):
        await asyncio.sleep(0.15)
        async with rival.lock("k"):
            pass


async def test_watchdog_stops_and_warns_once_the_lock_is_lost(
    redis_client: Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """If the lock vanishes under its holder, the watchdog warns and does not recreate it."""
    holder = other_host(redis_client, redis_prefix, lock_ttl=0.09)
    with caplog.at_level(logging.WARNING, logger="actionstep_async.stores"):
        async with holder.lock("k"):
            await redis_client.delete(holder.lock_key("k"))
            await asyncio.sleep(0.1)
            assert await redis_client.exists(holder.lock_key("k")) == 0
    assert "lost the lock" in caplog.text


async def test_lock_timeout_raises_token_store_error(
    redis_store: RedisTokenStore, redis_client: Redis, redis_prefix: str
) -> None:
    """A rival waiting longer than lock_timeout gets TokenStoreError."""
    rival = other_host(redis_client, redis_prefix, lock_timeout=0.05)
    async with redis_store.lock("k"):
        with pytest.raises(TokenStoreError, match="timed out"):
            async with rival.lock("k"):
                pass


async def test_waiters_cancelled_at_random_moments_never_leak_the_lock(
    redis_client: Redis, redis_prefix: str
) -> None:
    """Waiters cancelled mid-poll leave nothing behind: the lock key vanishes at release."""
    holder, waiters = other_host(redis_client, redis_prefix), other_host(redis_client, redis_prefix)
    async with holder.lock("k"):
        for delay in (0, 0.001, 0.002, 0.004, 0.008, 0.012):
            task = asyncio.create_task(waiters.lock("k").__aenter__())
            await asyncio.sleep(delay)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert await redis_client.exists(holder.lock_key("k")) == 0


@pytest.mark.parametrize("dropped", [False, True], ids=["delivered", "dropped"])
async def test_cancelled_after_set_reached_redis_releases_the_lock(
    redis_client: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, dropped: bool
) -> None:
    """A waiter cancelled after its SET NX landed deletes the lock it just took.

    "dropped" mimics Python 3.11's asyncio.wait_for inside redis-py, which returns the reply and
    swallows a cancellation that races with it.
    """
    store = other_host(redis_client, redis_prefix)
    landed = asyncio.Event()
    real_set = redis_client.set

    async def set_then_hang(*args: object, **kwargs: object) -> object:
        result = await real_set(*args, **kwargs)  # type: ignore[arg-type]
        landed.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not dropped:
                raise
        return result

    monkeypatch.setattr(redis_client, "set", set_then_hang)
    task = asyncio.create_task(store.lock("k").__aenter__())
    await landed.wait()
    assert await redis_client.exists(store.lock_key("k")) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await redis_client.exists(store.lock_key("k")) == 0


async def test_leaving_the_lock_survives_a_watchdog_that_drops_its_cancellation(
    redis_client: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lock() exits and releases even if the extend call swallows the watchdog's cancel."""
    store = other_host(redis_client, redis_prefix, lock_ttl=0.03)
    extending = asyncio.Event()

    async def extend_dropping_cancel(keys: object, args: object) -> int:
        extending.set()
        # As asyncio.wait_for does on Python 3.11 when the reply races the cancellation.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return 1

    monkeypatch.setattr(store, "_extend_script", extend_dropping_cancel)
    async with asyncio.timeout(2):
        async with store.lock("k"):
            await extending.wait()
    assert await redis_client.exists(store.lock_key("k")) == 0


async def test_redis_down_raises_token_store_error(make_token: TokenFactory) -> None:
    """Every operation against an unreachable Redis raises TokenStoreError chained to the cause."""
    # No client retries: redis-py's default backoff would only make the test slower.
    client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    store = RedisTokenStore(client, prefix="unreachable:", lock_timeout=1.0)
    try:
        operations = [
            store.load("k"),
            store.compare_and_set("k", make_token(), expected_version=0),
            store.delete("k"),
        ]
        for operation in operations:
            with pytest.raises(TokenStoreError, match="Redis") as caught:
                await operation
            assert isinstance(caught.value.__cause__, RedisError)
        with pytest.raises(TokenStoreError, match="Redis lock"):
            async with store.lock("k"):
                pass
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_lock_and_cas_across_processes(
    redis_store: RedisTokenStore, redis_prefix: str, tmp_path: Path
) -> None:
    """Four processes, each with its own client and loop, do 25 locked cycles without overlap."""
    log = tmp_path / "brackets.log"
    run_workers("redis", redis_prefix, "shared/key", workers=4, cycles=25, log=log)
    assert_brackets_never_interleave(log, 100)
    final = await redis_store.load("shared/key")
    assert final is not None
    assert (final.version, final.access_token) == (100, "access-100")


@pytest.mark.slow
async def test_lock_of_a_killed_holder_frees_after_its_ttl(
    redis_store: RedisTokenStore, redis_client: Redis, redis_prefix: str
) -> None:
    """A holder killed mid-hold (no release, no watchdog) blocks others for at most its TTL."""
    kill_while_holding_lock("redis", redis_prefix)
    assert 0 < await redis_client.pttl(redis_store.lock_key("k")) <= 500
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5), redis_store.lock("k"):
        waited = loop.time() - started
    assert 0.05 < waited < 1.5


@pytest.mark.slow
async def test_compare_and_set_alone_is_atomic_across_processes(
    redis_store: RedisTokenStore, redis_prefix: str, tmp_path: Path
) -> None:
    """Four processes racing compare-and-set without any lock never both win the same version."""
    log = tmp_path / "wins.log"
    run_workers("redis", redis_prefix, "raced", workers=4, cycles=25, log=log, mode="race")
    assert_each_version_won_once(log, 100)
    final = await redis_store.load("raced")
    assert final is not None
    assert (final.version, final.access_token) == (100, "access-100")


@pytest.mark.parametrize(
    "options",
    [{"lock_ttl": 0}, {"lock_timeout": 0}, {"poll_interval": 0}],
    ids=["ttl", "timeout", "poll"],
)
async def test_nonsensical_options_are_refused(
    redis_client: Redis, options: dict[str, float]
) -> None:
    """Zero TTL, timeout or poll interval is a configuration error."""
    with pytest.raises(ValueError, match="must be"):
        RedisTokenStore(redis_client, **options)  # type: ignore[arg-type]
