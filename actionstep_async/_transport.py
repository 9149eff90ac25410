"""The one place HTTP leaves the library: a ``Transport`` sends a prepared request.

Both the OAuth client and the resource client hand a :class:`Request` to a transport and get a
:class:`Response` (body already read, within the request's size limit) or one of our
:class:`TransportError` subclasses, which says whether the request *may have been sent*. That
flag is what decides whether a write can be repeated, so it is computed in one place:
:func:`transport_error` is the single map from aiohttp/asyncio exceptions to our errors.

:class:`AiohttpTransport` is the production implementation; ``actionstep_async.testing``
has a socket-free ``MockTransport`` for unit tests.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, Final, Protocol, TypeAlias

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._errors import (
    ConnectError,
    OutcomeUnknownError,
    RequestTimeout,
    ResponseDecodeError,
    TransportError,
    UsageError,
)
from ._retry import IDEMPOTENT_METHODS

__all__ = [
    "WIRE_FAILURES",
    "AiohttpTransport",
    "Request",
    "Response",
    "Transport",
    "body_too_large",
    "outcome_unknown",
    "transport_error",
]

_NOT_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""Failures raised before any byte of the request left: DNS, refused, connect timeout."""
WIRE_FAILURES: Final = (aiohttp.ClientError, asyncio.TimeoutError)
"""What an exchange can raise that :func:`transport_error` turns into one of our errors."""


class Request:
    """One prepared HTTP request: ``url`` is absolute and already percent-encoded.

    ``timeout`` bounds the whole exchange in seconds; a response body larger than
    ``max_body_bytes`` is refused with ResponseDecodeError instead of being buffered; ``what``
    names the body in that error ("token response"). The repr leaves out headers and body,
    which carry bearer tokens and client secrets.
    """

    __slots__ = ("body", "headers", "max_body_bytes", "method", "timeout", "url", "what")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float = 30.0,
        max_body_bytes: int = 64 * 1024 * 1024,
        what: str = "Actionstep response",
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.what = what

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url}, timeout={self.timeout:g})"


class Response:
    """One HTTP response with its body read; ``headers`` look up names case-insensitively.

    A plain mapping given as ``headers`` is copied into a case-insensitive one.
    """

    __slots__ = ("body", "headers", "status", "url")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        url: str = "",
    ) -> None:
        self.status = status
        if type(headers) is not CIMultiDictProxy:  # what aiohttp gives: no copy on the hot path
            headers = headers if isinstance(headers, CIMultiDict) else CIMultiDict(headers or {})
        self.headers: Mapping[str, str] = headers
        self.body = body
        self.url = url

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.url}, {len(self.body)} bytes)"


class Transport(Protocol):
    """Sends a prepared request; the only I/O the clients do.

    ``send`` returns the response whatever its status (redirects are not followed) or raises a
    :class:`TransportError` whose ``may_have_been_sent`` is False only when the request
    certainly never left; it raises ResponseDecodeError for a body over the request's limit.
    """

    async def send(self, request: Request, /) -> Response: ...


def transport_error(
    request: Request, failure: BaseException, *, may_have_been_sent: bool | None = None
) -> TransportError:
    """Our error for an exchange that ended in ``failure`` (an aiohttp or asyncio exception).

    ``may_have_been_sent`` defaults to what the exception type proves: only a failure to connect
    shows the request never left. A caller that observed the exchange (connection created,
    request headers written) can pass what it saw instead.
    """
    if may_have_been_sent is None:
        may_have_been_sent = not isinstance(failure, _NOT_SENT)
    what = type(failure).__name__
    where = f"{request.method} {request.url}"
    method, url, sent = request.method, request.url, may_have_been_sent
    if isinstance(failure, asyncio.TimeoutError):
        return RequestTimeout(
            f"{where} timed out ({what})", method=method, url=url, may_have_been_sent=sent
        )
    if not sent:
        return ConnectError(f"{where}: no connection ({what})", method=method, url=url)
    return TransportError(f"{where} failed: {what}", method=method, url=url)


def outcome_unknown(error: TransportError) -> OutcomeUnknownError:
    """The error for a write that may have reached the server although no answer came back."""
    return OutcomeUnknownError(
        f"{error.args[0]}, after the request may have reached the server;"
        " check before repeating it",
        method=error.method,
        url=error.url,
    )


