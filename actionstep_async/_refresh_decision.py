"""What a refresh flight does next, decided from what it knows: pure functions, no I/O.

The TokenManager holds the store's lock, reads the stored token and asks :func:`decide`; it then
carries out the answer (serve, adopt, restore, refresh, wait or fail) and asks again whenever the
store changed. :func:`check_stored` is the same judgement for the background check of a key.
"""

from __future__ import annotations

from typing import Literal

import attrs

from ._refresh_policy import RefreshPolicy
from ._tokens import Token

__all__ = [
    "Adopt",
    "Decision",
    "Fail",
    "Refresh",
    "Restore",
    "Serve",
    "Wait",
    "check_stored",
    "decide",
    "is_older",
]


@attrs.frozen
class Serve:
    """Our own token is good: keep using it (the store is behind us, nothing to refresh)."""

    token: Token


@attrs.frozen
class Adopt:
    """The stored token is good (another process refreshed): take it instead of refreshing."""

    token: Token


@attrs.frozen
class Restore:
    """The store lost the key or holds an older token: write ``token`` (our copy, marked as
    unconfirmed) over version ``expected_version``, then decide again."""

    token: Token
    expected_version: int


@attrs.frozen
class Refresh:
    """Spend ``basis``'s refresh token, claiming it in the store first unless ``claim`` is off."""

    basis: Token
    claim: bool = True


@attrs.frozen
class Wait:
    """Read the store again after ``seconds``: another process is spending the refresh token, or
    a restored record is still in quarantine."""

    seconds: float


FailReason = Literal["missing", "interrupted"]


@attrs.frozen
class Fail:
    """Nothing safe is left to do: ``missing`` (never authorized) or ``interrupted`` (a refresh
    claimed the refresh token ``claim_age`` seconds ago and never saved its result; ``own``: that
    refresh was this process's)."""

    reason: FailReason
    claim_age: float = 0.0
    own: bool = False


Decision = Serve | Adopt | Restore | Refresh | Wait | Fail


def is_older(candidate: Token, than: Token) -> bool:
    """Whether ``candidate`` is an earlier link of the refresh chain that produced ``than``.

    Issue time first (each refresh is issued after the one it replaces), then the store version
    (the same issue time means the same grant). A different access token is required: the same
    token written back at a lower version after a store loss is not older.
    """
    if candidate.access_token == than.access_token:
        return False
    return (candidate.issued_at, candidate.version) < (than.issued_at, than.version)


def decide(
    stored: Token | None,
    own: Token | None,
    rejected: Token | None,
    *,
    own_claim: float | None,
    unsaved: bool,
    now: float,
    policy: RefreshPolicy,
) -> Decision:
    """The next step of a refresh of one key.

    ``stored`` was just read under the lock, ``own`` is this process's copy, ``rejected`` the token
    the API answered 401 to (``None`` for an expiry-driven refresh), ``own_claim`` the claim time
    this process wrote, ``unsaved`` whether ``own`` never reached the store.
    """
    if unsaved and own is not None:
        # Our newest token never reached the store: the stored refresh token is spent.
        return Refresh(own, claim=False) if _due(own, own, rejected, now, policy) else Serve(own)
    if own is not None and (stored is None or is_older(stored, own)):
        # The store lost the key or rolled back: never adopt (or spend) the older token.
        restored = attrs.evolve(own, refresh_claimed_at=None, restored_at=now)
        return Restore(restored, stored.version if stored is not None else 0)
    if stored is None:
        return Fail("missing")
    claimed_at = stored.refresh_claimed_at
    if claimed_at is not None:
        age = now - claimed_at
        if claimed_at == own_claim or age >= policy.claim_limit:
            return Fail("interrupted", claim_age=age, own=claimed_at == own_claim)
        return Wait(min(policy.claim_poll, policy.claim_limit - age))
    if not _due(stored, own, rejected, now, policy):
        return Adopt(stored)
    quarantine_left = _quarantine_left(stored, now, policy)
    if quarantine_left > 0:
        return Wait(min(policy.claim_poll, quarantine_left))
    return Refresh(stored)


def check_stored(stored: Token | None, own: Token | None, *, now: float) -> Restore | Adopt | None:
    """The background check of a key: repair a lost or rolled-back record, adopt a newer one."""
    if own is None:
        return None
    if stored is None or is_older(stored, own):
        restored = attrs.evolve(own, refresh_claimed_at=None, restored_at=now)
        return Restore(restored, stored.version if stored is not None else 0)
    if stored.refresh_claimed_at is None and is_older(own, stored):
        return Adopt(stored)
    return None


def _quarantine_left(token: Token, now: float, policy: RefreshPolicy) -> float:
    if token.restored_at is None:
        return 0.0
    return token.restored_at + policy.restore_quarantine - now


def _due(
    basis: Token, own: Token | None, rejected: Token | None, now: float, policy: RefreshPolicy
) -> bool:
    """Whether ``basis`` must be refreshed rather than used."""
    if rejected is not None:
        return basis.access_token == rejected.access_token
    if own is not None and basis.access_token == own.access_token:
        return True  # the store still holds the very token that sent us here
    return policy.needs_refresh(basis, now)
