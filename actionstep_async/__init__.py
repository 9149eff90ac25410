"""Async client for the Actionstep API.

OAuth2 authorization-code flow (:class:`OAuthClient`), a :class:`TokenManager` that refreshes
exactly once per expiry across tasks, processes and hosts sharing a :class:`TokenStore`, and an
:class:`AsyncResourceClient` for the REST resources.
"""

from __future__ import annotations

from typing import Any as _Any

from ._client import AsyncResourceClient
from ._client_stats import ClientStats
from ._environment import PRODUCTION, STAGING, Environment
from ._errors import (
    ActionstepError,
    APIError,
    AuthorizationDenied,
    BadRequestError,
    ClientCredentialsError,
    ConfigurationError,
    ConnectError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    OAuthError,
    OutcomeUnknownError,
    RateLimitedError,
    ReauthorizationRequired,
    RequestTimeout,
    ResponseDecodeError,
    ServerError,
    StateMismatchError,
    TokenEndpointUnavailable,
    TokenStoreError,
    TransientError,
    TransportError,
    UnauthorizedError,
    UnsafeEndpointError,
)
from ._governor import Governor
from ._manager import Refresher, RefreshPolicy, TokenManager
from ._models import (
    Action,
    ActionType,
    FileNote,
    Id,
    Page,
    Paging,
    Participant,
    Record,
    TimeRecord,
)
from ._oauth import (
    AuthorizationRequest,
    OAuthClient,
    build_authorize_url,
    parse_authorization_response,
)
from ._query import F, Filter
from ._rate import GovernorPolicy
from ._retry import RetryPolicy
from ._tokens import Token
from ._transport import AiohttpTransport, Request, Response, Transport
from .stores import FileTokenStore, MemoryTokenStore, TokenStore

__all__ = [
    "PRODUCTION",
    "STAGING",
    "APIError",
    "Action",
    "ActionType",
    "ActionstepError",
    "AiohttpTransport",
    "AsyncResourceClient",
    "AuthorizationDenied",
    "AuthorizationRequest",
    "BadRequestError",
    "ClientCredentialsError",
    "ClientStats",
    "ConfigurationError",
    "ConnectError",
    "Environment",
    "F",
    "FileNote",
    "FileTokenStore",
    "Filter",
    "ForbiddenError",
    "Governor",
    "GovernorPolicy",
    "Id",
    "InvalidRequestError",
    "MemoryTokenStore",
    "NotFoundError",
    "OAuthClient",
    "OAuthError",
    "OutcomeUnknownError",
    "Page",
    "Paging",
    "Participant",
    "RateLimitedError",
    "ReauthorizationRequired",
    "Record",
    "RefreshPolicy",
    "Refresher",
    "Request",
    "RequestTimeout",
    "Response",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "StateMismatchError",
    "TimeRecord",
    "Token",
    "TokenEndpointUnavailable",
    "TokenManager",
    "TokenStore",
    "TokenStoreError",
    "TransientError",
    "Transport",
    "TransportError",
    "UnauthorizedError",
    "UnsafeEndpointError",
    "build_authorize_url",
    "parse_authorization_response",
]


def __getattr__(name: str) -> _Any:
    # Computed lazily so importing the package never touches package metadata.
    if name == "__version__":
        from importlib.metadata import version

        return version("actionstep-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
