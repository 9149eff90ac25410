"""The refresh decision as a table: (stored, own, rejected, claim, now, policy) -> next step."""

from __future__ import annotations

import attrs
import pytest

from actionstep_async import RefreshPolicy, Token
from actionstep_async._refresh_decision import (
    Adopt,
    Decision,
    Fail,
    Refresh,
    Restore,
    Serve,
    Wait,
    check_stored,
    decide,
    is_older,
)

NOW = 1_000_000.0
POLICY = RefreshPolicy(
    jitter=0.0, claim_timeout=120.0, claim_poll=0.1, store_check_interval=10, restore_quarantine=15
)


def token(
    name: str, *, issued: float = NOW - 100, lifetime: float = 3600.0, **extra: object
) -> Token:
    fields: dict[str, object] = {
        "access_token": f"access-{name}",
        "refresh_token": f"refresh-{name}",
        "issued_at": issued,
        "expires_at": issued + lifetime,
        "api_endpoint": "https://ap-southeast-2.actionstep.com/api/",
        "version": 1,
    }
    fields.update(extra)
    return Token(**fields)  # type: ignore[arg-type]


FRESH = token("fresh")
OTHER = token("other", version=2)
DUE = token("due", issued=NOW - 3500)  # inside its advisory window (last 360 s of 3600)
CLAIMED_NOW = attrs.evolve(FRESH, refresh_claimed_at=NOW - 5)
CLAIMED_LONG_AGO = attrs.evolve(FRESH, refresh_claimed_at=NOW - 121)
RESTORED = attrs.evolve(FRESH, restored_at=NOW)
PREVIOUS = token("previous", issued=NOW - 3700, version=5)  # one refresh before FRESH
NEWER = token("newer", issued=NOW - 10, version=1)  # refreshed after a store loss: version reset
QUARANTINED = attrs.evolve(DUE, restored_at=NOW - 5)  # restored 5 s ago, Q is 15 s
RELEASED = attrs.evolve(DUE, restored_at=NOW - 16)  # quarantine over
CLAIMED_PREVIOUS = attrs.evolve(PREVIOUS, refresh_claimed_at=NOW - 1)


@attrs.frozen
class Case:
    stored: Token | None
    own: Token | None
    rejected: Token | None
    expected: Decision
    own_claim: float | None = None
    unsaved: bool = False


