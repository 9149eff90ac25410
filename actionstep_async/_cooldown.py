"""The token endpoint's cool-down, shared between processes (the TokenManager's hook point).

When the token endpoint answers 429 or 503 with ``Retry-After``, the process that got it backs
off; with a shared cool-down (``RedisRateBudget`` implements one) every other process waits it
out too before its own token request, instead of each spending one attempt to learn the same.
A failing cool-down store only costs that coordination: errors are logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

__all__ = ["TokenCooldown", "share_cooldown", "wait_cooldown"]

log = logging.getLogger("actionstep_async.tokens")

MAX_COOLDOWN: Final = 300.0
"""A shared cool-down never parks a refresh longer than this."""


class TokenCooldown(Protocol):
    async def cool_down(self, key: str, seconds: float) -> None: ...

    async def cooling_for(self, key: str) -> float: ...


async def wait_cooldown(cooldown: TokenCooldown | None, key: str) -> None:
    """Sleep out a cool-down another process was told about (nothing without one)."""
    if cooldown is None:
        return
    try:
        seconds = await cooldown.cooling_for(key)
    except Exception as exc:  # coordination is best effort: the refresh itself must go on
        log.warning("token cool-down for %r unreadable (%s); not waiting", key, type(exc).__name__)
        return
    if seconds > 0:
        log.info("token endpoint cooling down for %r: waiting %.1f s", key, seconds)
        await asyncio.sleep(min(seconds, MAX_COOLDOWN))


async def share_cooldown(cooldown: TokenCooldown, key: str, seconds: float) -> None:
    """Tell every process to wait ``seconds`` before asking the token endpoint for ``key``."""
    try:
        await cooldown.cool_down(key, min(seconds, MAX_COOLDOWN))
    except Exception as exc:  # best effort, as above
        log.warning("could not share the token cool-down for %r (%s)", key, type(exc).__name__)