class _Wire:
    """What one request's trace events showed reached the wire (set by :data:`_TRACE`)."""

    __slots__ = ("headers_sent",)

    def __init__(self) -> None:
        self.headers_sent = False


async def _on_headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    wire = context.trace_request_ctx
    if type(wire) is _Wire:  # a borrowed session's other requests carry no _Wire
        wire.headers_sent = True


def _trace_config() -> aiohttp.TraceConfig:
    # aiohttp fires this just before the request line and headers are handed to the socket, so
    # a failure before it proves that nothing of the request left: not even a write can have
    # reached the server, whatever the exception type says.
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    config.freeze()
    return config


_TRACE: Final = _trace_config()


Sessions: TypeAlias = "tuple[aiohttp.ClientSession, aiohttp.ClientSession]"


def _sessions_like(borrowed: aiohttp.ClientSession | None) -> Sessions:
    """Our (plain, traced) sessions over one connector: ``borrowed``'s, or one the plain owns.

    Only the connector (pool, TLS, resolver), trace configs and proxy of a borrowed session are
    used; its request defaults (headers, auth, cookies, base_url, raise_for_status,
    auto_decompress, middlewares) are deliberately not, so they cannot change what the clients
    send or see. The traced session carries our trace first, so no user callback can delay it;
    tracing costs about a tenth of a request's CPU, so only writes that must not be repeated
    blindly use it.
    """
    extra: dict[str, Any] = {"cookie_jar": aiohttp.DummyCookieJar()}
    if borrowed is None:
        plain = aiohttp.ClientSession(**extra)
        traces: list[aiohttp.TraceConfig] = []
    else:
        traces = list(borrowed.trace_configs)
        extra["trust_env"] = borrowed.trust_env
        extra["proxy"] = getattr(borrowed, "_default_proxy", None)
        extra["proxy_auth"] = getattr(borrowed, "_default_proxy_auth", None)
        plain = aiohttp.ClientSession(
            connector=borrowed.connector, connector_owner=False, trace_configs=traces, **extra
        )
    traced = aiohttp.ClientSession(
        connector=plain.connector, connector_owner=False, trace_configs=[_TRACE, *traces], **extra
    )
    return plain, traced


