"""Small helpers for tests of code that uses actionstep-async: a clock, tokens, quick retries."""

from __future__ import annotations

import itertools
import time
from typing import Final

from .._retry import RetryPolicy
from .._tokens import Token

__all__ = ["FAST_RETRY", "FakeClock", "make_token"]

FAST_RETRY: Final = RetryPolicy(
    max_attempts=4, max_elapsed=10.0, backoff_base=0.01, backoff_cap=0.05
)
"""Four attempts with millisecond backoff, so retry tests stay quick."""

DEFAULT_API_ENDPOINT: Final = "https://ap-southeast-2.actionstep.com/api/"

_serial = itertools.count(1)


class FakeClock:
    """A wall clock the test moves by hand: pass it as ``clock=``, then ``advance`` it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __repr__(self) -> str:
        return f"FakeClock({self.now})"

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_token(
    *,
    lifetime: float = 3600.0,
    now: float | None = None,
    api_endpoint: str = DEFAULT_API_ENDPOINT,
    scopes: tuple[str, ...] = ("all",),
    access_token: str | None = None,
    refresh_token: str | None = None,
    orgkey: str | None = None,
) -> Token:
    """A valid bearer token issued ``now`` (default: the real time) that lives ``lifetime`` s.

    Each call makes distinct access and refresh tokens unless they are given.
    """
    issued = time.time() if now is None else now
    n = next(_serial)
    return Token(
        access_token=access_token or f"test-access-{n}",
        refresh_token=refresh_token or f"test-refresh-{n}",
        expires_at=issued + lifetime,
        issued_at=issued,
        api_endpoint=api_endpoint,
        scopes=scopes,
        orgkey=orgkey,
    )
