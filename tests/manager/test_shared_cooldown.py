"""TokenManager.cooldown: the token endpoint's Retry-After is shared and honoured."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from actionstep_async import TokenEndpointUnavailable, TokenManager
from actionstep_async.testing import FakeActionstep, FaultRule


class Board:
    """An in-memory stand-in for the shared cool-down (RedisRateBudget has the real one)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.told: list[tuple[str, float]] = []

    async def cool_down(self, key: str, seconds: float) -> None:
        self.told.append((key, seconds))

    async def cooling_for(self, key: str) -> float:
        return self.seconds


async def _manager(fake: FakeActionstep, board: Board) -> TokenManager:
    manager = TokenManager(fake.oauth_client())
    manager.cooldown = board
    token = fake.issue_token(scopes=("all",))
    await manager.save("org", attrs.evolve(token, expires_at=token.issued_at - 1))
    return manager


async def test_a_503_with_retry_after_is_shared() -> None:
    async with FakeActionstep() as fake:
        board = Board()
        manager = await _manager(fake, board)
        fake.add_fault(FaultRule(kind="status", status=503, retry_after=2, resource="oauth/token"))
        async with manager:
            with pytest.raises(TokenEndpointUnavailable):
                await manager.token("org")
            await asyncio.sleep(0.05)  # the share runs as a background task
        assert board.told == [("org", 2.0)]


async def test_a_cool_down_from_elsewhere_is_waited_out_before_refreshing() -> None:
    async with FakeActionstep() as fake:
        board = Board(seconds=0.5)
        manager = await _manager(fake, board)
        async with manager:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await manager.token("org")
            assert loop.time() - started >= 0.45
        assert fake.counters.token_calls == 1
