"""The per-organisation governor: one rate budget per token key, whoever sends the request.

Every request of every :class:`AsyncResourceClient`, accessor and ``iterate`` for one key goes
through the key's governor (one per key and event loop, see :func:`governor_for`): a
concurrency cap, then a slot on the learned rate (:mod:`._rate`). A 429 with ``Retry-After``
pauses every caller of the key until it has passed, not just the one that got it.

With a ``shared`` budget (``RedisRateBudget``) the rate, the pause and a leased concurrency cap
live in Redis, so every process on every host stays inside one organisation's limit together.
When the shared budget fails the governor says so once in a warning and carries on alone
(re-trying the shared one every ``_SHARED_RETRY`` seconds), starting from the rate this process
was getting from the shared budget and learning from 429s as usual: a Redis outage costs the
cross-process coordination, never a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import Final, NamedTuple, Protocol

from ._limits import ConcurrencyLimiter
from ._rate import (
    GovernorPolicy,
    accepted_rate,
    carried,
    decreased,
    given_back,
    measure_window,
    rate_at,
    reserve,
)

__all__ = [
    "BudgetUnavailable",
    "Governor",
    "Grant",
    "Permit",
    "SharedBudget",
    "governor_for",
]

log = logging.getLogger("actionstep_async.governor")

_SHARED_RETRY: Final = 30.0
"""Seconds the governor works alone after the shared budget failed, before trying it again."""
_SUCCESS_MEMORY: Final = 4096
_SHARE_WINDOW: Final = 10.0
"""Seconds of this process's successes that measure its share when the shared budget fails."""


class BudgetUnavailable(Exception):
    """The shared budget could not be reached; the governor falls back to its own state."""


class Grant(NamedTuple):
    """A shared budget's answer: with a ``lease``, send after ``wait`` s; without, retry then.

    ``rate`` is the shared rate the slot was spaced at (None: unpaced, or no slot).
    """

    wait: float
    generation: int
    lease: str | None
    rate: float | None = None


class SharedBudget(Protocol):
    """Where processes share one key's rate, pause and concurrency leases (Redis)."""

    async def acquire(
        self, key: str, lease: str, policy: GovernorPolicy, *, bulk: bool
    ) -> Grant: ...

    async def paused_for(self, key: str) -> float: ...

    async def release(self, key: str, lease: str, *, ok: bool) -> None: ...

    async def give_back(self, key: str, lease: str, interval: float) -> None: ...

    async def rate_limited(
        self, key: str, retry_after: float | None, generation: int, policy: GovernorPolicy
    ) -> None: ...


class Permit(NamedTuple):
    """One request's right to be sent; hand it back to :meth:`Governor.release`."""

    generation: int
    lease: str | None
    shared_generation: int
    waited: float


