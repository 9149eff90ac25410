"""How many requests a client has in flight: a fixed limit, or one that adapts to 429s.

Actionstep's rate limits are unpublished and change with load, so a fixed number is either too
timid or a 429 storm. The adaptive mode is additive-increase / multiplicative-decrease (the TCP
congestion-avoidance rule): every 429 halves the limit, and it grows back by one after a run of
successes, so a bulk job settles just under the rate the server currently allows. After a
decrease it holds still for a while (at least the server's ``Retry-After``, and one second): a
probe that overshoots costs a whole ``Retry-After`` for the request that hit it, far more than
the round trip that TCP-style growth assumes, so probing must be rare.

A permit covers one HTTP exchange only. The client releases it before sleeping for a retry, so
a request that waits out a ``Retry-After`` never blocks the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["ConcurrencyLimiter", "Outcome"]

Outcome = Literal["ok", "rate_limited", "failed"]
"""How an exchange ended, as far as the limiter cares."""

_OK: Final = "ok"
_RATE_LIMITED: Final = "rate_limited"


class ConcurrencyLimiter:
    """A semaphore whose size can shrink on 429 and grow back (when ``adaptive``).

    ``maximum`` is the size it starts with and never exceeds; ``minimum`` is the floor the halving
    stops at. ``increase_every`` is the number of successes that earn one more permit; by default
    it is the current limit, so the limit grows by about one per round of requests.
    """

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool = False,
        minimum: int = 1,
        increase_every: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maximum < 1 or not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        if increase_every is not None and increase_every < 1:
            raise ValueError("increase_every must be at least 1")
        self.maximum = maximum
        self.minimum = minimum
        self.adaptive = adaptive
        self.increase_every = increase_every
        self.limit = maximum
        self.decreases = 0
        self._in_flight = 0
        self._successes = 0
        # Bumped on every decrease: a 429 for a request sent before the last decrease says
        # nothing new about the current limit, so it must not halve it again.
        self._epoch = 0
        self._clock = clock
        self._hold_until = 0.0
        # Waiters in arrival order. A cancelled one stays in place as a done future that
        # ``_wake`` skips (removing it would be O(n) per cancellation: O(n^2) when a queue of
        # thousands is cancelled together); ``_queued`` counts the live ones.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._queued = 0

    def __repr__(self) -> str:
        mode = "adaptive" if self.adaptive else "fixed"
        return (
            f"ConcurrencyLimiter({mode}, limit={self.limit}/{self.maximum},"
            f" in_flight={self._in_flight}, waiting={self._queued})"
        )

    @property
    def in_flight(self) -> int:
        """Permits currently held."""
        return self._in_flight

    def try_acquire(self) -> int:
        """A permit now if one is free and nobody queues (its epoch, as :meth:`acquire`), else -1.

        The request path's fast path: no coroutine when the limiter does not make anyone wait.
        """
        if self._in_flight < self.limit and not self._queued:
            self._in_flight += 1
            return self._epoch
        return -1

    async def acquire(self) -> int:
        """Wait for a permit; returns the limiter's epoch then, to hand back to :meth:`release`."""
        if self._in_flight < self.limit and not self._queued:
            self._in_flight += 1
            return self._epoch
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._queued += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The permit was handed over just as we were cancelled: pass it on.
                self._in_flight -= 1
            else:
                # Still queued (its future cancelled with it, or by the loop at shutdown and
                # perhaps popped already): it leaves the count; its done future is skipped.
                self._queued -= 1
                self._compact()
            self._wake()
            raise
        return self._epoch

    def release(self, epoch: int, outcome: Outcome = _OK, *, retry_after: float = 0.0) -> None:
        """Return a permit, telling the adaptive mode how the exchange went.

        ``epoch`` is what :meth:`acquire` returned: a 429 for a request sent before the last
        decrease does not halve the limit again.

        ``retry_after`` is the server's hint on a 429 (seconds); growth pauses at least that long.
        """
        self._in_flight -= 1
        if self.adaptive:
            if outcome == _RATE_LIMITED:
                self._decrease(epoch, retry_after)
            elif outcome == _OK and self._clock() >= self._hold_until:
                self._successes += 1
                if self._successes >= (self.increase_every or self.limit):
                    self._successes = 0
                    self.limit = min(self.maximum, self.limit + 1)
        if self._waiters:  # nobody to hand the permit to: the usual case, without the call
            self._wake()

    def _decrease(self, epoch: int, retry_after: float) -> None:
        self._hold_until = max(self._hold_until, self._clock() + max(1.0, retry_after))
        if epoch != self._epoch:
            return
        self._epoch += 1
        self._successes = 0
        self.decreases += 1
        self.limit = max(self.minimum, self.limit // 2)

    def _wake(self) -> None:
        """Hand free permits to the earliest live waiters (each handed permit: one wake-up)."""
        waiters = self._waiters
        while waiters and self._in_flight < self.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._queued -= 1
                self._in_flight += 1

    def _compact(self) -> None:
        """Drop cancelled futures once they outnumber the live waiters (amortised O(1))."""
        waiters = self._waiters
        if len(waiters) > 2 * self._queued + 64:
            self._waiters = deque(waiter for waiter in waiters if not waiter.done())
