"""The exceptions raised by actionstep-async.

Every error derives from one root, so ``except ActionstepError`` catches everything the library
raises on purpose and nothing else::

    ActionstepError
    ├── ConfigurationError (ValueError)      settings that can never work
    │   ├── UnsafeEndpointError               an api_endpoint we refuse to send a token to
    │   └── ClientCredentialsError (+OAuthError)  invalid_client / unauthorized_client
    ├── InvalidRequestError (ValueError)     a request we refuse to build (bad name, id, query)
    ├── OAuthError                            the authorization server said no
    │   ├── AuthorizationDenied               the user declined on the consent page
    │   ├── StateMismatchError                the redirect's state is not the one we issued
    │   └── ReauthorizationRequired           the refresh token is dead: a person must log in again
    ├── TransientError                        trying again later may succeed
    │   ├── TokenEndpointUnavailable          token endpoint answered 429 / 5xx
    │   ├── TransportError                    no usable HTTP response at all
    │   │   ├── ConnectError (ConnectionError) the request was never sent
    │   │   ├── RequestTimeout (TimeoutError)
    │   │   └── OutcomeUnknownError           a write may or may not have been applied
    │   ├── RateLimitedError (+APIError)      429 from the resource API
    │   └── ServerError (+APIError)           5xx from the resource API
    ├── APIError                              the resource API answered with an error status
    │   ├── BadRequestError 400, UnauthorizedError 401, ForbiddenError 403,
    │   └── NotFoundError 404, (RateLimitedError 429, ServerError 5xx)
    ├── ResponseDecodeError                   a response body we cannot understand
    │   └── InconsistentPagingError           iterate(): the server's paging does not add up
    ├── UsageError (RuntimeError)            a closed client, or one used from another event loop
    └── TokenStoreError                       a token store could not load, save or lock

No message ever contains an access token, refresh token or client secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIError",
    "ActionstepError",
    "AuthorizationDenied",
    "BadRequestError",
    "ClientCredentialsError",
    "ConfigurationError",
    "ConnectError",
    "ForbiddenError",
    "InconsistentPagingError",
    "InvalidRequestError",
    "NotFoundError",
    "OAuthError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ReauthorizationRequired",
    "RequestTimeout",
    "ResponseDecodeError",
    "ServerError",
    "StateMismatchError",
    "TokenEndpointUnavailable",
    "TokenStoreError",
    "TransientError",
    "TransportError",
    "UnauthorizedError",
    "UnsafeEndpointError",
    "UsageError",
]


class ActionstepError(Exception):
    """Root of every error this library raises deliberately."""


class ConfigurationError(ActionstepError, ValueError):
    """The library was configured in a way that can never work; retrying will not help."""


class UnsafeEndpointError(ConfigurationError):
    """An ``api_endpoint`` failed validation, so no bearer token is sent to it."""


class InvalidRequestError(ActionstepError, ValueError):
    """A request was refused before sending: its resource name, id or query is unsafe or invalid."""


class OAuthError(ActionstepError):
    """The authorization server refused a request.

    ``error`` is the OAuth2 error code (``invalid_grant``, ``invalid_request``...) when known.
    """

    def __init__(
        self, message: str, *, error: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


class ClientCredentialsError(OAuthError, ConfigurationError):
    """``invalid_client`` / ``unauthorized_client``: wrong or disabled client id or secret."""


class AuthorizationDenied(OAuthError):
    """The user (or the server) declined the authorization request on the consent page."""


class StateMismatchError(OAuthError):
    """The ``state`` on the redirect is missing or differs from the one issued: possible CSRF."""


class ReauthorizationRequired(OAuthError):
    """The refresh token was rejected (``invalid_grant``); a person has to authorize again.

    ``key`` names the token-store key concerned, when the error comes from a TokenManager.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = "invalid_grant",
        status: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, error=error, status=status)
        self.key = key


class TransientError(ActionstepError):
    """A failure that may go away on its own; ``retry_after`` (seconds) is a hint when known."""

    retry_after: float | None = None


class TokenEndpointUnavailable(TransientError):
    """The token endpoint answered 429 or 5xx; the current token (if any) is kept."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransportError(TransientError):
    """The HTTP exchange failed before a usable response arrived (DNS, connect, reset).

    ``may_have_been_sent`` is False only when the request certainly never reached the server,
    so even a write may then be repeated.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        may_have_been_sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.may_have_been_sent = may_have_been_sent


class ConnectError(TransportError, ConnectionError):
    """No connection could be made, so the request was certainly not sent (safe to retry)."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message, method=method, url=url, may_have_been_sent=False)


class RequestTimeout(TransportError, TimeoutError):
    """The request did not complete within its timeout."""


class OutcomeUnknownError(TransportError):
    """A non-idempotent request (POST) may have reached the server, but no answer came back.

    It is never retried automatically: check the server state before trying again.
    ``file_id`` is set when the request was a document attach: the uploaded file it named.
    """

    file_id: str | None = None


class APIError(ActionstepError):
    """The resource API answered with an error status.

    Carries ``status``, ``method``, ``url``, the parsed Actionstep ``errors`` (a list of mappings)
    and the server's request id when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        url: str,
        errors: Sequence[Mapping[str, Any]] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.errors = tuple(errors)
        self.request_id = request_id

    @property
    def code(self) -> str | None:
        """Actionstep's error code (``AS-TBC``, ``expired_token``...) from the first error."""
        for error in self.errors:
            code = error.get("code")
            if isinstance(code, str) and code:
                return code
        return None

    def __str__(self) -> str:
        text = f"{self.args[0]} ({self.method} {self.url} -> {self.status})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text


class BadRequestError(APIError):
    """400: the server rejected the request as malformed."""


class UnauthorizedError(APIError):
    """401 that persisted after one token refresh and retry.

    ``code`` says why: ``expired_token`` (the access token ran out: a refresh fixes it) or
    ``invalid_token`` (unknown or revoked: the connection needs authorizing again).
    """

    @property
    def token_expired(self) -> bool:
        """True when the server said the access token had expired (not that it was invalid)."""
        return self.code == "expired_token"


class ForbiddenError(APIError):
    """403: missing scope (``insufficient_scope``) or no permission on the record."""


class NotFoundError(APIError):
    """404: no such resource or record."""


class RateLimitedError(APIError, TransientError):
    """429 after the retry budget ran out; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError, TransientError):
    """5xx after the retry budget ran out (or on a request that must not be retried)."""


class ResponseDecodeError(ActionstepError):
    """A response body could not be understood (HTML error page, truncated JSON, wrong shape)."""


class InconsistentPagingError(ResponseDecodeError):
    """``iterate()`` stopped: the server's paging totals contradict themselves or changed (pages
    added mid-run, the same page served again, a page count no record count can explain)."""


class UsageError(ActionstepError, RuntimeError):
    """The library was used in a way it cannot serve: a closed client or transport, or one used
    from another event loop than the one it started on. The message says what to do instead."""


class TokenStoreError(ActionstepError):
    """A token store failed to load, save, delete or lock a token."""


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitedError,
}


def api_error_class(status: int) -> type[APIError]:
    """Pick the most specific APIError subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, APIError)