CASES: dict[str, Case] = {
    "nothing anywhere: authorize first": Case(None, None, None, Fail("missing")),
    "a sibling stored a fresh token: adopt it": Case(OTHER, FRESH, None, Adopt(OTHER)),
    "the store still holds the token we came to refresh": Case(FRESH, FRESH, None, Refresh(FRESH)),
    "stored token is due too: refresh it": Case(DUE, None, None, Refresh(DUE)),
    "a fresh stored token and no copy of our own: adopt": Case(FRESH, None, None, Adopt(FRESH)),
    "401 to the stored token: refresh it": Case(FRESH, FRESH, FRESH, Refresh(FRESH)),
    "401 to an older token, the store has another: adopt": Case(OTHER, FRESH, FRESH, Adopt(OTHER)),
    "401 to a due token a sibling replaced: adopt": Case(OTHER, DUE, DUE, Adopt(OTHER)),
    "store lost the key: write our copy back, unconfirmed": Case(
        None, FRESH, None, Restore(RESTORED, 0)
    ),
    "store lost the key, 401 to another token: still write our copy back first": Case(
        None, FRESH, OTHER, Restore(RESTORED, 0)
    ),
    "store rolled back one refresh: never adopt it, write ours over it": Case(
        PREVIOUS, FRESH, None, Restore(RESTORED, 5)
    ),
    "store rolled back, higher version but issued earlier: still older": Case(
        attrs.evolve(PREVIOUS, version=9), FRESH, FRESH, Restore(RESTORED, 9)
    ),
    "rolled back to a record someone is spending: ours goes over it": Case(
        CLAIMED_PREVIOUS, FRESH, None, Restore(RESTORED, 5)
    ),
    "refreshed after a store loss (version restarted at 1): newer, adopt": Case(
        NEWER, FRESH, None, Adopt(NEWER)
    ),
    "restored record in quarantine, due: wait for a newer copy": Case(
        QUARANTINED, QUARANTINED, None, Wait(0.1)
    ),
    "restored record in quarantine, 401 to an older token: adopt it": Case(
        QUARANTINED, PREVIOUS, PREVIOUS, Adopt(QUARANTINED)
    ),
    "quarantine over: spend the restored refresh token": Case(
        RELEASED, RELEASED, None, Refresh(RELEASED)
    ),
    "our newest token never reached the store: refresh it unclaimed": Case(
        OTHER, FRESH, None, Refresh(FRESH, claim=False), unsaved=True
    ),
    "unsaved, 401 to an older token: serve ours": Case(
        OTHER, FRESH, OTHER, Serve(FRESH), unsaved=True
    ),
    "a sibling is spending the refresh token: wait one poll": Case(
        CLAIMED_NOW, FRESH, None, Wait(0.1)
    ),
    "our own claim is still there: the refresh was interrupted": Case(
        CLAIMED_NOW, FRESH, None, Fail("interrupted", claim_age=5, own=True), own_claim=NOW - 5
    ),
    "a claim older than the timeout: interrupted": Case(
        CLAIMED_LONG_AGO, FRESH, None, Fail("interrupted", claim_age=121)
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case: Case) -> None:
    """Each row of the table is one situation a refresh flight can find under the lock."""
    decision = decide(
        case.stored,
        case.own,
        case.rejected,
        own_claim=case.own_claim,
        unsaved=case.unsaved,
        now=NOW,
        policy=POLICY,
    )
    assert decision == case.expected


def test_wait_never_outlasts_the_claim_timeout() -> None:
    """A claim about to time out is waited for only until it does."""
    nearly = attrs.evolve(FRESH, refresh_claimed_at=NOW - 119.95)
    decision = decide(nearly, None, None, own_claim=None, unsaved=False, now=NOW, policy=POLICY)
    assert isinstance(decision, Wait)
    assert decision.seconds == pytest.approx(0.05)


CHECKS: dict[str, tuple[Token | None, Token | None, Restore | Adopt | None]] = {
    "nothing held: nothing to check": (FRESH, None, None),
    "store lost the key: repair it": (None, FRESH, Restore(RESTORED, 0)),
    "store rolled back: repair it": (PREVIOUS, FRESH, Restore(RESTORED, 5)),
    "same token: nothing to do": (FRESH, FRESH, None),
    "same token written back at a lower version: nothing to do": (
        attrs.evolve(FRESH, version=1),
        attrs.evolve(FRESH, version=7),
        None,
    ),
    "a peer stored a newer token: adopt it": (NEWER, FRESH, Adopt(NEWER)),
    "a peer is spending a newer token: leave it to the flight": (
        attrs.evolve(NEWER, refresh_claimed_at=NOW),
        FRESH,
        None,
    ),
}


@pytest.mark.parametrize(("stored", "own", "expected"), CHECKS.values(), ids=CHECKS.keys())
def test_background_check(
    stored: Token | None, own: Token | None, expected: Restore | Adopt | None
) -> None:
    """The background check repairs lost or older records and never adopts an older one."""
    assert check_stored(stored, own, now=NOW) == expected


def test_older_means_earlier_in_the_chain_not_a_lower_version() -> None:
    """Issue time orders the chain; the version only breaks ties between equal issue times."""
    assert is_older(PREVIOUS, FRESH)
    assert not is_older(FRESH, PREVIOUS)
    assert is_older(FRESH, NEWER)  # NEWER has version 1, FRESH version 1, issued later
    assert not is_older(attrs.evolve(FRESH, version=1), attrs.evolve(FRESH, version=9))
    twin = attrs.evolve(FRESH, access_token="twin", version=3)
    assert is_older(FRESH, twin)
