"""next_step, the resource client's whole retry policy, as tables of cases."""

from __future__ import annotations

import random

import pytest

from actionstep_async._retry import (
    Answered,
    AttemptOutcome,
    Done,
    Fail,
    Reauthorize,
    RetryPolicy,
    Sleep,
    Step,
    Unanswered,
    next_step,
)

# No jitter on Retry-After, and a backoff ceiling of 0 at attempt 1: every Sleep is predictable.
POLICY = RetryPolicy(
    max_attempts=3,
    max_elapsed=10.0,
    backoff_base=0.0,
    backoff_cap=0.0,
    retry_after_jitter=0.0,
    rate_limited_elapsed=10.0,
    bulk_rate_limited_elapsed=100.0,
)

ANSWERS: list[tuple[str, str, AttemptOutcome, int, float, bool, Step]] = [
    # (case, method, outcome, attempt, elapsed, reauthorized, expected)
    ("2xx is done", "GET", Answered(200), 1, 0.0, False, Done()),
    ("204 is done", "DELETE", Answered(204), 1, 0.0, False, Done()),
    ("201 on POST is done", "POST", Answered(201), 3, 9.0, True, Done()),
    ("first 401 reauthorizes", "GET", Answered(401), 1, 0.0, False, Reauthorize()),
    ("first 401 reauthorizes a POST", "POST", Answered(401), 1, 0.0, False, Reauthorize()),
    ("second 401 fails", "GET", Answered(401), 1, 0.0, True, Fail()),
    ("400 fails", "GET", Answered(400), 1, 0.0, False, Fail()),
    ("403 fails", "PUT", Answered(403), 1, 0.0, False, Fail()),
    ("404 fails", "GET", Answered(404), 1, 0.0, False, Fail()),
    ("a redirect fails", "GET", Answered(302), 1, 0.0, False, Fail()),
    ("500 is not retried", "GET", Answered(500), 1, 0.0, False, Fail()),
    ("503 GET sleeps", "GET", Answered(503), 1, 0.0, False, Sleep(0.0)),
    ("503 PUT sleeps", "PUT", Answered(503), 1, 0.0, False, Sleep(0.0)),
    ("503 DELETE sleeps", "DELETE", Answered(503), 1, 0.0, False, Sleep(0.0)),
    ("503 POST fails: it may be applied", "POST", Answered(503), 1, 0.0, False, Fail()),
    ("502 POST fails", "POST", Answered(502), 1, 0.0, False, Fail()),
    ("429 POST sleeps: not processed", "POST", Answered(429, 2.0), 1, 0.0, False, Sleep(2.0)),
    ("429 honours Retry-After", "GET", Answered(429, 1.5), 1, 0.0, False, Sleep(1.5)),
    ("503 honours Retry-After", "GET", Answered(503, 4.0), 2, 0.0, False, Sleep(4.0)),
    ("attempts spent", "GET", Answered(429), 3, 0.0, False, Fail()),
    ("503 attempts spent", "GET", Answered(503, 1.0), 3, 0.0, False, Fail()),
    ("Retry-After: attempts do not count", "GET", Answered(429, 1.0), 30, 0.0, False, Sleep(1.0)),
    ("wait would cross the 429 budget", "GET", Answered(429, 3.0), 1, 7.5, False, Fail()),
    ("wait ends exactly at the budget", "GET", Answered(429, 3.0), 1, 7.0, False, Sleep(3.0)),
    ("429 after a reauthorization", "GET", Answered(429), 1, 0.0, True, Sleep(0.0)),
]

FAILURES: list[tuple[str, str, bool, int, float, Step]] = [
    # (case, method, may_have_been_sent, attempt, elapsed, expected)
    ("GET never sent sleeps", "GET", False, 1, 0.0, Sleep(0.0)),
    ("GET maybe sent sleeps", "GET", True, 1, 0.0, Sleep(0.0)),
    ("PUT maybe sent sleeps: idempotent", "PUT", True, 1, 0.0, Sleep(0.0)),
    ("DELETE maybe sent sleeps", "DELETE", True, 2, 0.0, Sleep(0.0)),
    ("POST never sent sleeps", "POST", False, 1, 0.0, Sleep(0.0)),
    ("POST maybe sent: outcome unknown", "POST", True, 1, 0.0, Fail(outcome_unknown=True)),
    ("GET out of attempts fails plainly", "GET", True, 3, 0.0, Fail()),
    ("OPTIONS out of attempts fails plainly", "OPTIONS", True, 3, 0.0, Fail()),
    ("PUT out of attempts: unknown", "PUT", True, 3, 0.0, Fail(outcome_unknown=True)),
    ("DELETE out of time: unknown", "DELETE", True, 1, 10.5, Fail(outcome_unknown=True)),
    ("POST never sent, out of attempts", "POST", False, 3, 0.0, Fail()),
    ("GET never sent, out of time", "GET", False, 1, 11.0, Fail()),
]


