"""Retries and waits shown as they happen: a logging handler for the client's retry records."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .._client import RETRY_RECORD

__all__ = ["describe_retry", "reporting_retries"]

_REASONS = {
    429: "rate limited",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
    "ClientConnectorError": "connection refused",
    "ConnectionRefusedError": "connection refused",
    "ServerDisconnectedError": "server disconnected",
    "TimeoutError": "timed out",
    "ConnectError": "connection refused",  # our error for a connection that never opened
    "RequestTimeout": "timed out",
    "TransportError": "connection failed",
}


def describe_retry(reason: int | str, delay: float, attempt: int, attempts: int) -> str:
    """One progress line: ``waiting 12 s: rate limited (attempt 3 of 8)``."""
    label = _REASONS.get(reason, f"HTTP {reason}" if isinstance(reason, int) else reason)
    if reason == 429:
        return f"waiting {delay:.1f} s: {label} (attempt {attempt} of {attempts})"
    return f"retrying in {delay:.1f} s: {label} (attempt {attempt} of {attempts})"


class _RetryHandler(logging.Handler):
    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        notice = getattr(record, RETRY_RECORD, None)
        if notice is not None:
            self._say(describe_retry(*notice))


@contextmanager
def reporting_retries(say: Callable[[str], None]) -> Iterator[None]:
    """Pass every retry the client makes to ``say`` while the block runs."""
    logger = logging.getLogger("actionstep_async.client")
    handler = _RetryHandler(say)
    previous = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
