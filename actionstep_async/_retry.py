"""Pure retry decisions: Retry-After parsing, jittered backoff, and what to do after an attempt.

:func:`next_step` is the whole policy of the resource client: given how one attempt ended it
says whether the call is done, needs a fresh token, should sleep and try again, or has failed.
The client's loop only does the I/O around it.
"""

from __future__ import annotations

import math
import random
from email.utils import parsedate_to_datetime
from typing import Final, NamedTuple, TypeAlias

import attrs

__all__ = [
    "DONE",
    "IDEMPOTENT_METHODS",
    "SAFE_METHODS",
    "Answered",
    "AttemptOutcome",
    "Done",
    "Fail",
    "Reauthorize",
    "RetryPolicy",
    "Sleep",
    "Step",
    "Unanswered",
    "backoff_delay",
    "is_idempotent",
    "next_step",
    "parse_retry_after",
    "retryable_failure",
    "retryable_status",
]

MAX_RETRY_AFTER = 3600.0
"""A server asking us to wait longer than an hour is treated as asking for an hour."""


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Garbage gives ``None`` (no hint); negative or past values give 0; huge ones are capped at
    :data:`MAX_RETRY_AFTER` so a hostile header cannot park a worker for days.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Full-jitter exponential backoff: uniform in ``[0, min(cap, base * 2**attempt)]``."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)


IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods whose repetition cannot create a second effect (RFC 9110 section 9.2.2)."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing on the server (RFC 9110 section 9.2.1)."""


