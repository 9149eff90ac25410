"""RefreshPolicy: when the TokenManager refreshes, and how it behaves when refreshing fails."""

from __future__ import annotations

import random

import attrs

from ._tokens import Token

__all__ = ["RefreshPolicy"]


@attrs.frozen
class RefreshPolicy:
    """When to refresh, and how to behave when refreshing fails.

    Windows scale with the token's lifetime so a 59-second token and a 12-hour token both get a
    sane refresh point. The advisory window starts ``advisory_fraction`` of the lifetime before
    expiry (at most ``advisory_cap`` seconds), moved later by up to ``jitter`` of itself so a fleet
    does not refresh in lockstep. The mandatory window is ``mandatory_fraction`` of the lifetime
    (at most ``mandatory_cap``).

    ``claim_timeout`` bounds how long a process waits for another one that claimed the refresh
    token and has not saved the result yet; it must exceed the token request timeout.
    """

    advisory_fraction: float = 0.10
    advisory_cap: float = 600.0
    mandatory_fraction: float = 0.02
    mandatory_cap: float = 60.0
    jitter: float = 0.5
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    reauthorization_ttl: float = 300.0
    reactive_cooldown: float = 10.0
    save_retry_base: float = 0.5
    save_retry_cap: float = 30.0
    claim_timeout: float = 120.0
    claim_poll: float = 0.1

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.mandatory_fraction <= self.advisory_fraction * (1 - self.jitter) < 1:
            raise ValueError("need 0 <= mandatory_fraction <= advisory_fraction * (1 - jitter) < 1")

    def windows(self, token: Token, rng: random.Random) -> tuple[float, float]:
        """Absolute (advisory_at, mandatory_at) times for ``token``."""
        lifetime = max(token.lifetime, 0.0)
        advisory = min(self.advisory_cap, self.advisory_fraction * lifetime)
        advisory *= 1.0 - self.jitter * rng.random()
        mandatory = min(self.mandatory_cap, self.mandatory_fraction * lifetime, advisory)
        return token.expires_at - advisory, token.expires_at - mandatory

    def needs_refresh(self, token: Token, now: float) -> bool:
        """True once ``token`` is inside its (un-jittered) advisory window."""
        margin = min(self.advisory_cap, self.advisory_fraction * max(token.lifetime, 0.0))
        return now >= token.expires_at - margin
