"""Property-based fuzzing of everything the token endpoint can send us."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actionstep_async import ActionstepError, Environment, Token
from actionstep_async._oauth import parse_token_response
from actionstep_async._retry import MAX_RETRY_AFTER, parse_retry_after

from .._hypothesis import examples

ENV = Environment.local("http://127.0.0.1:9")
SECRET = "fuzz-client-secret-9d1"

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
token_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": json_values,
        "refresh_token": json_values,
        "token_type": st.sampled_from(["bearer", "Bearer", "mac", ""]) | json_values,
        "expires_in": st.integers(-10, 10**12) | st.text(max_size=8) | json_values,
        "api_endpoint": st.sampled_from(
            ["http://127.0.0.1:9/api/", "https://evil.example/api/", "http://127.0.0.1:9/x/"]
        )
        | json_values,
        "orgkey": json_values,
        "scope": json_values,
        "error": st.sampled_from(["invalid_grant", "invalid_client", "x"]) | json_values,
        "error_description": json_values,
    },
)


def _check(status: int, body: bytes, headers: dict[str, str]) -> None:
    try:
        token = parse_token_response(
            status,
            headers,
            body,
            environment=ENV,
            sent_at=1000.0,
            now=1000.0,
            known_secrets=(SECRET,),
        )
    except ActionstepError as exc:
        message = str(exc)
        assert SECRET not in message
        return
    assert status == 200
    assert isinstance(token, Token)
    assert token.expires_at > token.issued_at
    assert token.api_endpoint == "http://127.0.0.1:9/api/"


@settings(max_examples=examples(400), deadline=None)
@given(
    status=st.sampled_from([200, 200, 200, 400, 401, 403, 429, 500, 503]),
    document=token_like | json_values,
    retry_after=st.none() | st.text(max_size=40),
)
def test_any_json_token_response_gives_a_token_or_a_typed_error(
    status: int, document: Any, retry_after: str | None
) -> None:
    """Arbitrary JSON documents yield a valid Token or an ActionstepError, never anything else."""
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if isinstance(document, dict) and "error_description" in document:
        document["error_description"] = f"echo {SECRET}"
    _check(status, json.dumps(document).encode(), headers)


@settings(max_examples=examples(300), deadline=None)
@given(status=st.integers(100, 599), body=st.binary(max_size=200))
def test_any_bytes_give_a_typed_error_or_token(status: int, body: bytes) -> None:
    """Arbitrary bytes (HTML, truncated JSON, binary) never escape as an untyped exception."""
    _check(status, body, {"Content-Type": "text/html"})


@settings(max_examples=examples(500), deadline=None)
@given(value=st.text(max_size=80) | st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{0,5})?", fullmatch=True))
def test_retry_after_is_bounded_or_absent(value: str) -> None:
    """Any Retry-After header gives None or a delay between 0 and the cap."""
    delay = parse_retry_after(value, now=1_700_000_000.0)
    assert delay is None or 0.0 <= delay <= MAX_RETRY_AFTER


def test_retry_after_accepts_http_dates_and_clamps_extremes() -> None:
    """HTTP dates are converted relative to now; negative and enormous values are clamped."""
    now = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now=now) == 10.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now=now) == 0.0
    assert parse_retry_after("-5", now=now) == 0.0
    assert parse_retry_after("99999999999", now=now) == MAX_RETRY_AFTER
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None
    assert parse_retry_after(" 3 ", now=now) == 3.0