@pytest.mark.parametrize(
    ("method", "outcome", "attempt", "elapsed", "reauthorized", "expected"),
    [case[1:] for case in ANSWERS],
    ids=[case[0] for case in ANSWERS],
)
def test_after_an_answer(
    method: str,
    outcome: AttemptOutcome,
    attempt: int,
    elapsed: float,
    reauthorized: bool,
    expected: Step,
) -> None:
    step = next_step(
        POLICY, method, outcome, attempt=attempt, elapsed=elapsed, reauthorized=reauthorized
    )
    assert step == expected


@pytest.mark.parametrize(
    ("method", "sent", "attempt", "elapsed", "expected"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_after_no_answer(
    method: str, sent: bool, attempt: int, elapsed: float, expected: Step
) -> None:
    for reauthorized in (False, True):  # a token refusal earlier in the call changes nothing
        outcome = Unanswered(may_have_been_sent=sent)
        step = next_step(
            POLICY, method, outcome, attempt=attempt, elapsed=elapsed, reauthorized=reauthorized
        )
        assert step == expected


@pytest.mark.parametrize(
    ("statuses", "status", "expected"),
    [
        (frozenset({500}), 500, Sleep),
        (frozenset({429}), 503, Fail),
        (frozenset(), 429, Fail),
    ],
)
def test_the_policy_chooses_the_retried_statuses(
    statuses: frozenset[int], status: int, expected: type
) -> None:
    policy = RetryPolicy(statuses=statuses, backoff_base=0.0, backoff_cap=0.0)
    step = next_step(policy, "GET", Answered(status), attempt=1, elapsed=0.0, reauthorized=False)
    assert isinstance(step, expected)


def test_backoff_draws_from_the_rng_within_the_ceiling() -> None:
    """Without Retry-After the wait is full-jitter backoff: seeded rng, same waits."""
    policy = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_cap=8.0, max_elapsed=100.0)
    waits = []
    for seed in (1, 1, 2):
        step = next_step(
            policy,
            "GET",
            Unanswered(may_have_been_sent=True),
            attempt=3,
            elapsed=0.0,
            reauthorized=False,
            rng=random.Random(seed),
        )
        assert isinstance(step, Sleep)
        assert 0.0 <= step.seconds <= 4.0  # base * 2**(attempt - 1)
        waits.append(step.seconds)
    assert waits[0] == waits[1] != waits[2]


BULK: list[tuple[str, AttemptOutcome, int, float, bool, Step]] = [
    # (case, outcome, attempt, elapsed, bulk, expected)
    ("single call: past its 429 budget", Answered(429, 5.0), 40, 8.0, False, Fail()),
    ("bulk: same wait fits", Answered(429, 5.0), 40, 8.0, True, Sleep(5.0)),
    ("bulk: past the bulk budget", Answered(429, 5.0), 400, 96.0, True, Fail()),
    ("bulk: 429 without Retry-After counts attempts", Answered(429), 3, 0.0, True, Fail()),
    ("bulk: 503 keeps the short budget", Answered(503, 1.0), 1, 9.5, True, Fail()),
    ("bulk: a dropped connection keeps it too", Unanswered(False), 3, 0.0, True, Fail()),
]


@pytest.mark.parametrize(
    ("outcome", "attempt", "elapsed", "bulk", "expected"),
    [case[1:] for case in BULK],
    ids=[case[0] for case in BULK],
)
def test_rate_limited_budgets(
    outcome: AttemptOutcome, attempt: int, elapsed: float, bulk: bool, expected: Step
) -> None:
    step = next_step(
        POLICY, "GET", outcome, attempt=attempt, elapsed=elapsed, reauthorized=False, bulk=bulk
    )
    assert step == expected
