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
    Serve,
    Wait,
    decide,
)

NOW = 1_000_000.0
POLICY = RefreshPolicy(jitter=0.0, claim_timeout=120.0, claim_poll=0.1)


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
RESTORED = attrs.evolve(FRESH, version=0)


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
    "store lost the key: refresh from our copy as a new record": Case(
        None, FRESH, None, Refresh(RESTORED)
    ),
    "store lost the key, 401 to another token: serve our copy": Case(
        None, FRESH, OTHER, Serve(RESTORED)
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
        CLAIMED_NOW, FRESH, None, Fail("interrupted"), own_claim=NOW - 5
    ),
    "a claim older than the timeout: interrupted": Case(
        CLAIMED_LONG_AGO, FRESH, None, Fail("interrupted")
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
