"""Helpers for TokenManager tests: a controllable clock and an in-process rotating refresher."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import attrs
import pytest

from actionstep_async import ActionstepError, ReauthorizationRequired, Token
from actionstep_async.testing import FakeClock

__all__ = ["FakeClock", "RotatingRefresher"]


class RotatingRefresher:
    """Rotates like Actionstep: each refresh token works once; counts every presentation."""

    def __init__(self, clock: FakeClock, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.presented: Counter[str] = Counter()
        self.spent: set[str] = set()
        self.reuses = 0  # presentations of a refresh token that was already spent
        self.failures: list[ActionstepError] = []
        self.gate: asyncio.Event | None = None
        self.delay = 0.0
        self._serial = itertools.count(1)

    def first_token(self, **overrides: object) -> Token:
        n = next(self._serial)
        fields: dict[str, object] = {
            "access_token": f"access-{n}",
            "refresh_token": f"refresh-{n}",
            "issued_at": self.clock(),
            "expires_at": self.clock() + self.lifetime,
            "api_endpoint": "https://ap-southeast-2.actionstep.com/api/",
        }
        fields.update(overrides)
        return Token(**fields)  # type: ignore[arg-type]

    async def refresh(self, token: Token) -> Token:
        self.calls += 1
        self.presented[token.refresh_token] += 1
        if token.refresh_token in self.spent:
            self.reuses += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            raise self.failures.pop(0)
        if token.refresh_token in self.spent:
            raise ReauthorizationRequired("refresh token already used")
        self.spent.add(token.refresh_token)
        n = next(self._serial)
        return attrs.evolve(
            token,
            access_token=f"access-{n}",
            refresh_token=f"refresh-{n}",
            issued_at=self.clock(),
            expires_at=self.clock() + self.lifetime,
            refresh_claimed_at=None,
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def refresher(clock: FakeClock) -> RotatingRefresher:
    return RotatingRefresher(clock)
