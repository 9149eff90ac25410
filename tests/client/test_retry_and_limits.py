"""RetryPolicy arithmetic, what may be retried, and the concurrency limiter."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from actionstep_async._limits import ConcurrencyLimiter
from actionstep_async._retry import (
    RetryPolicy,
    retryable_failure,
    retryable_status,
)


def test_statuses_retried_depend_on_the_method() -> None:
    """429 is retried for every method; 502/503/504 only for idempotent ones; 500 never."""
    policy = RetryPolicy()
    assert all(retryable_status(policy, m, 429) for m in ("GET", "PUT", "DELETE", "POST"))
    for status in (502, 503, 504):
        assert retryable_status(policy, "GET", status)
        assert retryable_status(policy, "PUT", status)
        assert not retryable_status(policy, "POST", status)
    assert not retryable_status(policy, "GET", 500)
    assert not retryable_status(policy, "GET", 404)


def test_post_is_retried_after_a_failure_only_when_nothing_was_sent() -> None:
    """A POST whose connection failed after sending is never repeated."""
    assert retryable_failure("POST", sent=False)
    assert not retryable_failure("POST", sent=True)
    assert retryable_failure("GET", sent=True)
    assert retryable_failure("DELETE", sent=True)


def test_backoff_is_full_jitter_and_retry_after_wins() -> None:
    """Waits are uniform up to the exponential ceiling; Retry-After sets the floor."""
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=8.0, retry_after_jitter=0.2)
    rng = random.Random(7)
    waits = [policy.delay(4, None, rng=rng) for _ in range(500)]
    assert min(waits) >= 0.0
    assert max(waits) <= 8.0
    assert max(waits) > 4.0
    hinted = [policy.delay(1, 3.0, rng=rng) for _ in range(200)]
    assert min(hinted) >= 3.0
    assert max(hinted) <= 3.6


def test_budget_counts_attempts_and_seconds() -> None:
    """A retry is allowed only while both the attempt and the time budget last."""
    policy = RetryPolicy(max_attempts=3, max_elapsed=5.0)
    assert policy.allows(1, 0.0, 1.0)
    assert not policy.allows(3, 0.0, 0.0)
    assert not policy.allows(1, 4.5, 1.0)
    assert not RetryPolicy(max_attempts=1).allows(1, 0.0, 0.0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_fixed_limiter_caps_in_flight_and_hands_slots_over_in_order() -> None:
    """At most `maximum` holders at once; waiters get slots first come, first served."""
    limiter = ConcurrencyLimiter(2)
    first, second = await limiter.acquire(), await limiter.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        epoch = await limiter.acquire()
        order.append(n)
        limiter.release(epoch)

    waiters = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert limiter.in_flight == 2
    assert order == []
    limiter.release(first)
    limiter.release(second)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    assert limiter.in_flight == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    """Cancelling a task waiting for a slot leaves the count intact."""
    limiter = ConcurrencyLimiter(1)
    epoch = await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release(epoch)
    assert limiter.in_flight == 0
    assert await limiter.acquire() == 0


async def test_a_waiter_future_cancelled_under_it_raises_only_cancellation() -> None:
    """At shutdown (SIGINT) the loop may cancel the waiter's future itself and a release may pop
    it before the waiting task resumes: the task sees CancelledError, not a ValueError."""
    limiter = ConcurrencyLimiter(1)
    epoch = await limiter.acquire()
    task = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    limiter._waiters[0].cancel()
    limiter.release(epoch)  # pops the cancelled future
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.in_flight == 0


async def test_thousands_of_waiters_keep_their_order_when_many_are_cancelled() -> None:
    """5,000 waiters, two in three cancelled latest first: the rest get permits first come, first
    served, no permit leaks, and the cancelled futures do not pile up in the queue."""
    limiter = ConcurrencyLimiter(4)
    held = [await limiter.acquire() for _ in range(4)]
    order: list[int] = []

    async def wait(n: int) -> None:
        epoch = await limiter.acquire()
        order.append(n)
        await asyncio.sleep(0)
        limiter.release(epoch)

    waiters = [asyncio.ensure_future(wait(n)) for n in range(5000)]
    await asyncio.sleep(0)
    cancelled = {n for n in range(5000) if n % 3}
    for n in sorted(cancelled, reverse=True):
        waiters[n].cancel()
    await asyncio.sleep(0)
    assert len(limiter._waiters) < 5000  # compacted as the cancelled ones came to outnumber
    assert f"waiting={5000 - len(cancelled)}" in repr(limiter)
    for epoch in held:
        limiter.release(epoch)
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert order == [n for n in range(5000) if n not in cancelled]
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == len(cancelled)
    assert limiter.in_flight == 0


async def test_a_newcomer_is_not_held_back_by_cancelled_waiters() -> None:
    """With only cancelled futures left in the queue, a free permit is taken at once."""
    limiter = ConcurrencyLimiter(1)
    epoch = await limiter.acquire()
    waiters = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    limiter.release(epoch)
    assert await asyncio.wait_for(limiter.acquire(), timeout=30) == 0
    assert limiter.in_flight == 1


async def test_adaptive_limiter_halves_once_per_burst_and_grows_back() -> None:
    """429s from one round halve the limit once; after a pause, one slot per round comes back."""
    now = [0.0]
    limiter = ConcurrencyLimiter(16, adaptive=True, clock=lambda: now[0])
    epochs = [await limiter.acquire() for _ in range(16)]
    for epoch in epochs:
        limiter.release(epoch, "rate_limited")
    assert limiter.limit == 8
    assert limiter.decreases == 1
    limiter.release(await limiter.acquire(), "rate_limited", retry_after=3.0)
    assert limiter.limit == 4
    # Growth holds still for the server's Retry-After (at least a second) after a 429.
    for _ in range(50):
        limiter.release(await limiter.acquire(), "ok")
    assert limiter.limit == 4
    now[0] += 3.0
    for _ in range(4 + 5):
        limiter.release(await limiter.acquire(), "ok")
    assert limiter.limit == 6
    for _ in range(200):
        limiter.release(await limiter.acquire(), "ok")
    assert limiter.limit == 16
    for _ in range(10):
        limiter.release(await limiter.acquire(), "rate_limited")
    assert limiter.limit == 1
    for _ in range(10):
        limiter.release(await limiter.acquire(), "ok")
    assert limiter.limit == 1  # a 429 without Retry-After still holds growth for a second


def test_fixed_limiter_ignores_rate_limits() -> None:
    """Without adaptive mode the limit never changes."""
    limiter = ConcurrencyLimiter(4)
    limiter._in_flight = 1
    limiter.release(0, "rate_limited")
    assert limiter.limit == 4
    assert "fixed" in repr(limiter)


@pytest.mark.parametrize(
    ("maximum", "held", "queued", "expected"),
    [
        (2, 0, False, 0),
        (2, 1, False, 0),
        (2, 2, False, -1),  # full
        (2, 1, True, -1),  # a free permit belongs to the queued caller
    ],
)
async def test_try_acquire_takes_a_free_permit_or_says_to_wait(
    maximum: int, held: int, queued: bool, expected: int
) -> None:
    limiter = ConcurrencyLimiter(maximum)
    for _ in range(held):
        assert limiter.try_acquire() == 0
    waiter: asyncio.Future[int] | None = None
    if queued:
        limiter.limit = held  # an adaptive decrease left the queue behind
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        limiter.limit = maximum
    assert limiter.try_acquire() == expected
    if waiter is not None:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
