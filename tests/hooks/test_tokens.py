"""URL tokens: minted per subscription, checked with the secret alone, never shown."""

from __future__ import annotations

import pytest

from actionstep_async import ConfigurationError, HookSecret, InvalidRequestError
from actionstep_async._hook_tokens import check_target, redact_target, split_target

from .conftest import SECRET


def test_minted_tokens_verify_and_differ() -> None:
    tokens = {SECRET.mint() for _ in range(100)}
    assert len(tokens) == 100
    assert all(SECRET.verify(token) for token in tokens)


def test_another_secret_rejects_them() -> None:
    other = HookSecret.generate()
    assert not other.verify(SECRET.mint())


@pytest.mark.parametrize(
    "token",
    [None, "", ".", "abc", "abc.", ".abc", "a" * 200, "a.b.c", "nonce.AAAAAAAAAAAAAAAAAAAAAA"],
)
def test_malformed_or_forged_tokens_fail(token: str | None) -> None:
    assert not SECRET.verify(token)


def test_tampered_mac_fails() -> None:
    nonce, _, mac = SECRET.mint().partition(".")
    flipped = ("B" if mac[0] == "A" else "A") + mac[1:]
    assert not SECRET.verify(f"{nonce}.{flipped}")


def test_sign_keeps_the_query_and_owns_recognises_it() -> None:
    url = SECRET.sign("https://example.com/hooks?tenant=7")
    base, token = split_target(url)
    assert base == "https://example.com/hooks?tenant=7"
    assert SECRET.owns(url)
    assert not SECRET.owns(base)
    assert token is not None
    assert token not in redact_target(url)


def test_repr_and_str_hide_the_secret() -> None:
    assert SECRET.reveal() not in repr(SECRET)
    assert SECRET.reveal() not in str(SECRET)


@pytest.mark.parametrize("secret", ["short", 12345])
def test_weak_secrets_are_refused(secret: object) -> None:
    with pytest.raises(ConfigurationError):
        HookSecret(secret)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "/relative",
        "https://example.com/x#frag",
        "https://example.com/x?hook_token=mine",
        "https://exämple.com/x",
    ],
)
def test_unusable_targets_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_target(url)
