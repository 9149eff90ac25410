"""The Token value: secrecy, expiry helpers and the JSON form stores persist."""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actionstep_async import ResponseDecodeError, Token
from actionstep_async._tokens import dump_token, load_token

from .conftest import SECRET_ACCESS, SECRET_REFRESH


def make_token(**overrides: object) -> Token:
    fields: dict[str, object] = {
        "access_token": SECRET_ACCESS,
        "refresh_token": SECRET_REFRESH,
        "expires_at": 5000.0,
        "issued_at": 1400.0,
        "api_endpoint": "https://ap-southeast-2.actionstep.com/api/",
        "orgkey": "demoorg",
        "scopes": ("actions", "participants"),
        "version": 3,
    }
    fields.update(overrides)
    return Token(**fields)  # type: ignore[arg-type]


def test_repr_and_str_hide_secrets_but_show_a_fingerprint() -> None:
    """Neither repr nor str shows the access or refresh token; a fingerprint identifies it."""
    token = make_token()
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert SECRET_ACCESS not in text
        assert SECRET_REFRESH not in text
    assert token.fingerprint in str(token)
    assert len(token.fingerprint) == 10
    assert token.fingerprint != make_token(access_token="other").fingerprint


def test_expiry_helpers_use_the_injected_clock() -> None:
    """expires_in reads the clock it is given."""
    token = make_token()
    assert token.lifetime == 3600.0
    assert token.expires_in(clock=lambda: 4000.0) == 1000.0
    assert token.expires_in(clock=lambda: 5001.0) == -1.0
    assert token.authorization == f"Bearer {SECRET_ACCESS}"


def test_token_is_immutable() -> None:
    """A Token cannot be changed in place; attrs.evolve makes a new one."""
    token = make_token()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        token.version = 9  # type: ignore[misc]
    assert attrs.evolve(token, version=9).version == 9


@given(
    access=st.text(min_size=1, max_size=50),
    refresh=st.text(min_size=1, max_size=50),
    expires_at=st.floats(allow_nan=False, allow_infinity=False),
    orgkey=st.none() | st.text(max_size=20),
    scopes=st.lists(st.text(min_size=1, max_size=10), max_size=4).map(tuple),
    version=st.integers(min_value=0, max_value=2**40),
)
def test_json_round_trip(
    access: str,
    refresh: str,
    expires_at: float,
    orgkey: str | None,
    scopes: tuple[str, ...],
    version: int,
) -> None:
    """Property: dump_token then load_token gives back an equal Token."""
    token = make_token(
        access_token=access,
        refresh_token=refresh,
        expires_at=expires_at,
        orgkey=orgkey,
        scopes=scopes,
        version=version,
    )
    assert load_token(dump_token(token)) == token


def test_dump_keeps_absolute_timestamps_and_extra_fields() -> None:
    """The JSON form stores absolute times, and extra fields are ignored on load."""
    document = json.loads(dump_token(make_token(), key="k1"))
    assert document["expires_at"] == 5000.0
    assert document["issued_at"] == 1400.0
    assert document["key"] == "k1"
    assert load_token(json.dumps(document)) == make_token()


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b'{"access_token": "a"}',
        json.dumps({**json.loads(dump_token(make_token())), "expires_at": "soon"}).encode(),
        json.dumps({**json.loads(dump_token(make_token())), "access_token": 5}).encode(),
        json.dumps({**json.loads(dump_token(make_token())), "version": True}).encode(),
        json.dumps({**json.loads(dump_token(make_token())), "scopes": "actions"}).encode(),
        json.dumps({**json.loads(dump_token(make_token())), "scopes": {"a": 1}}).encode(),
    ],
)
def test_corrupt_documents_raise_without_echoing_secrets(document: bytes) -> None:
    """Torn, truncated or mistyped token documents raise ResponseDecodeError with no secret."""
    with pytest.raises(ResponseDecodeError) as info:
        load_token(document)
    assert SECRET_ACCESS not in str(info.value)
    assert SECRET_REFRESH not in str(info.value)
