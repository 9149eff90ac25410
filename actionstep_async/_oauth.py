"""OAuth2 authorization-code flow for Actionstep.

The request building and response parsing are pure functions so they can be tested without a
network; :class:`OAuthClient` adds the two thin async calls (code exchange and refresh).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp
import attrs
from yarl import URL

from ._environment import PRODUCTION, Environment
from ._errors import (
    ActionstepError,
    AuthorizationDenied,
    ClientCredentialsError,
    ConfigurationError,
    OAuthError,
    ReauthorizationRequired,
    ResponseDecodeError,
    StateMismatchError,
    TokenEndpointUnavailable,
    UnsafeEndpointError,
)
from ._retry import parse_retry_after
from ._tokens import Clock, Token
from ._transport import AiohttpTransport, Request, Response, Transport

__all__ = [
    "AuthorizationRequest",
    "OAuthClient",
    "build_authorize_url",
    "normalise_scopes",
    "parse_authorization_response",
    "parse_token_response",
    "token_request_body",
]

log = logging.getLogger("actionstep_async.oauth")

_CREDENTIAL_ERRORS: Final = frozenset({"invalid_client", "unauthorized_client"})
_MAX_TOKEN_BODY: Final = 64 * 1024
_TOKEN_HEADERS: Final = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded",
}


def normalise_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """Split, de-duplicate and validate scopes, keeping the caller's order."""
    items: list[object] = list(scopes.split() if isinstance(scopes, str) else scopes)
    result: list[str] = []
    for scope in items:
        if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
            raise ConfigurationError(f"invalid scope {scope!r}: scopes are single words")
        if scope not in result:
            result.append(scope)
    if not result:
        raise ConfigurationError("at least one scope is required (for example 'actions')")
    return tuple(result)


def build_authorize_url(
    environment: Environment,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Iterable[str] | str,
    state: str,
) -> str:
    """The consent-page URL: scopes joined by one space, every value percent-encoded."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(normalise_scopes(scopes)),
        "state": state,
    }
    return f"{environment.authorize_url}?{urlencode(params, quote_via=quote)}"


@attrs.frozen
class AuthorizationRequest:
    """A consent-page URL and the one-time ``state`` that must come back with the code."""

    url: str
    state: str = attrs.field(repr=False)
    scopes: tuple[str, ...]


def parse_authorization_response(redirected_to: str, *, expected_state: str) -> str:
    """Check the redirect the browser came back with and return the authorization code.

    Accepts the full redirect URL or just its query string.
    """
    query = urlsplit(redirected_to).query if "?" in redirected_to else redirected_to
    params = parse_qs(query, keep_blank_values=True)

    def single(name: str) -> str | None:
        values = params.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise OAuthError(f"redirect carries {name!r} more than once")
        return values[0]

    state = single("state")
    if state is None or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise StateMismatchError("the redirect's state does not match the one issued")
    error = single("error")
    if error is not None:
        description = single("error_description") or "no description"
        raise AuthorizationDenied(
            f"authorization was refused: {error} ({description[:200]})", error=error
        )
    code = single("code")
    if not code:
        raise OAuthError("the redirect carries no authorization code")
    return code


def token_request_body(
    grant_type: str,
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    code: str | None = None,
    refresh_token: str | None = None,
) -> dict[str, str]:
    """The form fields of a token request (client credentials in the body, as Actionstep's demo)."""
    body = {"grant_type": grant_type, "client_id": client_id, "client_secret": client_secret}
    if grant_type == "authorization_code":
        if not code:
            raise ConfigurationError("an authorization code is required")
        body["code"] = code
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise ConfigurationError("a refresh token is required")
        body["refresh_token"] = refresh_token
    else:
        raise ConfigurationError(f"unsupported grant type {grant_type!r}")
    # Actionstep's own demo sends redirect_uri on refresh too; it is harmless and sometimes needed.
    body["redirect_uri"] = redirect_uri
    return body


def _redact(text: str, secrets_: Iterable[str]) -> str:
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


_MAX_EXPIRES_IN: Final = 10 * 365 * 86400
# RFC 6750 section 2.1 b64token: the only characters a bearer token may carry in a header.
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ASCII_SECONDS: Final = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")


def _parse_expires_in(value: object) -> float:
    """Seconds of validity: a JSON number or a string of ASCII digits, positive, at most 10 years.

    Huge integers (``10**400``), infinities and non-ASCII digits (``"³⁶⁰⁰"``) are refused here
    rather than raising ``OverflowError``/``ValueError`` later.
    """
    if isinstance(value, bool):
        raise ResponseDecodeError("token response: expires_in must be a number")
    if isinstance(value, str) and _ASCII_SECONDS.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, int) and not 0 < value <= _MAX_EXPIRES_IN:
        raise ResponseDecodeError("token response: expires_in must be a positive number of seconds")
    if not isinstance(value, int | float):
        raise ResponseDecodeError("token response: expires_in is missing or not a number")
    seconds = float(value)
    if not 0 < seconds <= _MAX_EXPIRES_IN:  # also refuses NaN and infinities
        raise ResponseDecodeError("token response: expires_in must be a positive number of seconds")
    return seconds


