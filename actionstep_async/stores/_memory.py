"""MemoryTokenStore: tokens in a dict, for tests and single-process services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from .._tokens import Token
from ._base import LoopLocks, validate_key

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore:
    """Keeps tokens in this process only. Its lock excludes tasks of this process."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._locks = LoopLocks()

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(self._tokens)})"

    async def load(self, key: str) -> Token | None:
        return self._tokens.get(validate_key(key))

    async def compare_and_set(
        self, key: str, token: Token, *, expected_version: int
    ) -> Token | None:
        current = self._tokens.get(validate_key(key))
        if (current.version if current else 0) != expected_version:
            return None
        stored = self._tokens[key] = attrs.evolve(token, version=expected_version + 1)
        return stored

    async def keys(self) -> list[str]:
        """Every key with a stored token."""
        return sorted(self._tokens)

    async def delete(self, key: str) -> None:
        self._tokens.pop(validate_key(key), None)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        async with self._locks.hold(validate_key(key)):
            yield
