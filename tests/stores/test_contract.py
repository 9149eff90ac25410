"""Behaviour every TokenStore shares: memory, file and Redis stores run the same tests."""

from __future__ import annotations

import asyncio

import pytest

from actionstep_async import InvalidRequestError
from actionstep_async.stores import TokenStore

from .conftest import TokenFactory

HOSTILE_KEYS = [
    "a-bc",
    "ab-c",
    "a-b:c",
    "a:b-c",
    "a/b",
    "a%2Fb",
    "a%252Fb",
    "a_b",
    "a b",
    "..",
    ".",
    "~",
    "a.json",
    "a.lock",
    "%sha256-00",
    "tenant-é",
    "tenant-e\u0301",
    "日本/組織",
    "x" * 512,
    "x" * 511 + "y",
    "y" * 181,
]


async def test_load_of_absent_key_is_none(store: TokenStore) -> None:
    """Loading a key that was never saved returns None."""
    assert await store.load("nobody") is None


async def test_first_save_needs_expected_version_zero(
    store: TokenStore, make_token: TokenFactory
) -> None:
    """An absent key is version 0: a save expecting anything else is refused and stores nothing."""
    assert await store.compare_and_set("k", make_token(), expected_version=1) is None
    assert await store.load("k") is None
    written = await store.compare_and_set("k", make_token(), expected_version=0)
    assert written == make_token(version=1)
    loaded = await store.load("k")
    assert loaded == written


async def test_versions_increment_and_a_conflict_never_overwrites(
    store: TokenStore, make_token: TokenFactory
) -> None:
    """Each successful save bumps the version; a stale save leaves the newer token alone."""
    first, second, stale = make_token("a1"), make_token("a2"), make_token("stale")
    written_first = await store.compare_and_set("k", first, expected_version=0)
    written_second = await store.compare_and_set("k", second, expected_version=1)
    assert written_first is not None
    assert written_second is not None
    assert (written_first.version, written_second.version) == (1, 2)
    assert await store.compare_and_set("k", stale, expected_version=1) is None
    assert await store.compare_and_set("k", stale, expected_version=0) is None
    loaded = await store.load("k")
    assert loaded == written_second
    assert (loaded.access_token, loaded.version) == ("a2", 2)


async def test_delete_forgets_the_token(store: TokenStore, make_token: TokenFactory) -> None:
    """Delete is a no-op for an absent key and otherwise returns the key to version 0."""
    await store.delete("k")
    assert await store.compare_and_set("k", make_token("a1"), expected_version=0)
    await store.delete("k")
    assert await store.load("k") is None
    assert await store.compare_and_set("k", make_token("a2"), expected_version=0)
    loaded = await store.load("k")
    assert loaded is not None
    assert (loaded.access_token, loaded.version) == ("a2", 1)


async def test_distinct_keys_never_share_an_entry(
    store: TokenStore, make_token: TokenFactory
) -> None:
    """Keys that look alike once escaped, concatenated, hashed or normalised stay separate."""
    for index, key in enumerate(HOSTILE_KEYS):
        assert await store.compare_and_set(key, make_token(f"a{index}"), expected_version=0), key
    for index, key in enumerate(HOSTILE_KEYS):
        loaded = await store.load(key)
        assert loaded is not None
        assert (loaded.access_token, loaded.version) == (f"a{index}", 1), key


@pytest.mark.parametrize("key", ["", "a\nb", "a\x00b", "x" * 513])
async def test_invalid_keys_are_refused(store: TokenStore, key: str) -> None:
    """Empty, over-long and control-character keys raise InvalidRequestError."""
    with pytest.raises(InvalidRequestError):
        await store.load(key)


async def test_lock_excludes_concurrent_tasks(store: TokenStore) -> None:
    """Fifty tasks entering lock(key) at once never overlap inside the critical section."""
    log: list[str] = []

    async def worker(index: int) -> None:
        async with store.lock("k"):
            log.append(f"<{index}")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            log.append(f">{index}")

    await asyncio.gather(*(worker(i) for i in range(50)))
    assert len(log) == 100
    assert all(log[i][1:] == log[i + 1][1:] for i in range(0, 100, 2))
    assert all(log[i][0] == "<" and log[i + 1][0] == ">" for i in range(0, 100, 2))


async def test_lock_is_released_when_the_body_raises(store: TokenStore) -> None:
    """An exception inside lock(key) propagates and the next acquirer still gets the lock."""
    with pytest.raises(RuntimeError):
        async with store.lock("k"):
            raise RuntimeError("boom")
    async with asyncio.timeout(5), store.lock("k"):
        pass


async def test_locks_of_different_keys_are_independent(store: TokenStore) -> None:
    """Holding the lock of one key never delays the lock of another."""
    async with store.lock("tenant-a"), asyncio.timeout(5), store.lock("tenant-b"):
        pass


async def test_cas_conflict_storm_has_exactly_one_winner(
    store: TokenStore, make_token: TokenFactory
) -> None:
    """Forty concurrent saves expecting the same version: exactly one wins and its token is kept."""
    assert await store.compare_and_set("k", make_token("base"), expected_version=0)
    results = await asyncio.gather(
        *(store.compare_and_set("k", make_token(f"w{i}"), expected_version=1) for i in range(40))
    )
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    loaded = await store.load("k")
    assert loaded == winners[0]
    assert (loaded.access_token, loaded.version) == (f"w{results.index(winners[0])}", 2)
