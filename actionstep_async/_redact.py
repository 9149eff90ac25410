"""Scrubbing secrets out of server text before it goes into an exception or a log line.

A server may echo what it was sent ("token XYZ has no scope", an ``error`` field quoting the
refresh token): every secret the library knows is replaced before such text is kept anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["REDACTED", "redact_text", "redact_value"]

REDACTED: Final = "[redacted]"


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by :data:`REDACTED`."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any, secrets: tuple[str, ...], *, depth: int = 0) -> Any:
    """A copy of a decoded JSON value with every string (keys too) redacted."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if depth > 32:  # deeper than any real error document: drop it rather than recurse on
        return None
    if isinstance(value, Mapping):
        return {
            redact_text(str(key), secrets): redact_value(item, secrets, depth=depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item, secrets, depth=depth + 1) for item in value]
    return value
