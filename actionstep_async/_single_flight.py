"""One task many callers wait for: woken in arrival order, a cancelled caller costs O(1).

``asyncio.shield`` would also keep a cancelled caller from cancelling the task, but each
cancelled caller then removes its callback from the task's callback list, which is O(n): when
10,000 callers queued behind a refresh time out together, that is 10^8 steps that block the
event loop for seconds (minutes at 40,000). Here each caller waits on its own future in a queue:
cancelling it leaves a done future behind that the wake-up skips, and the task's end wakes every
caller in the order it arrived, with one scheduled callback each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Flight"]

T = TypeVar("T")


class Flight(Generic[T]):
    """``task`` and the callers waiting for its outcome (through :meth:`join`)."""

    __slots__ = ("_waiters", "task")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self._waiters: deque[asyncio.Future[T]] = deque()
        task.add_done_callback(self._finished)

    def __repr__(self) -> str:
        return f"Flight({self.task.get_name()}, waiting={len(self._waiters)})"

    async def join(self) -> T:
        """The task's result (or its exception); cancelling the caller leaves the task running."""
        task = self.task
        if task.done():
            return task.result()
        waiters = self._waiters
        # Futures of callers cancelled earlier are dropped from the front as new callers come,
        # so a long flight with impatient callers does not hoard them.
        while waiters and waiters[0].done():
            _ = waiters.popleft()
        waiter: asyncio.Future[T] = task.get_loop().create_future()
        waiters.append(waiter)
        return await waiter

    def _finished(self, task: asyncio.Task[T]) -> None:
        waiters, self._waiters = self._waiters, deque()
        if task.cancelled():
            for waiter in waiters:
                waiter.cancel()
            return
        error = task.exception()  # also marks it retrieved
        for waiter in waiters:
            if waiter.done():  # its caller was cancelled
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(task.result())
