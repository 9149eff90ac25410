"""OAuth2 authorization-code flow: URL building, redirect checks, code exchange and refresh."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from actionstep_async import (
    PRODUCTION,
    AuthorizationDenied,
    ClientCredentialsError,
    ConfigurationError,
    Environment,
    OAuthClient,
    OAuthError,
    ReauthorizationRequired,
    RequestTimeout,
    ResponseDecodeError,
    StateMismatchError,
    Token,
    TokenEndpointUnavailable,
    TransportError,
    UnsafeEndpointError,
    build_authorize_url,
    parse_authorization_response,
)
from actionstep_async._oauth import token_request_body

from .conftest import SECRET_ACCESS, SECRET_CLIENT, SECRET_REFRESH, TokenEndpoint

OAuthFactory = Callable[..., OAuthClient]


def test_authorize_url_encodes_space_separated_scopes() -> None:
    """Scopes are joined by one space, percent-encoded, and decode back exactly."""
    url = build_authorize_url(
        PRODUCTION,
        client_id="my client",
        redirect_uri="https://app.example.com/cb?x=1&y=2",
        scopes="actions timerecords participants",
        state="s t",
    )
    assert url.startswith("https://go.actionstep.com/api/oauth/authorize?")
    assert "scope=actions%20timerecords%20participants" in url
    assert " " not in url
    params = parse_qs(urlsplit(url).query)
    assert params == {
        "response_type": ["code"],
        "client_id": ["my client"],
        "redirect_uri": ["https://app.example.com/cb?x=1&y=2"],
        "scope": ["actions timerecords participants"],
        "state": ["s t"],
    }


@pytest.mark.parametrize("scopes", ["", [], ["actions", "bad scope"], ["actions", ""]])
def test_invalid_scopes_are_a_configuration_error(scopes: object) -> None:
    """Empty scope lists and scopes containing whitespace are refused."""
    with pytest.raises(ConfigurationError):
        build_authorize_url(
            PRODUCTION,
            client_id="c",
            redirect_uri="r",
            scopes=scopes,  # type: ignore[arg-type]
            state="s",
        )


def test_authorization_request_has_fresh_unguessable_state() -> None:
    """Every authorization attempt gets its own long random state."""
    oauth = OAuthClient("c", SECRET_CLIENT, "http://127.0.0.1/cb")
    first = oauth.authorization_request(["actions", "participants", "actions"])
    second = oauth.authorization_request("actions")
    assert first.state != second.state
    assert len(first.state) >= 32
    assert first.scopes == ("actions", "participants")
    assert parse_qs(urlsplit(first.url).query)["state"] == [first.state]
    assert SECRET_CLIENT not in repr(oauth)


def test_redirect_with_matching_state_yields_code() -> None:
    """A redirect carrying our state returns the authorization code."""
    code = parse_authorization_response(
        "http://127.0.0.1/cb?code=abc123&state=xyz", expected_state="xyz"
    )
    assert code == "abc123"
    assert parse_authorization_response("code=c&state=xyz", expected_state="xyz") == "c"


@pytest.mark.parametrize(
    "redirect",
    [
        "http://127.0.0.1/cb?code=abc&state=other",
        "http://127.0.0.1/cb?code=abc",
        "http://127.0.0.1/cb?error=access_denied",
    ],
)
def test_redirect_with_wrong_or_missing_state_is_refused(redirect: str) -> None:
    """A wrong or missing state raises StateMismatchError, even alongside an error."""
    with pytest.raises(StateMismatchError):
        parse_authorization_response(redirect, expected_state="xyz")


def test_redirect_with_error_is_authorization_denied() -> None:
    """An error= parameter (the user declined) becomes AuthorizationDenied."""
    with pytest.raises(AuthorizationDenied) as info:
        parse_authorization_response(
            "http://127.0.0.1/cb?error=access_denied&error_description=nope&state=xyz",
            expected_state="xyz",
        )
    assert info.value.error == "access_denied"


@pytest.mark.parametrize(
    "redirect", ["http://127.0.0.1/cb?state=xyz", "http://127.0.0.1/cb?state=xyz&code=a&code=b"]
)
def test_redirect_without_a_single_code_is_refused(redirect: str) -> None:
    """A redirect with no code, or two codes, is an OAuthError."""
    with pytest.raises(OAuthError):
        parse_authorization_response(redirect, expected_state="xyz")


def test_token_request_bodies_carry_redirect_uri_on_both_grants() -> None:
    """Code exchange and refresh are form bodies with client credentials and redirect_uri."""
    common = {"client_id": "c", "client_secret": "s", "redirect_uri": "r"}
    assert token_request_body("authorization_code", code="k", **common) == {
        "grant_type": "authorization_code",
        "code": "k",
        **common,
    }
    assert token_request_body("refresh_token", refresh_token="t", **common) == {
        "grant_type": "refresh_token",
        "refresh_token": "t",
        **common,
    }
    with pytest.raises(ConfigurationError):
        token_request_body("password", **common)
    with pytest.raises(ConfigurationError):
        token_request_body("refresh_token", **common)
    with pytest.raises(ConfigurationError):
        token_request_body("authorization_code", **common)


@pytest.mark.parametrize("field", ["client_id", "client_secret", "redirect_uri"])
def test_oauth_client_requires_its_settings(field: str) -> None:
    """An OAuthClient without id, secret or redirect URI is a configuration error."""
    settings = {"client_id": "c", "client_secret": "s", "redirect_uri": "r", field: ""}
    with pytest.raises(ConfigurationError):
        OAuthClient(settings["client_id"], settings["client_secret"], settings["redirect_uri"])


async def test_exchange_code_returns_token_with_absolute_expiry(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """The code exchange posts the form fields and measures expiry from the send time."""
    token_endpoint.reply_json(200, token_endpoint.token_document(expires_in="3600"))
    before = time.time()
    token = await oauth_for().exchange_code("the-code", scopes="actions participants")
    after = time.time()
    assert token_endpoint.requests == [
        {
            "grant_type": "authorization_code",
            "client_id": "client-1",
            "client_secret": SECRET_CLIENT,
            "code": "the-code",
            "redirect_uri": "http://127.0.0.1:8765/callback",
        }
    ]
    assert token.access_token == SECRET_ACCESS
    assert token.refresh_token == SECRET_REFRESH
    assert token.api_endpoint == token_endpoint.api_endpoint
    assert token.orgkey == "demoorg"
    assert token.scopes == ("actions", "participants")
    assert before + 3600 <= token.expires_at <= after + 3600
    assert token.lifetime == 3600


async def test_expiry_is_measured_from_when_the_request_was_sent(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A slow response does not make the token look fresher: expires_at uses the send time."""
    ticks = iter([1000.0, 1090.0])
    token_endpoint.reply_json(200, token_endpoint.token_document(expires_in=3600))
    token = await oauth_for(clock=lambda: next(ticks)).exchange_code("c")
    assert token.issued_at == 1000.0
    assert token.expires_at == 4600.0


