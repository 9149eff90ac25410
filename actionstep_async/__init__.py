"""Async client for the Actionstep API.

OAuth2 authorization-code flow (:class:`OAuthClient`), a :class:`TokenManager` that refreshes
exactly once per expiry across tasks, processes and hosts sharing a :class:`TokenStore`, and an
:class:`AsyncResourceClient` for the REST resources.
"""

from __future__ import annotations

import logging as _logging

from ._catalogue import CATALOGUE, FieldSpec, ResourceSpec, resource_spec
from ._client import AsyncResourceClient
from ._client_stats import ClientStats
from ._documents import Documents, RefusedFileError, UploadInterruptedError, UploadResume
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
    InconsistentPagingError,
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
    UsageError,
)
from ._governor import Governor
from ._hook_model import HOOK_EVENTS, EventName, Subscription
from ._hook_tokens import HookSecret
from ._hooks import EnsureResult, Hooks
from ._manager import KeepAliveReport, Refresher, RefreshPolicy, TokenManager
from ._models import (
    Action,
    ActionType,
    AnyRecord,
    FileNote,
    Id,
    Model,
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
from ._writes import to_wire
from .stores import FileTokenStore, MemoryTokenStore, TokenStore

# A library never configures logging: without a handler of the application's, our records go
# nowhere instead of reaching stderr through Python's last-resort handler.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "CATALOGUE",
    "HOOK_EVENTS",
    "PRODUCTION",
    "STAGING",
    "APIError",
    "Action",
    "ActionType",
    "ActionstepError",
    "AiohttpTransport",
    "AnyRecord",
    "AsyncResourceClient",
    "AuthorizationDenied",
    "AuthorizationRequest",
    "BadRequestError",
    "ClientCredentialsError",
    "ClientStats",
    "ConfigurationError",
    "ConnectError",
    "Documents",
    "EnsureResult",
    "Environment",
    "EventName",
    "F",
    "FieldSpec",
    "FileNote",
    "FileTokenStore",
    "Filter",
    "ForbiddenError",
    "Governor",
    "GovernorPolicy",
    "HookSecret",
    "Hooks",
    "Id",
    "InconsistentPagingError",
    "InvalidRequestError",
    "KeepAliveReport",
    "MemoryTokenStore",
    "Model",
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
    "RefusedFileError",
    "Request",
    "RequestTimeout",
    "ResourceSpec",
    "Response",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "StateMismatchError",
    "Subscription",
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
    "UploadInterruptedError",
    "UploadResume",
    "UsageError",
    "build_authorize_url",
    "parse_authorization_response",
    "resource_spec",
    "to_wire",
]


def __getattr__(name: str) -> str:
    # Computed lazily so importing the package never touches package metadata.
    if name == "__version__":
        from importlib.metadata import version

        return version("actionstep-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