def _bearer_safe(value: str, name: str) -> str:
    """``value`` if it may go into an ``Authorization: Bearer`` header as it is."""
    if len(value) > 8192 or not _TOKEN68.fullmatch(value):
        # The value is not quoted: it is a secret, and the point is that it is unprintable.
        raise ResponseDecodeError(
            f"token response: {name} has characters a bearer token cannot carry (RFC 6750)"
        )
    return value


def _no_control_characters(value: str, name: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or len(value) > 8192:
        raise ResponseDecodeError(f"token response: {name} contains control characters")
    return value


def _required_str(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ResponseDecodeError(f"token response: {name} must be a non-empty string")
    return value


def parse_token_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    environment: Environment,
    sent_at: float,
    now: float,
    scopes: tuple[str, ...] = (),
    previous: Token | None = None,
    known_secrets: Iterable[str] = (),
) -> Token:
    """Turn a token-endpoint response into a Token or the matching typed error.

    ``previous`` is the token being refreshed: its refresh token and endpoint are kept when the
    response omits them. ``known_secrets`` are scrubbed from any server text we quote.
    """
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower() or "unknown"
    document = _decode_json(body)
    if status != 200:
        raise _token_error(
            status, headers, document, content_type=content_type, hidden=known_secrets, now=now
        )
    fields = _token_object(document, content_type=content_type, size=len(body))
    return Token(
        access_token=_access_token(fields),
        token_type=_token_type(fields),
        expires_at=sent_at + _parse_expires_in(fields.get("expires_in")),
        refresh_token=_refresh_token(fields, previous),
        issued_at=sent_at,
        api_endpoint=_api_endpoint(fields, environment, previous),
        orgkey=_required_str(fields, "orgkey") or (previous.orgkey if previous else None),
        scopes=_granted_scopes(fields, scopes, previous),
        version=previous.version if previous else 0,
    )


def _decode_json(body: bytes) -> Any:
    """The parsed body, or ``None`` if it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: the stdlib parser's answer to a deeply nested body ("[[[[...").
        return None


def _error_detail(document: Any, hidden: Iterable[str]) -> tuple[str | None, str]:
    """The OAuth ``error`` code and a redacted ``error: description`` text to quote."""
    fields = document if isinstance(document, dict) else {}
    error = fields.get("error") if isinstance(fields.get("error"), str) else None
    if error is None:
        return None, ""
    error = _redact(error[:200], list(hidden))  # a server may echo the refresh token here too
    description = fields.get("error_description")
    detail = error
    if isinstance(description, str) and description:
        detail += f": {description[:200]}"
    return error, _redact(detail, list(hidden))


def _token_error(
    status: int,
    headers: Mapping[str, str],
    document: Any,
    *,
    content_type: str,
    hidden: Iterable[str],
    now: float,
) -> ActionstepError:
    """The typed error for a non-200 token-endpoint answer."""
    error, detail = _error_detail(document, hidden)
    if status == 429 or status >= 500:
        return TokenEndpointUnavailable(
            f"token endpoint unavailable (HTTP {status}){': ' + detail if detail else ''}",
            status=status,
            retry_after=parse_retry_after(headers.get("Retry-After"), now=now),
        )
    if error == "invalid_grant":
        return ReauthorizationRequired(
            f"the refresh token or code was rejected ({detail}); authorize again", status=status
        )
    if error in _CREDENTIAL_ERRORS:
        return ClientCredentialsError(
            f"client credentials were rejected ({detail}); check client id and secret",
            error=error,
            status=status,
        )
    if error is not None:
        return OAuthError(f"token request failed: {detail}", error=error, status=status)
    return OAuthError(
        f"token request failed with HTTP {status} and a {content_type} body", status=status
    )


def _token_object(document: Any, *, content_type: str, size: int) -> Mapping[str, Any]:
    if not isinstance(document, dict):
        shape = "a non-object JSON value" if document is not None else f"a non-JSON {content_type}"
        raise ResponseDecodeError(f"token response is {shape} body ({size} bytes)")
    return document


def _access_token(fields: Mapping[str, Any]) -> str:
    access_token = _required_str(fields, "access_token")
    if access_token is None:
        raise ResponseDecodeError("token response has no access_token")
    return _bearer_safe(access_token, "access_token")


def _token_type(fields: Mapping[str, Any]) -> str:
    token_type = _required_str(fields, "token_type") or "bearer"
    if token_type.lower() != "bearer":
        raise ResponseDecodeError("token response: token_type is not bearer")
    return "bearer"


def _refresh_token(fields: Mapping[str, Any], previous: Token | None) -> str:
    refresh_token = _required_str(fields, "refresh_token") or (
        previous.refresh_token if previous else None
    )
    if refresh_token is None:
        raise ResponseDecodeError("token response has no refresh_token")
    return _no_control_characters(refresh_token, "refresh_token")


def _api_endpoint(
    fields: Mapping[str, Any], environment: Environment, previous: Token | None
) -> str:
    raw_endpoint = fields.get("api_endpoint")
    if raw_endpoint is None and previous is not None:
        return previous.api_endpoint
    return environment.validate_api_endpoint(raw_endpoint)


def _granted_scopes(
    fields: Mapping[str, Any], requested: tuple[str, ...], previous: Token | None
) -> tuple[str, ...]:
    granted = fields.get("scope")
    if isinstance(granted, str) and granted.strip():
        return normalise_scopes(granted)
    if not requested and previous is not None:
        return previous.scopes
    return requested


@attrs.define(eq=False)
class OAuthClient:
    """The registered Actionstep application: starts authorizations, exchanges codes, refreshes.

    ``session`` is borrowed and never closed; without one, each token request uses a short-lived
    session of its own (token requests are rare, and this keeps the client usable from any loop).
    ``transport`` replaces aiohttp altogether (for example ``testing.MockTransport``).
    """

    client_id: str
    client_secret: str = attrs.field(repr=False)
    redirect_uri: str
    environment: Environment = PRODUCTION
    session: aiohttp.ClientSession | None = attrs.field(default=None, repr=False)
    timeout: float = 30.0
    clock: Clock = attrs.field(default=time.time, repr=False)
    transport: Transport | None = attrs.field(default=None, repr=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.session is not None and self.transport is not None:
            raise ConfigurationError("give session= or transport=, not both")
        if not self.client_id:
            raise ConfigurationError("client_id is required")
        if not self.client_secret:
            raise ConfigurationError("client_secret is required")
        if not self.redirect_uri:
            raise ConfigurationError("redirect_uri is required")

    def authorization_request(self, scopes: Iterable[str] | str) -> AuthorizationRequest:
        """A consent-page URL with a fresh, unguessable ``state``."""
        state = secrets.token_urlsafe(32)
        normalised = normalise_scopes(scopes)
        url = build_authorize_url(
            self.environment,
            client_id=self.client_id,
            redirect_uri=self.redirect_uri,
            scopes=normalised,
            state=state,
        )
        return AuthorizationRequest(url=url, state=state, scopes=normalised)

    async def exchange_code(self, code: str, *, scopes: Iterable[str] | str = ()) -> Token:
        """Trade an authorization code for the first token of a connection."""
        body = token_request_body(
            "authorization_code",
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=self.redirect_uri,
            code=code,
        )
        requested = normalise_scopes(scopes) if scopes else ()
        return await self._token_request(body, scopes=requested, previous=None, hide=(code,))

    async def refresh(self, token: Token) -> Token:
        """Spend ``token.refresh_token`` on a new token (the old one is dead afterwards)."""
        body = token_request_body(
            "refresh_token",
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=self.redirect_uri,
            refresh_token=token.refresh_token,
        )
        hide = (token.refresh_token, token.access_token)
        return await self._token_request(body, scopes=token.scopes, previous=token, hide=hide)

    async def _token_request(
        self,
        body: dict[str, str],
        *,
        scopes: tuple[str, ...],
        previous: Token | None,
        hide: tuple[str, ...],
    ) -> Token:
        grant = body["grant_type"]
        url = self.environment.token_url
        host = urlsplit(url).hostname
        sent_at = self.clock()
        log.debug("token request: grant=%s host=%s", grant, host)
        request = Request(
            "POST",
            str(URL(url)),
            _TOKEN_HEADERS,
            urlencode(body).encode(),
            timeout=self.timeout,
            max_body_bytes=_MAX_TOKEN_BODY,
            what="token response",
        )
        response = await self._send(request)
        status, headers, raw = response.status, response.headers, response.body
        try:
            token = parse_token_response(
                status,
                headers,
                raw,
                environment=self.environment,
                sent_at=sent_at,
                now=self.clock(),
                scopes=scopes,
                previous=previous,
                known_secrets=(self.client_secret, *hide),
            )
        except UnsafeEndpointError:
            log.warning("token response from %s named an unsafe api_endpoint", host)
            raise
        log.debug("token request: grant=%s ok, new token %s", grant, token.fingerprint)
        return token

    async def _send(self, request: Request) -> Response:
        if self.transport is not None:
            return await self.transport.send(request)
        async with AiohttpTransport(self.session) as transport:  # a borrowed session stays open
            return await transport.send(request)