class Governor:
    """Rate and concurrency budget of one token key in this process (optionally shared).

    ``policy`` tunes the learning (:class:`GovernorPolicy`); ``shared`` is a cross-process
    budget such as ``actionstep_async.stores.redis_budget.RedisRateBudget``.
    """

    def __init__(
        self,
        key: str,
        *,
        policy: GovernorPolicy | None = None,
        shared: SharedBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.policy = policy if policy is not None else GovernorPolicy()
        self.shared = shared
        self.state = self.policy.start(clock())
        self.paused_until = 0.0
        self.rate_limited = 0
        self._clock = clock
        self._tat = 0.0
        self._cap = ConcurrencyLimiter(self.policy.concurrency)
        self._successes: deque[float] = deque(maxlen=_SUCCESS_MEMORY)
        self._shared_down_until = 0.0
        self._shared_rate: float | None = None
        self._unleased = Permit(self.state.generation, None, 0, 0.0)

    def __repr__(self) -> str:
        rate = self.rate
        shown = "unpaced" if rate is None else f"{rate:.2f}/s"
        shared = "" if self.shared is None else ", shared"
        return f"Governor(key={self.key!r}, rate={shown}, in_flight={self._cap.in_flight}{shared})"

    @property
    def rate(self) -> float | None:
        """Requests per second allowed now (None: nothing learned, unpaced)."""
        return rate_at(self.state, self._clock(), self.policy)

    @property
    def in_flight(self) -> int:
        return self._cap.in_flight

    async def acquire(self, *, bulk: bool = False) -> Permit:
        """Wait for the cap, the pause and a rate slot, in arrival order.

        Before the key's first 429 only ``bulk`` requests are paced (the slow start).
        """
        started = self._clock()
        epoch = await self._cap.acquire()
        try:
            lease, shared_generation = await self._wait_for_slot(bulk)
        except BaseException:
            self._cap.release(epoch)
            raise
        waited = self._clock() - started
        return Permit(self.state.generation, lease, shared_generation, waited)

    def try_acquire(self, *, bulk: bool = False) -> Permit | None:
        """A permit at once when :meth:`acquire` would not wait for anything, else None.

        The request path's fast path (no coroutine, no sleep): only without a shared budget,
        outside a pause, with a free cap and nobody queued, and a rate slot that is due now.
        """
        if self.shared is not None:
            return None
        now = self._clock()
        if now < self.paused_until:
            return None
        state = self.state
        tat = self._tat
        if bulk or state.generation > 0:
            slot = reserve(tat, now, rate_at(state, max(tat, now), self.policy))
            if slot.wait > 0:
                return None
            tat = slot.tat
        if self._cap.try_acquire() < 0:
            return None
        self._tat = tat
        permit = self._unleased
        if permit.generation != state.generation:  # immutable: one per generation will do
            permit = self._unleased = Permit(state.generation, None, 0, 0.0)
        return permit

    async def release(self, permit: Permit, status: int | None, retry_after: float | None) -> None:
        """Hand back ``permit`` with the answer's status (None: no answer) and Retry-After."""
        self.release_nowait(permit, status, retry_after)
        await self._release_shared(permit, status, retry_after)

    def release_nowait(self, permit: Permit, status: int | None, retry_after: float | None) -> None:
        """The in-process half of :meth:`release`: all of it for a permit without a ``lease``."""
        self._cap.release(0)
        now = self._clock()
        if status is not None and status < 400:
            self._successes.append(now)
        if status == 429:
            self._learn(permit.generation, retry_after, now)

    # -- local state ---------------------------------------------------------------------------

    def _learn(self, generation: int, retry_after: float | None, now: float) -> None:
        self.rate_limited += 1
        resume = now + retry_after if retry_after is not None else now
        if retry_after is not None and resume > self.paused_until:
            self.paused_until = resume
            # Callers that reserved a slot re-reserve after the pause, in their old order.
            self._tat = max(self._tat, resume)
        window = measure_window(self.state, self.policy)
        measured = accepted_rate(self._successes, now, window, since=self.state.changed_at)
        self.state = decreased(
            self.state,
            now=now,
            resume_at=resume,
            sent_generation=generation,
            measured=measured,
            policy=self.policy,
        )

    async def _wait_for_slot(self, bulk: bool) -> tuple[str | None, int]:
        if self.shared is not None and self._clock() >= self._shared_down_until:
            try:
                return await self._shared_slot(self.shared, bulk)
            except BudgetUnavailable as exc:
                self._shared_failed(exc)
        await self._local_slot(bulk)
        return None, 0

    async def _local_slot(self, bulk: bool) -> None:
        while True:
            now = self._clock()
            paced = bulk or self.state.generation > 0
            # Spaced at the rate of the slot's own time (see _rate.reserve's callers).
            at = max(self._tat, now, self.paused_until)
            rate = rate_at(self.state, at, self.policy) if paced else None
            slot = reserve(self._tat, now, rate, not_before=self.paused_until)
            self._tat = slot.tat
            if slot.wait <= 0:
                return
            try:
                await asyncio.sleep(slot.wait)
            except asyncio.CancelledError:
                self._tat = given_back(self._tat, self._clock(), rate)
                raise
            if self._clock() >= self.paused_until:
                return

    # -- shared budget -------------------------------------------------------------------------

    async def _shared_slot(self, shared: SharedBudget, bulk: bool) -> tuple[str, int]:
        lease = uuid.uuid4().hex
        while True:
            pause = self.paused_until - self._clock()
            if pause > 0:
                await asyncio.sleep(pause)
            grant = await shared.acquire(self.key, lease, self.policy, bulk=bulk)
            if grant.lease is None:
                await asyncio.sleep(grant.wait)
                continue
            self._shared_rate = grant.rate
            if grant.wait <= 0:
                return grant.lease, grant.generation
            try:
                await asyncio.sleep(grant.wait)
            except asyncio.CancelledError:
                await self._give_back(shared, grant)
                raise
            # Another process may have been told to pause while we slept on our slot.
            if await shared.paused_for(self.key) <= 0:
                return grant.lease, grant.generation
            await shared.release(self.key, grant.lease, ok=False)

    async def _give_back(self, shared: SharedBudget, grant: Grant) -> None:
        """Hand back an unused slot and its lease (the caller was cancelled while waiting)."""
        assert grant.lease is not None
        interval = 0.0 if grant.rate is None else 1.0 / grant.rate
        try:
            await shared.give_back(self.key, grant.lease, interval)
        except BudgetUnavailable as exc:
            self._shared_failed(exc)

    async def _release_shared(
        self, permit: Permit, status: int | None, retry_after: float | None
    ) -> None:
        shared, lease = self.shared, permit.lease
        if shared is None or lease is None:
            return
        try:
            await shared.release(self.key, lease, ok=status is not None and status < 400)
            if status == 429:
                await shared.rate_limited(
                    self.key, retry_after, permit.shared_generation, self.policy
                )
        except BudgetUnavailable as exc:
            self._shared_failed(exc)

    def _shared_failed(self, exc: BudgetUnavailable) -> None:
        now = self._clock()
        first = now >= self._shared_down_until
        self._shared_down_until = now + _SHARED_RETRY
        if first:
            # Carry on from what the shared budget taught: this process's share of it, the
            # rate of its successes up to the last one (an idle spell is no lower share).
            last = self._successes[-1] if self._successes else now
            own = accepted_rate(self._successes, last, _SHARE_WINDOW)
            self.state = carried(
                self.state, now=now, own=own, shared=self._shared_rate, policy=self.policy
            )
            log.warning(
                "shared rate budget for %r unavailable (%s); pacing this process alone for %.0f s",
                self.key,
                exc,
                _SHARED_RETRY,
            )


_GOVERNORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Governor]] = (
    weakref.WeakKeyDictionary()
)


def governor_for(key: str, given: Governor | None = None) -> Governor:
    """The governor a request for ``key`` passes on the running loop.

    ``given`` (a client's ``governor=``) is always used, and becomes the loop's governor for
    the key if it has none yet; otherwise the loop's one, created on first use.
    """
    loop = asyncio.get_running_loop()
    governors = _GOVERNORS.get(loop)
    if governors is None:
        governors = _GOVERNORS[loop] = {}
    if given is not None:
        governors.setdefault(key, given)
        return given
    governor = governors.get(key)
    if governor is None:
        governor = governors[key] = Governor(key)
    return governor
