"""RefreshPolicy: when the TokenManager refreshes, and how it behaves when refreshing fails."""

from __future__ import annotations

import random
from typing import Final

import attrs

from ._tokens import Token

__all__ = ["CLAIM_MARGIN", "RefreshPolicy"]

CLAIM_MARGIN: Final = 15.0
"""Seconds a refresh claim may outlive the token request: the save and a slow store."""


@attrs.frozen
class RefreshPolicy:
    """When to refresh, and how to behave when refreshing fails.

    Windows scale with the token's lifetime so a 59-second token and a 12-hour token both get a
    sane refresh point. The advisory window starts ``advisory_fraction`` of the lifetime before
    expiry (at most ``advisory_cap`` seconds), moved later by up to ``jitter`` of itself so a fleet
    does not refresh in lockstep. The mandatory window is ``mandatory_fraction`` of the lifetime
    (at most ``mandatory_cap``).

    ``claim_timeout`` bounds how long a process waits for another one that claimed the refresh
    token and has not saved the result yet; it must exceed the token request timeout. ``None``
    (the default) sizes it from the refresher's ``timeout`` (the token request timeout): that
    timeout plus 15 seconds, or 45 seconds for a refresher without one.

    ``store_check_interval`` (H): while a key is in use, the manager reads its stored record in
    the background at most this often, and writes its own copy back when the store lost the key
    or holds an older token (a Redis restart without persistence, a failover to a lagging
    replica, a restored backup). ``restore_quarantine`` (Q, longer than H): a record written back
    like that is unconfirmed, and its refresh token is not spent until Q has passed, so a peer
    holding a newer copy replaces it first; ``invalid_grant`` likewise re-reads the store for up
    to Q before ReauthorizationRequired, in case a peer is about to write back a newer token.
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
    claim_timeout: float | None = None
    claim_poll: float = 0.1
    store_check_interval: float = 10.0
    restore_quarantine: float = 15.0

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.mandatory_fraction <= self.advisory_fraction * (1 - self.jitter) < 1:
            raise ValueError("need 0 <= mandatory_fraction <= advisory_fraction * (1 - jitter) < 1")
        if not 0 < self.store_check_interval < self.restore_quarantine:
            raise ValueError("need 0 < store_check_interval < restore_quarantine")
        if self.claim_timeout is not None and not self.claim_timeout > 0:
            raise ValueError("claim_timeout must be positive or None")

    def sized_for(self, request_timeout: float | None) -> RefreshPolicy:
        """This policy with ``claim_timeout`` filled in from the token request timeout."""
        if self.claim_timeout is not None:
            return self
        timeout = request_timeout if request_timeout is not None else 30.0
        return attrs.evolve(self, claim_timeout=timeout + CLAIM_MARGIN)

    @property
    def claim_limit(self) -> float:
        """``claim_timeout``, or its default for a 30-second token request."""
        return self.claim_timeout if self.claim_timeout is not None else 30.0 + CLAIM_MARGIN

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
