"""Thousands of callers queued behind one refresh: served in arrival order, cancellable in O(1).

No timing assertions: the tests count token calls and compare orders.
"""

from __future__ import annotations

import asyncio

import pytest

from actionstep_async import ConnectError, Token, TokenManager
from actionstep_async._single_flight import Flight

from .conftest import FakeClock, RotatingRefresher

CALLERS = 5000


async def expired_manager(refresher: RotatingRefresher, clock: FakeClock) -> TokenManager:
    manager = TokenManager(refresher, clock=clock)
    await manager.save("org-a", refresher.first_token())
    clock.advance(3601)
    refresher.gate = asyncio.Event()
    return manager


async def queue_callers(manager: TokenManager, order: list[int]) -> list[asyncio.Task[Token]]:
    async def caller(n: int) -> Token:
        token = await manager.token("org-a")
        order.append(n)
        return token

    tasks = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
    await asyncio.sleep(0)  # every caller is now queued behind the one refresh
    return tasks


async def test_callers_behind_a_refresh_are_served_in_arrival_order(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    manager = await expired_manager(refresher, clock)
    order: list[int] = []
    tasks = await queue_callers(manager, order)
    assert order == []
    assert refresher.gate is not None
    refresher.gate.set()
    tokens = await asyncio.gather(*tasks)
    assert order == list(range(CALLERS))
    assert {token.access_token for token in tokens} == {"access-2"}
    assert refresher.calls == 1
    assert refresher.reuses == 0


async def test_cancelled_callers_leave_the_refresh_and_the_others_in_order(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """Every third caller is cancelled, latest first (the worst order for a list removal)."""
    manager = await expired_manager(refresher, clock)
    order: list[int] = []
    tasks = await queue_callers(manager, order)
    cancelled = set(range(0, CALLERS, 3))
    for n in sorted(cancelled, reverse=True):
        tasks[n].cancel()
    await asyncio.sleep(0)
    # Callers arriving after the cancellations queue behind the survivors.
    late = [asyncio.create_task(manager.token("org-a")) for _ in range(10)]
    await asyncio.sleep(0)
    assert refresher.gate is not None
    refresher.gate.set()
    results = await asyncio.gather(*tasks, *late, return_exceptions=True)
    survivors = [n for n in range(CALLERS) if n not in cancelled]
    assert order == survivors
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == len(cancelled)
    assert {r.access_token for r in results if isinstance(r, Token)} == {"access-2"}
    assert refresher.calls == 1
    assert manager._states["org-a"].flight is None


async def test_a_failed_refresh_reaches_every_caller_in_order(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    manager = await expired_manager(refresher, clock)
    refresher.failures.append(ConnectError("refused"))
    order: list[int] = []
    tasks = await queue_callers(manager, order)
    assert refresher.gate is not None
    refresher.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ConnectError) for r in results)
    assert order == []
    assert refresher.calls == 1


async def test_flight_joiners_see_its_result_error_or_cancellation() -> None:
    gate = asyncio.Event()

    async def work(outcome: str) -> str:
        await gate.wait()
        if outcome == "error":
            raise ValueError(outcome)
        return outcome

    ok, error, stopped = (Flight(asyncio.create_task(work(o))) for o in ("ok", "error", "stop"))
    # A caller cancelled early is dropped from the queue when the next caller arrives.
    early = asyncio.create_task(ok.join())
    await asyncio.sleep(0)
    early.cancel()
    await asyncio.sleep(0)
    joiners = [asyncio.create_task(f.join()) for f in (ok, error, stopped) for _ in range(3)]
    joiners.append(asyncio.create_task(ok.join()))
    await asyncio.sleep(0)
    assert "waiting=4" in repr(ok)
    stopped.task.cancel()
    gate.set()
    results = await asyncio.gather(*joiners, return_exceptions=True)
    assert results[:3] == ["ok"] * 3
    assert results[-1] == "ok"
    assert all(isinstance(r, ValueError) for r in results[3:6])
    assert all(isinstance(r, asyncio.CancelledError) for r in results[6:9])
    assert ok.task.cancelled() is False
    assert await ok.join() == "ok"  # a finished flight answers at once
    with pytest.raises(ValueError, match="error"):
        await error.join()
