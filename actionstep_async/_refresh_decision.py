"""What a refresh flight does next, decided from what it knows: one pure function, no I/O.

The TokenManager holds the store's lock, reads the stored token and asks :func:`decide`; it then
carries out the answer (adopt, serve, refresh, wait or fail) and asks again when the store changed.
"""

from __future__ import annotations

from typing import Literal

import attrs

from ._refresh_policy import RefreshPolicy
from ._tokens import Token

__all__ = ["Adopt", "Decision", "Fail", "Refresh", "Serve", "Wait", "decide"]


@attrs.frozen
class Serve:
    """Our own token is good: keep using it (the store is behind us, nothing to refresh)."""

    token: Token


@attrs.frozen
class Adopt:
    """The stored token is good (another process refreshed): take it instead of refreshing."""

    token: Token


@attrs.frozen
class Refresh:
    """Spend ``basis``'s refresh token, claiming it in the store first unless ``claim`` is off."""

    basis: Token
    claim: bool = True


@attrs.frozen
class Wait:
    """Another process is spending the refresh token: read the store again after ``seconds``."""

    seconds: float


FailReason = Literal["missing", "interrupted"]


@attrs.frozen
class Fail:
    """Nothing safe is left to do: ``missing`` (never authorized) or ``interrupted`` (a refresh
    claimed the refresh token and never saved its result)."""

    reason: FailReason


Decision = Serve | Adopt | Refresh | Wait | Fail


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
        basis, mine = own, True
    elif stored is None and own is not None:
        # The store lost the key: carry on from our copy and write it back as a new record.
        basis, mine = attrs.evolve(own, version=0, refresh_claimed_at=None), True
    elif stored is not None:
        basis, mine = stored, False
    else:
        return Fail("missing")
    claimed_at = basis.refresh_claimed_at
    if claimed_at is not None:
        age = now - claimed_at
        if claimed_at == own_claim or age >= policy.claim_timeout:
            return Fail("interrupted")
        return Wait(min(policy.claim_poll, policy.claim_timeout - age))
    if not _is_usable(basis, own, rejected, now, policy):
        return Refresh(basis, claim=not unsaved)
    return Serve(basis) if mine else Adopt(basis)


def _is_usable(
    basis: Token, own: Token | None, rejected: Token | None, now: float, policy: RefreshPolicy
) -> bool:
    if rejected is not None:
        return basis.access_token != rejected.access_token
    if own is not None and basis.access_token == own.access_token:
        return False  # the store still holds the very token that sent us here
    return not policy.needs_refresh(basis, now)
