"""Pure retry arithmetic: Retry-After parsing and jittered exponential backoff."""

from __future__ import annotations

import math
import random
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "parse_retry_after"]

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