async def test_refresh_rotates_and_keeps_old_refresh_token_when_omitted(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A refresh response without refresh_token keeps the old one (and the old scopes)."""
    old = Token(
        access_token="old-access",
        refresh_token=SECRET_REFRESH,
        expires_at=0.0,
        issued_at=-3600.0,
        api_endpoint=token_endpoint.api_endpoint,
        orgkey="demoorg",
        scopes=("actions",),
        version=4,
    )
    token_endpoint.reply_json(
        200, token_endpoint.token_document(refresh_token=None, api_endpoint=None, orgkey=None)
    )
    fresh = await oauth_for().refresh(old)
    assert token_endpoint.requests[0]["grant_type"] == "refresh_token"
    assert token_endpoint.requests[0]["refresh_token"] == SECRET_REFRESH
    assert token_endpoint.requests[0]["redirect_uri"] == "http://127.0.0.1:8765/callback"
    assert fresh.refresh_token == SECRET_REFRESH
    assert fresh.access_token == SECRET_ACCESS
    assert fresh.api_endpoint == old.api_endpoint
    assert fresh.orgkey == "demoorg"
    assert fresh.scopes == ("actions",)
    assert fresh.version == 4


def _old_token(endpoint: TokenEndpoint) -> Token:
    return Token(
        access_token="old-access",
        refresh_token="old-refresh",
        expires_at=0.0,
        issued_at=-3600.0,
        api_endpoint=endpoint.api_endpoint,
    )


@pytest.mark.parametrize(
    ("status", "document", "error"),
    [
        (400, {"error": "invalid_grant"}, ReauthorizationRequired),
        (401, {"error": "invalid_client"}, ClientCredentialsError),
        (400, {"error": "unauthorized_client"}, ClientCredentialsError),
        (400, {"error": "invalid_request", "error_description": "bad"}, OAuthError),
        (403, {"unexpected": True}, OAuthError),
    ],
)
async def test_token_endpoint_errors_are_typed(
    token_endpoint: TokenEndpoint,
    oauth_for: OAuthFactory,
    status: int,
    document: object,
    error: type[Exception],
) -> None:
    """OAuth error codes map to ReauthorizationRequired, ClientCredentialsError or OAuthError."""
    token_endpoint.reply_json(status, document)
    with pytest.raises(error) as info:
        await oauth_for().refresh(_old_token(token_endpoint))
    assert getattr(info.value, "status", None) == status


async def test_429_is_transient_with_retry_after(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A 429 from the token endpoint is transient and carries the Retry-After hint."""
    token_endpoint.reply_json(429, {"error": "slow_down"}, headers={"Retry-After": "7"})
    with pytest.raises(TokenEndpointUnavailable) as info:
        await oauth_for().refresh(_old_token(token_endpoint))
    assert info.value.status == 429
    assert info.value.retry_after == 7.0


async def test_503_html_is_transient(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A 503 maintenance page is a transient error, not a decode error."""
    token_endpoint.reply_raw(503, b"<html><body>Down for maintenance</body></html>")
    with pytest.raises(TokenEndpointUnavailable) as info:
        await oauth_for().refresh(_old_token(token_endpoint))
    assert info.value.status == 503
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"<html>Login</html>", "text/html", "non-JSON text/html"),
        (b'{"access_token": "abc", "expires_in', "application/json", "non-JSON"),
        (b"[1, 2]", "application/json", "non-object"),
        (b"", "application/json", "non-JSON"),
    ],
)
async def test_unusable_200_bodies_are_decode_errors(
    token_endpoint: TokenEndpoint,
    oauth_for: OAuthFactory,
    body: bytes,
    content_type: str,
    fragment: str,
) -> None:
    """HTML, truncated JSON and non-objects on a 200 raise ResponseDecodeError naming the shape."""
    token_endpoint.reply_raw(200, body, content_type)
    with pytest.raises(ResponseDecodeError, match=fragment):
        await oauth_for().exchange_code("c")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"access_token": None}, "no access_token"),
        ({"access_token": 5}, "access_token must be"),
        ({"expires_in": 0}, "positive"),
        ({"expires_in": -5}, "positive"),
        ({"expires_in": "soon"}, "not a number"),
        ({"expires_in": None}, "not a number"),
        ({"expires_in": True}, "must be a number"),
        ({"token_type": "mac"}, "not bearer"),
        ({"refresh_token": None}, "no refresh_token"),
    ],
)
async def test_malformed_token_fields_are_decode_errors(
    token_endpoint: TokenEndpoint,
    oauth_for: OAuthFactory,
    overrides: dict[str, object],
    fragment: str,
) -> None:
    """Missing or wrong fields in a token response name the problem."""
    token_endpoint.reply_json(200, token_endpoint.token_document(**overrides))
    with pytest.raises(ResponseDecodeError, match=fragment):
        await oauth_for().exchange_code("c")


async def test_token_type_is_case_insensitive(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """'Bearer' and 'bearer' are the same token type."""
    token_endpoint.reply_json(200, token_endpoint.token_document(token_type="Bearer"))
    token = await oauth_for().exchange_code("c")
    assert token.token_type == "bearer"


async def test_hostile_api_endpoint_in_token_response_is_refused(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A token response naming a foreign api_endpoint raises before any token is used."""
    token_endpoint.reply_json(
        200, token_endpoint.token_document(api_endpoint="https://evil.example/api/")
    )
    with pytest.raises(UnsafeEndpointError):
        await oauth_for().exchange_code("c")


async def test_granted_scope_in_response_wins(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """When the server reports the granted scope, it replaces the requested one."""
    token_endpoint.reply_json(200, token_endpoint.token_document(scope="actions"))
    token = await oauth_for().exchange_code("c", scopes="actions participants")
    assert token.scopes == ("actions",)


async def test_connection_refused_is_transport_error(unused_tcp_port: int) -> None:
    """A token endpoint that is not listening raises TransportError naming the host."""
    oauth = OAuthClient(
        "c",
        SECRET_CLIENT,
        "http://127.0.0.1/cb",
        environment=Environment.local(f"http://127.0.0.1:{unused_tcp_port}"),
    )
    with pytest.raises(TransportError, match=r"127\.0\.0\.1"):
        await oauth.exchange_code("c")


async def test_slow_token_endpoint_times_out(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A token endpoint slower than the timeout raises RequestTimeout (also a TimeoutError)."""
    token_endpoint.delay = 1.0
    token_endpoint.reply_json(200, token_endpoint.token_document())
    with pytest.raises(RequestTimeout) as info:
        await oauth_for(timeout=0.1).exchange_code("c")
    assert isinstance(info.value, TimeoutError)


async def test_borrowed_session_is_used_and_left_open(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A session passed in is used for token requests and never closed by us."""
    import aiohttp

    token_endpoint.reply_json(200, token_endpoint.token_document())
    async with aiohttp.ClientSession() as session:
        token = await oauth_for(session=session).exchange_code("c")
        assert not session.closed
    assert token.access_token == SECRET_ACCESS


async def test_oversized_token_response_is_refused(
    token_endpoint: TokenEndpoint, oauth_for: OAuthFactory
) -> None:
    """A token response body above 64 KiB is refused without being buffered whole."""
    token_endpoint.reply_raw(200, b"x" * (70 * 1024), "application/json")
    with pytest.raises(ResponseDecodeError, match="limit"):
        await oauth_for().exchange_code("c")
