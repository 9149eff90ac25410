"""MockTransport: answer the clients' requests from a function, with no sockets at all."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping

from .._transport import (
    WIRE_FAILURES,
    Request,
    Response,
    body_too_large,
    transport_error,
)

__all__ = ["Handler", "MockTransport", "json_response"]

Handler = Callable[[Request], Response | Awaitable[Response]]
"""Turns a request into a response; plain or ``async``."""


class MockTransport:
    """A :class:`~actionstep_async.Transport` whose answers come from ``handler``.

    Pass it as ``transport=`` to an ``AsyncResourceClient`` or ``OAuthClient``. The handler may
    raise one of our ``TransportError``s, or an aiohttp/asyncio exception (``TimeoutError``,
    ``aiohttp.ServerDisconnectedError``), which is mapped exactly as the aiohttp transport maps
    it. Every request is kept in :attr:`requests`, oldest first; they carry the bearer token, so
    the repr shows only their count. A response body over the request's size limit is refused
    like a real one.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    def __repr__(self) -> str:
        return f"MockTransport({len(self.requests)} requests)"

    async def send(self, request: Request, /) -> Response:
        self.requests.append(request)
        try:
            answer = self.handler(request)
            response = await answer if inspect.isawaitable(answer) else answer
        except WIRE_FAILURES as exc:
            raise transport_error(request, exc) from exc
        if len(response.body) > request.max_body_bytes:
            raise body_too_large(request.what, request.max_body_bytes, len(response.body))
        if not response.url:
            response.url = request.url
        return response


def json_response(
    document: object,
    status: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/vnd.api+json",
) -> Response:
    """A response whose body is ``document`` as JSON (the JSON:API media type by default)."""
    merged = {"Content-Type": content_type, **(headers or {})}
    return Response(status, merged, json.dumps(document).encode())
