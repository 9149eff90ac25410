"""MemoryTokenStore: tokens in a dict, for tests and single-process services."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from .._tokens import Token
from ._base import validate_key

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore:
    """Keeps tokens in this process only. Its lock excludes tasks of this process."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        # Keyed by (id(loop), key): an asyncio.Lock that was ever contended is bound to its loop,
        # so sharing one between event loops (asyncio.run per job, pytest's per-test loops)
        # raises "bound to a different event loop". Weak values: idle locks are dropped.
        self._locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(self._tokens)})"

    async def load(self, key: str) -> Token | None:
        return self._tokens.get(validate_key(key))

    async def compare_and_set(self, key: str, token: Token, *, expected_version: int) -> bool:
        current = self._tokens.get(validate_key(key))
        if (current.version if current else 0) != expected_version:
            return False
        self._tokens[key] = attrs.evolve(token, version=expected_version + 1)
        return True

    async def delete(self, key: str) -> None:
        self._tokens.pop(validate_key(key), None)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        slot = (id(asyncio.get_running_loop()), validate_key(key))
        lock = self._locks.get(slot)
        if lock is None:
            lock = self._locks[slot] = asyncio.Lock()
        async with lock:
            yield
