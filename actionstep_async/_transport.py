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
from typing import Final, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._errors import (
    ConnectError,
    OutcomeUnknownError,
    RequestTimeout,
    ResponseDecodeError,
    TransportError,
)

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


class AiohttpTransport:
    """The aiohttp transport, over a borrowed ``session`` or one it creates and owns.

    A borrowed session keeps your trace configs, proxies and connector limits, and is never
    closed here. Per request, redirects are not followed and ``raise_for_status`` is off, so a
    borrowed session's defaults cannot change what the clients see. An owned session is created
    on first use (inside the running loop) and closed by :meth:`aclose`.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self.session = session
        self.owned = session is None
        self.closed = False
        self._timeout = aiohttp.ClientTimeout(total=30.0)

    def __repr__(self) -> str:
        return f"AiohttpTransport({'owned' if self.owned else 'borrowed'} session)"

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this transport created it; a borrowed one is left open."""
        self.closed = True
        if self.owned and self.session is not None:
            await self.session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("this transport is closed")
        session = self.session = aiohttp.ClientSession()
        return session

    async def send(self, request: Request, /) -> Response:
        session = self.session or self._open()
        timeout = self._timeout
        if timeout.total != request.timeout:  # one client's requests share one timeout
            timeout = self._timeout = aiohttp.ClientTimeout(total=request.timeout)
        limit = request.max_body_bytes
        try:
            async with session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=request.headers,
                data=_payload(request.body),
                timeout=timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                declared = response.content_length
                if declared is not None and declared <= limit:
                    body = await response.read()
                else:
                    body = await _read_limited(response, limit, request.what)
                return Response(response.status, response.headers, body, request.url)
        except WIRE_FAILURES as exc:
            raise transport_error(request, exc) from exc


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


async def _read_limited(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, refusing (without buffering it) one larger than ``limit`` bytes."""
    declared = response.content_length
    if declared is not None:
        raise body_too_large(what, limit, declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise body_too_large(what, limit)
        chunks.append(chunk)
    return b"".join(chunks)
