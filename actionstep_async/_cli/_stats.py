"""Per-resource request counts, gathered with aiohttp trace hooks on the CLI's own session.

The client retries 429s, 5xx and dropped connections internally; tracing the session it borrows
is how the summary can report them without the client keeping statistics of its own.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import aiohttp
import attrs
from yarl import URL

__all__ = ["RequestCounts", "RequestStats"]


@attrs.define
class RequestCounts:
    """What one resource's requests met on the wire."""

    requests: int = 0
    rate_limited: int = 0
    unauthorized: int = 0
    failed: int = 0
    """Other non-2xx answers and exchanges that got no answer at all."""

    @property
    def retries(self) -> int:
        """Requests that did not succeed; in a finished command each one was tried again."""
        return self.rate_limited + self.unauthorized + self.failed


def _resource(url: URL) -> str:
    parts = url.path.split("/")
    try:
        return parts[parts.index("rest") + 1]
    except (ValueError, IndexError):
        return "other"


class RequestStats:
    """Counts keyed by resource name; attach :meth:`trace_config` to a ClientSession."""

    def __init__(self) -> None:
        self.by_resource: defaultdict[str, RequestCounts] = defaultdict(RequestCounts)

    def total(self) -> RequestCounts:
        total = RequestCounts()
        for counts in self.by_resource.values():
            total.requests += counts.requests
            total.rate_limited += counts.rate_limited
            total.unauthorized += counts.unauthorized
            total.failed += counts.failed
        return total

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_end.append(self._on_end)
        config.on_request_exception.append(self._on_exception)
        return config

    async def _on_end(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        counts = self.by_resource[_resource(params.url)]
        counts.requests += 1
        status = params.response.status
        if status == 429:
            counts.rate_limited += 1
        elif status == 401:
            counts.unauthorized += 1
        elif not 200 <= status < 300:
            counts.failed += 1

    async def _on_exception(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        counts = self.by_resource[_resource(params.url)]
        counts.requests += 1
        counts.failed += 1