@attrs.frozen
class RetryPolicy:
    """How hard the resource client tries before giving up.

    ``max_attempts`` counts every request sent, the first one included (1 disables retries);
    ``max_elapsed`` bounds the seconds spent on one call, waits included: a retry whose wait would
    cross it is not made. Waits grow as full-jitter exponential backoff from ``backoff_base`` up to
    ``backoff_cap``; a ``Retry-After`` from the server replaces the backoff and is spread by up to
    ``retry_after_jitter`` of itself so callers told the same thing do not come back in lockstep.
    ``statuses`` are retried for idempotent methods; POST is only ever retried on 429.

    A 429 *with* ``Retry-After`` is the server saying when to come back, so waiting is the right
    answer: such retries are bounded by time only, not by ``max_attempts``:
    ``rate_limited_elapsed`` seconds per call, ``bulk_rate_limited_elapsed`` for the pages of
    ``iterate()`` and the CLI's export. Failures without an answer and 5xx keep the shorter
    ``max_attempts`` / ``max_elapsed`` budget.
    """

    max_attempts: int = 5
    max_elapsed: float = 60.0
    rate_limited_elapsed: float = 120.0
    bulk_rate_limited_elapsed: float = 1800.0
    backoff_base: float = 0.25
    backoff_cap: float = 10.0
    retry_after_jitter: float = 0.2
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_elapsed < 0 or self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("max_elapsed, backoff_base and backoff_cap must not be negative")
        if self.rate_limited_elapsed < 0 or self.bulk_rate_limited_elapsed < 0:
            raise ValueError("rate_limited_elapsed budgets must not be negative")
        if not 0.0 <= self.retry_after_jitter <= 1.0:
            raise ValueError("retry_after_jitter must be between 0 and 1")

    def delay(
        self, attempt: int, retry_after: float | None, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` >= 1 were made)."""
        if retry_after is not None:
            return retry_after * (1.0 + (rng or random).uniform(0.0, self.retry_after_jitter))
        return backoff_delay(attempt - 1, base=self.backoff_base, cap=self.backoff_cap, rng=rng)

    def allows(self, attempt: int, elapsed: float, delay: float) -> bool:
        """Whether another attempt fits the budget after ``attempt`` were made in ``elapsed`` s."""
        return attempt < self.max_attempts and elapsed + delay <= self.max_elapsed

    def allows_rate_limited(self, elapsed: float, delay: float, *, bulk: bool) -> bool:
        """Whether waiting out one more 429 ``Retry-After`` fits the time budget."""
        budget = self.bulk_rate_limited_elapsed if bulk else self.rate_limited_elapsed
        return elapsed + delay <= budget


def is_idempotent(method: str) -> bool:
    """True for methods that may be repeated without a second effect on the server."""
    return method in IDEMPOTENT_METHODS


def retryable_status(policy: RetryPolicy, method: str, status: int) -> bool:
    """Whether an answer with ``status`` may be retried for ``method``.

    A 429 means the server refused the request without processing it, so even a POST may be sent
    again; a 5xx on a POST may have followed a partial write, so it never is.
    """
    if status not in policy.statuses:
        return False
    return status == 429 or is_idempotent(method)


def retryable_failure(method: str, *, sent: bool) -> bool:
    """Whether a request that got no response may be retried.

    ``sent`` is False only when the connection failed before any byte of the request left (DNS,
    refused, connect timeout): then even a POST cannot have reached the server.
    """
    return is_idempotent(method) or not sent


# The two outcomes are NamedTuples rather than attrs classes: one is built per request, and a
# tuple is the cheapest immutable value Python makes.
class Answered(NamedTuple):
    """The attempt got a response: its status and ``Retry-After`` in seconds (None if absent)."""

    status: int
    retry_after: float | None = None


class Unanswered(NamedTuple):
    """The attempt got no response; ``may_have_been_sent`` as the transport reported it."""

    may_have_been_sent: bool


AttemptOutcome: TypeAlias = Answered | Unanswered


@attrs.frozen
class Done:
    """A 2xx: hand the response to the caller."""


@attrs.frozen
class Reauthorize:
    """A first 401: report the refused token to the TokenManager and try again with a new one."""


@attrs.frozen
class Sleep:
    """Wait ``seconds`` (backoff or the server's ``Retry-After``), then send the request again."""

    seconds: float


@attrs.frozen
class Fail:
    """Stop and raise. ``outcome_unknown``: a write may have been applied without an answer."""

    outcome_unknown: bool = False


Step: TypeAlias = Done | Reauthorize | Sleep | Fail

DONE: Final = Done()
"""The one Done value next_step returns, so a caller can test ``step is DONE``."""
_REAUTHORIZE: Final = Reauthorize()
_FAIL: Final = Fail()


def next_step(
    policy: RetryPolicy,
    method: str,
    outcome: AttemptOutcome,
    *,
    attempt: int,
    elapsed: float,
    reauthorized: bool,
    rng: random.Random | None = None,
    idempotent: bool | None = None,
    bulk: bool = False,
) -> Step:
    """What to do after attempt number ``attempt`` of ``method`` ended in ``outcome``.

    ``elapsed`` is the seconds spent on the call so far and ``reauthorized`` whether a token was
    already reported refused during it (a second 401 is final). ``rng`` draws the jitter.
    ``idempotent`` overrides what the method says, for a POST the protocol makes repeatable
    (re-sending part k of a known upload).
    ``bulk`` chooses the longer time budget for 429s with ``Retry-After``.
    """
    repeatable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
    if isinstance(outcome, Unanswered):
        sent = outcome.may_have_been_sent
        if repeatable or not sent:
            delay = policy.delay(attempt, None, rng=rng)
            if policy.allows(attempt, elapsed, delay):
                return Sleep(delay)
        return Fail(outcome_unknown=True) if sent and method not in SAFE_METHODS else _FAIL
    status = outcome.status
    if 200 <= status < 300:
        return DONE
    if status == 401 and not reauthorized:
        return _REAUTHORIZE
    if status in policy.statuses and (status == 429 or repeatable):
        delay = policy.delay(attempt, outcome.retry_after, rng=rng)
        # Retry-After: 0 says nothing about when to come back: that 429 counts attempts.
        if status == 429 and outcome.retry_after:
            if policy.allows_rate_limited(elapsed, delay, bulk=bulk):
                return Sleep(delay)
        elif policy.allows(attempt, elapsed, delay):
            return Sleep(delay)
    return _FAIL
