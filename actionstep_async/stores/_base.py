"""The TokenStore protocol every token store implements, and key encoding shared by them."""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol, runtime_checkable
from urllib.parse import quote

from .._errors import InvalidRequestError
from .._tokens import Token

__all__ = ["LoopLocks", "TokenStore", "encode_key", "validate_key"]

MAX_KEY_LENGTH: Final = 512


@runtime_checkable
class TokenStore(Protocol):
    """Where tokens live between requests, processes and hosts.

    Every method is a coroutine (or returns an async context manager) and never blocks the loop.

    Versions: a stored token's ``version`` is 1 after the first save and grows by one with each
    successful :meth:`compare_and_set`. An absent key has version 0.
    """

    async def load(self, key: str) -> Token | None:
        """The stored token for ``key`` (with its ``version``), or ``None`` if there is none."""
        ...

    async def compare_and_set(
        self, key: str, token: Token, *, expected_version: int
    ) -> Token | None:
        """Store ``token`` with version ``expected_version + 1`` iff the stored version is
        ``expected_version``. Returns the token as stored (with its new version), or ``None`` when
        the stored version differs and nothing was written. Never overwrites a newer token."""
        ...

    async def delete(self, key: str) -> None:
        """Forget the token for ``key`` (no error if absent)."""
        ...

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Exclusive access to ``key`` for every task, process and host sharing this store.

        Held around a refresh: re-read, call the token endpoint, compare-and-set.
        """
        ...


def validate_key(key: object) -> str:
    """Check a token key: a non-empty string without control characters, at most 512 chars."""
    if not isinstance(key, str) or not key:
        raise InvalidRequestError("a token key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequestError(f"a token key must be at most {MAX_KEY_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidRequestError("a token key must not contain control characters")
    return key


def encode_key(key: str) -> str:
    """An injective, file-name- and Redis-safe spelling of ``key``.

    Letters, digits, ``-`` and ``_`` stay; everything else is percent-encoded UTF-8, so ``a/b``,
    ``..`` and ``a%2Fb`` all get distinct names with no path separators or dots. Long names are
    replaced by ``%sha256-<hex>``; that form cannot collide with an encoded name because ``%`` in
    an encoded name is always followed by two hex digits.
    """
    # quote() always keeps "." and "~"; encode them too so no name is "..", hidden or dotted.
    encoded = quote(validate_key(key), safe="-_").replace(".", "%2E").replace("~", "%7E")
    if len(encoded) > 180:
        return "%sha256-" + hashlib.sha256(key.encode()).hexdigest()
    return encoded


class LoopLocks:
    """One ``asyncio.Lock`` per (event loop, name): how a store queues its own tasks.

    A lock that was ever contended is bound to its loop, so sharing one between event loops
    (``asyncio.run`` per job, pytest's per-test loops) raises "bound to a different event loop".
    Weak values: idle locks are dropped.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @asynccontextmanager
    async def hold(
        self,
        name: str,
        deadline: float | None = None,
        on_timeout: Callable[[], Exception] = TimeoutError,
    ) -> AsyncIterator[None]:
        """Hold the lock for ``name`` on this loop.

        Raises ``on_timeout()`` if it is not acquired before ``deadline`` (loop time); a
        TimeoutError raised inside the ``async with`` body passes through untouched.
        """
        slot = (id(asyncio.get_running_loop()), name)
        lock = self._locks.get(slot)
        if lock is None:
            lock = self._locks[slot] = asyncio.Lock()
        try:
            async with asyncio.timeout_at(deadline):
                await lock.acquire()
        except TimeoutError:
            raise on_timeout() from None
        try:
            yield
        finally:
            lock.release()