class AiohttpTransport:
    """The aiohttp transport, over a borrowed ``session`` or one it creates and owns.

    A borrowed session lends its connector (connection pool and limits, TLS settings), trace
    configs and proxy, and is never closed here; its request defaults (headers, auth, cookies,
    ``base_url``, ``raise_for_status``, ``auto_decompress``, middlewares) do not apply to our
    requests. Redirects are never followed. ``connect_timeout`` bounds connecting (and waiting
    for a pooled connection) within each request's timeout. A failed connect is reported as
    never sent; so is a failed POST whose headers a trace shows never reached the socket. An
    owned session is created on first use (inside the running loop) and closed by
    :meth:`aclose`.
    """

    def __init__(
        self, session: aiohttp.ClientSession | None = None, *, connect_timeout: float = 10.0
    ) -> None:
        if not connect_timeout > 0:
            raise ValueError("connect_timeout must be positive")
        self.session = session
        self.owned = session is None
        self.closed = False
        self.connect_timeout = connect_timeout
        self._sessions: Sessions | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout = aiohttp.ClientTimeout(total=30.0, sock_connect=min(30.0, connect_timeout))

    def __repr__(self) -> str:
        return f"AiohttpTransport({'owned' if self.owned else 'borrowed'} session)"

    def __del__(self) -> None:
        # A session that does not own its connector must not warn "unclosed" when collected.
        sessions = self._sessions
        if sessions is not None:
            sessions[1].detach()
            if not self.owned:
                sessions[0].detach()

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this transport created it; a borrowed one is left open."""
        self.closed = True
        sessions, self._sessions = self._sessions, None
        if sessions is not None:
            plain, traced = sessions
            traced.detach()
            if self.owned:
                await plain.close()
            else:
                plain.detach()

    def _open(self) -> Sessions:
        if self.closed:
            raise UsageError("this transport is closed; create a new one")
        borrowed = self.session
        if borrowed is not None and borrowed.closed:
            raise UsageError("the aiohttp session given to the client is closed")
        sessions = self._sessions = _sessions_like(borrowed)
        self._loop = asyncio.get_running_loop()
        if self.owned:
            self.session = sessions[0]
        return sessions

    def _check(self, session: aiohttp.ClientSession) -> None:
        if asyncio.get_running_loop() is not self._loop:
            raise UsageError(
                "this client's connections belong to another event loop; create the client"
                " (and its aiohttp session) inside the loop that uses it"
            )
        if session.closed:
            what = "transport" if self.closed or self.owned else "borrowed aiohttp session"
            raise UsageError(f"the {what} is closed; create a new client")

    async def send(self, request: Request, /) -> Response:
        plain, traced = self._sessions or self._open()
        if plain.closed or asyncio.get_running_loop() is not self._loop:
            self._check(plain)
        timeout = self._timeout
        if timeout.total != request.timeout:  # one client's requests share one timeout
            timeout = self._timeout = aiohttp.ClientTimeout(
                total=request.timeout, sock_connect=min(request.timeout, self.connect_timeout)
            )
        # Whether a request was sent only matters for one that must not be repeated blindly.
        wire = None if request.method in IDEMPOTENT_METHODS else _Wire()
        try:
            # Awaited, not entered: ``async with`` would add a coroutine frame that every
            # suspension of the exchange passes through; the finally does what its exit does.
            response = await (plain if wire is None else traced).request(
                request.method,
                URL(request.url, encoded=True),
                headers=request.headers,
                data=_payload(request.body),
                timeout=timeout,
                allow_redirects=False,
                raise_for_status=False,
                auto_decompress=True,
                trace_request_ctx=wire,
            )
            try:
                if _whole(response, request.max_body_bytes, request.what):
                    body = await response.read()
                else:
                    body = await _read_stream(response, request.max_body_bytes, request.what)
            finally:
                response.release()
                await response.wait_for_close()
            return Response(response.status, response.headers, body, request.url)
        except WIRE_FAILURES as exc:
            # None: as the exception type says; False: our trace saw no byte of it leave.
            sent = None if wire is None or wire.headers_sent else False
            error = transport_error(request, exc, may_have_been_sent=sent)
        # Raised outside the except block so aiohttp's exception, whose RequestInfo carries the
        # Authorization header, is neither the cause nor the context of ours.
        raise error


_LARGE_BODY: Final = 1024 * 1024
"""Where aiohttp starts warning about raw bytes bodies (its TOO_LARGE_BYTES_BODY)."""


def _payload(body: bytes | None) -> bytes | aiohttp.BytesPayload | None:
    """The body as aiohttp takes it; a document part of a few MB is wrapped without a warning."""
    if body is None or len(body) <= _LARGE_BODY:
        return body
    # aiohttp's hint is about bodies large enough to stall the loop when written; a 5 MB part
    # is one buffered write of a few milliseconds, and wrapping it in BytesIO would read it
    # back in 64 kB executor round trips.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return aiohttp.BytesPayload(body)


def body_too_large(what: str, limit: int, size: int | None = None) -> ResponseDecodeError:
    """The error for a body over ``limit`` bytes (``size`` when the server declared it)."""
    if size is None:
        return ResponseDecodeError(f"{what} body exceeds the {limit}-byte limit")
    return ResponseDecodeError(f"{what} body of {size} bytes exceeds the {limit}-byte limit")


def _whole(response: aiohttp.ClientResponse, limit: int, what: str) -> bool:
    """Whether the body may be read in one go: its declared Content-Length is within ``limit``
    (ResponseDecodeError when it is not).

    A declared Content-Length is trusted for a shortcut only when the body is not compressed:
    for a gzip body it counts compressed bytes, and 200 kB can inflate to 200 MB.
    """
    declared = response.content_length
    if declared is None:
        return False
    if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        return False
    if declared > limit:
        raise body_too_large(what, limit, declared)
    return True


async def _read_stream(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole (decoded) body of one whose length :func:`_whole` cannot trust, counted as it
    arrives (aiohttp inflates it in bounded steps) and refused beyond ``limit`` bytes without
    being buffered."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise body_too_large(what, limit)
        chunks.append(chunk)
    return b"".join(chunks)
