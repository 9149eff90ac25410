"""AsyncResourceClient: the Actionstep REST resources, with every wire quirk handled.

One call goes: validate the resource and ids -> take the *current* token from the TokenManager
(a refresh may move the organisation to another data host) -> a limiter slot -> one aiohttp
exchange -> on 401 tell the manager which token was refused and retry once -> on 429/5xx/
connection errors retry within the RetryPolicy budget (slot released while waiting) -> decode.

The hot path is kept lean on purpose: per-token state (URL prefix, headers, fingerprint) is built
once per token and cached, URLs are concatenated from validated parts and handed to yarl as
already encoded, and the body is read once and parsed with orjson when it is installed.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib.metadata
import json
import logging
import random
import re
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias, overload
from urllib.parse import quote

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._errors import (
    APIError,
    ConnectError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    RequestTimeout,
    TransportError,
    UnsafeEndpointError,
    api_error_class,
)
from ._generated import ResourceAccessors
from ._http import read_limited
from ._limits import ConcurrencyLimiter, Outcome
from ._manager import TokenManager
from ._models import (
    Id,
    Page,
    decode_json,
    error_details,
    make_page,
    primary_records,
    structure_record,
)
from ._query import FieldsArg, FiltersArg, build_query
from ._retry import RetryPolicy, is_idempotent, parse_retry_after, retryable_failure
from ._tokens import Token

__all__ = ["DEFAULT_MAX_BODY_BYTES", "AsyncResourceClient"]

log = logging.getLogger("actionstep_async.client")

JSON_API: Final = "application/vnd.api+json"
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""A page of 200 wide records is a few hundred kB; anything near this is not a sane answer."""

Method: TypeAlias = Literal["GET", "POST", "PUT", "DELETE", "OPTIONS"]
_METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE", "OPTIONS"})
_RESOURCE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Composite ids use "--", document ids "::" and ";" (survey section 3); nothing here can end a
# path segment, start a query or fragment, or be percent-decoded into something that does.
_ID: Final = re.compile(r"[A-Za-z0-9_\-.:;]{1,200}")
_PARAM: Final = re.compile(r"[A-Za-z][A-Za-z0-9_\[\]]{0,99}")
_NOT_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_WRAP_TRANSPORT: Final = (aiohttp.ClientError, asyncio.TimeoutError)
_MISSING: Final[Any] = object()


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("actionstep-async")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        version = "0"
    return f"actionstep-async/{version}"


USER_AGENT: Final = _user_agent()

try:  # the ``speed`` extra
    import orjson

    def _dumps(document: object) -> bytes:
        return orjson.dumps(document, default=_json_default)

except ImportError:  # pragma: no cover - exercised only without the extra

    def _dumps(document: object) -> bytes:
        return json.dumps(document, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__} value")


def _invalid(what: str, value: object, why: str) -> InvalidRequestError:
    shown = repr(value) if isinstance(value, str | int) and len(repr(value)) <= 80 else "value"
    return InvalidRequestError(f"invalid {what} {shown}: {why}")


def check_resource(resource: object) -> str:
    """``resource`` if it is a plain resource name (``actions``), else InvalidRequestError."""
    if not isinstance(resource, str) or not _RESOURCE.fullmatch(resource):
        raise _invalid("resource name", resource, "use letters, digits and _ only")
    return resource


def _one_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _invalid("id", value, "ids are not negative")
        return str(value)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _invalid("id", value, "use letters, digits and - _ . : ; only")
    if ".." in value or value == ".":
        raise _invalid("id", value, "dot segments are not ids")
    return value


def format_ids(ids: object) -> str:
    """One id or a comma-joined list, validated so it cannot change the request path."""
    if isinstance(ids, str | int):
        return _one_id(ids)
    if not isinstance(ids, Sequence):
        raise _invalid("ids", ids, "give an int, a string or a list of them")
    if not ids:
        raise InvalidRequestError("the list of ids is empty")
    return ",".join(_one_id(item) for item in ids)


@attrs.frozen
class _Prepared:
    """What every request made with one token shares: built once per token."""

    token: Token
    base: str
    headers: CIMultiDict[str]
    fingerprint: str


def _prepare(token: Token) -> _Prepared:
    endpoint = token.api_endpoint
    # The manager validated the endpoint against its Environment when the token arrived; this
    # is a last guard against a hand-made Token, since the bearer token goes wherever it says.
    if (
        not endpoint.isascii()
        or not endpoint.startswith(("https://", "http://"))
        or not endpoint.endswith("/api/")
        or any(ch in endpoint for ch in "?#@\\ \t\r\n")
    ):
        raise UnsafeEndpointError("the token's api_endpoint is not a usable .../api/ URL")
    headers = CIMultiDict(
        {
            "Accept": JSON_API,
            "Content-Type": JSON_API,
            "Authorization": token.authorization,
            "User-Agent": USER_AGENT,
        }
    )
    return _Prepared(token, endpoint + "rest/", headers, token.fingerprint)


@attrs.define(eq=False)
class _SessionHolder:
    """The session shared by a client and its ``with_options`` copies."""

    session: aiohttp.ClientSession | None
    owned: bool
    closed: bool = False

    def __del__(self) -> None:
        session = self.session
        if self.owned and session is not None and not session.closed:
            warnings.warn(
                "AsyncResourceClient was not closed; use 'async with' or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=1,
            )


class _Answer:
    """One HTTP answer, body read. A plain slotted class: built once per request.

    ``retry_after`` is the server's ``Retry-After`` in seconds, parsed once and only for the
    statuses that carry one (429 and 5xx), so successful answers pay nothing for it.
    """

    __slots__ = ("body", "headers", "retry_after", "status", "url")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes, url: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        self.retry_after = (
            parse_retry_after(headers.get("Retry-After"), now=time.time())
            if status == 429 or status >= 500
            else None
        )


class AsyncResourceClient(ResourceAccessors):
    """Read and write Actionstep resources for one connection (a TokenManager key).

    ``session`` is borrowed when given (your trace configs, proxies and connector limits apply;
    it is never closed here); otherwise one is created on first use and closed by
    :meth:`aclose` or ``async with``. ``timeout`` (seconds) bounds each HTTP exchange,
    ``retry`` how hard a call tries, ``concurrency`` how many exchanges run at once (``adaptive``
    halves it on 429 and grows it back). With ``typed=True`` the core resources come back as
    attrs models (:class:`Action`, ...) instead of read-only :class:`Record` mappings.
    """

    def __init__(
        self,
        manager: TokenManager,
        key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        adaptive: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        typed: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self.manager = manager
        self.key = key
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_body_bytes = max_body_bytes
        self.typed = typed
        self.limiter = ConcurrencyLimiter(concurrency, adaptive=adaptive)
        self._holder = _SessionHolder(session, owned=session is None)
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._prepared: _Prepared | None = None
        self._rng = random.Random()

    def __repr__(self) -> str:
        ownership = "owned" if self._holder.owned else "borrowed"
        return (
            f"AsyncResourceClient(key={self.key!r}, session={ownership}, typed={self.typed},"
            f" timeout={self.timeout:g}, {self.limiter!r})"
        )

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        typed: bool | None = None,
    ) -> AsyncResourceClient:
        """A copy with other per-request settings, sharing the session, limiter and token.

        ``await client.with_options(timeout=600).list("actions", ...)`` gives one slow query
        more time without changing the client everyone else uses.
        """
        copy = AsyncResourceClient.__new__(AsyncResourceClient)
        copy.__dict__.update(self.__dict__)
        if timeout is not None:
            if timeout <= 0:
                raise ValueError("timeout must be positive")
            copy.timeout = timeout
            copy._client_timeout = aiohttp.ClientTimeout(total=timeout)
        if retry is not None:
            copy.retry = retry
        if typed is not None:
            copy.typed = typed
        return copy

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncResourceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this client created it; a borrowed session is left open."""
        holder = self._holder
        holder.closed = True
        if holder.owned and holder.session is not None:
            await holder.session.close()

    def _session(self) -> aiohttp.ClientSession:
        holder = self._holder
        session = holder.session
        if session is None:
            if holder.closed:
                raise RuntimeError("this AsyncResourceClient is closed")
            # Created here, inside a running coroutine, so it binds to the caller's loop.
            session = holder.session = aiohttp.ClientSession()
        return session

    # -- operations --------------------------------------------------------------------------

    @overload
    async def get(self, resource: str, id: Id) -> Any: ...

    @overload
    async def get(self, resource: str, id: Sequence[Id]) -> builtins.list[Any]: ...

    async def get(self, resource: str, id: Id | Sequence[Id]) -> Any:
        """One record by id (NotFoundError if there is none), or a list for a list of ids.

        A list of ids is one request (``/actions/1,2,3``); ids the server does not know are
        simply absent from the result.
        """
        path = check_resource(resource) + "/" + format_ids(id)
        answer = await self._call("GET", path, None, resource=resource)
        document = self._decode(answer, "GET")
        raws = primary_records(resource, document)
        typed = self.typed
        if isinstance(id, str | int):
            if not raws:
                raise NotFoundError(
                    f"{resource} {id} was not found",
                    status=answer.status,
                    method="GET",
                    url=answer.url,
                )
            return structure_record(resource, raws[0], typed=typed)
        return [structure_record(resource, raw, typed=typed) for raw in raws]

    async def list(
        self,
        resource: str,
        *,
        filters: FiltersArg = None,
        include: Sequence[str] | None = None,
        fields: FieldsArg = None,
        sort: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[Any]:
        """One page of a query, with its paging totals and side-loaded (``include``) records."""
        check_resource(resource)
        query = build_query(
            filters=filters,
            include=include,
            fields=fields,
            sort=sort,
            page=page,
            page_size=page_size,
        )
        return await self._page(resource, query, page, page_size, None)

    def iterate(
        self,
        resource: str,
        *,
        filters: FiltersArg = None,
        include: Sequence[str] | None = None,
        fields: FieldsArg = None,
        sort: Sequence[str] | None = None,
        page_size: int = 200,
        concurrency: int = 4,
        adaptive: bool = True,
        prefetch: int | None = None,
    ) -> AsyncIterator[Any]:
        """Every record of a query, in order, across all pages.

        Page 1 tells how many pages there are; the rest are then fetched ``concurrency`` at a
        time and yielded in page order. Up to ``prefetch`` pages (default ``8 * concurrency``)
        are requested ahead of the one being yielded: a page parked on a 429's ``Retry-After``
        then does not stall the others, and memory stays bounded however large the query.
        ``adaptive`` lowers the concurrency while the server answers 429. Arguments are
        validated here, before the first request.
        """
        check_resource(resource)
        _check_positive("concurrency", concurrency)
        ahead = 8 * concurrency if prefetch is None else _check_positive("prefetch", prefetch)
        base = build_query(
            filters=filters, include=include, fields=fields, sort=sort, page_size=page_size
        )
        limiter = ConcurrencyLimiter(concurrency, adaptive=adaptive)
        return self._iterate(resource, base, page_size, ahead, limiter)

    async def _iterate(
        self,
        resource: str,
        base: str,
        page_size: int,
        ahead: int,
        limiter: ConcurrencyLimiter,
    ) -> AsyncIterator[Any]:
        def fetch(number: int) -> asyncio.Task[Page[Any]]:
            query = f"{base}&page={number}"
            return asyncio.ensure_future(self._page(resource, query, number, page_size, limiter))

        first = await self._page(resource, f"{base}&page=1", 1, page_size, limiter)
        pages = first.paging.page_count
        window: deque[asyncio.Task[Page[Any]]] = deque()
        upcoming = 2
        try:
            # Start the next pages before handing out page 1: the caller's work overlaps them.
            while upcoming <= pages and len(window) < ahead:
                window.append(fetch(upcoming))
                upcoming += 1
            for record in first.records:
                yield record
            while window:
                page = await window.popleft()
                if upcoming <= pages:
                    window.append(fetch(upcoming))
                    upcoming += 1
                if not page.records:
                    break  # the result set shrank while we were reading it
                for record in page.records:
                    yield record
        finally:
            for task in window:
                task.cancel()
            if window:
                await asyncio.gather(*window, return_exceptions=True)

    async def create(
        self,
        resource: str,
        fields: Mapping[str, Any],
        *,
        links: Mapping[str, Any] | None = None,
    ) -> Any:
        """Create a record (POST ``{resource: {...fields, "links": links}}``); returns it.

        Never retried once it may have reached the server: a timeout or dropped connection
        raises OutcomeUnknownError, and the caller decides after checking.
        """
        body = self._body(resource, fields, links)
        answer = await self._call("POST", check_resource(resource), body, resource=resource)
        return self._written(resource, answer, "POST")

    async def update(
        self,
        resource: str,
        id: Id,
        fields: Mapping[str, Any],
        *,
        links: Mapping[str, Any] | None = None,
    ) -> Any:
        """Update one record with a PUT of the given fields (a partial update); returns it."""
        path = check_resource(resource) + "/" + _one_id(id)
        body = self._body(resource, fields, links)
        answer = await self._call("PUT", path, body, resource=resource)
        return self._written(resource, answer, "PUT")

    async def delete(self, resource: str, id: Id | Sequence[Id]) -> None:
        """Delete one record or a list of them (one request, ``/filenotes/1,2,3``)."""
        path = check_resource(resource) + "/" + format_ids(id)
        await self._call("DELETE", path, None, resource=resource)

    async def request(
        self,
        method: Method,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: object = _MISSING,
    ) -> Any:
        """Anything else: ``request("GET", "users/current", params={"include": "participant"})``.

        ``path`` is relative to ``<api_endpoint>rest/`` and each of its segments is validated
        like a resource name or id. Returns the decoded document (None for 204).
        """
        if method not in _METHODS:
            raise InvalidRequestError(f"unsupported method {method!r}")
        given: object = path
        if not isinstance(given, str) or not given:
            raise InvalidRequestError("path must be a non-empty string")
        head, *rest = path.split("/")
        check_resource(head)
        safe = "/".join([head, *(_one_id(segment) for segment in rest)])
        if params:
            pairs = []
            for name, value in params.items():
                if not _PARAM.fullmatch(str(name)):
                    raise _invalid("parameter name", name, "use letters, digits, _ and []")
                pairs.append(f"{name}={_quote(str(value))}")
            safe += "?" + "&".join(pairs)
        try:
            body = None if json is _MISSING else _dumps(json)
        except TypeError as exc:
            raise InvalidRequestError(f"cannot encode the request body: {exc}") from exc
        answer = await self._call(method, safe, body, resource=head)
        return self._decode(answer, method)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _body(resource: str, fields: Mapping[str, Any], links: Mapping[str, Any] | None) -> bytes:
        check_resource(resource)
        if not isinstance(fields, Mapping):
            raise InvalidRequestError("fields must be a mapping of field names to values")
        inner: dict[str, Any] = {}
        for name, value in fields.items():
            if not _RESOURCE.fullmatch(str(name)):
                raise _invalid("field name", name, "use letters, digits and _ only")
            # Actionstep booleans are "T"/"F" on the wire, both ways.
            inner[name] = ("T" if value else "F") if isinstance(value, bool) else value
        if links is not None:
            if "links" in inner:
                raise InvalidRequestError("give links either in fields or as links=, not both")
            inner["links"] = dict(links)
        try:
            return _dumps({resource: inner})
        except TypeError as exc:
            raise InvalidRequestError(f"cannot encode the {resource} body: {exc}") from exc

    def _written(self, resource: str, answer: _Answer, method: str) -> Any:
        document = self._decode(answer, method)
        raws = primary_records(resource, document) if document is not None else []
        return structure_record(resource, raws[0], typed=self.typed) if raws else None

    async def _page(
        self,
        resource: str,
        query: str,
        page: int,
        page_size: int,
        limiter: ConcurrencyLimiter | None,
    ) -> Page[Any]:
        path = resource + "?" + query if query else resource
        answer = await self._call("GET", path, None, resource=resource, limiter=limiter)
        document = self._decode(answer, "GET")
        return make_page(resource, document, typed=self.typed, page=page, page_size=page_size)

    def _decode(self, answer: _Answer, method: str) -> Any:
        if answer.status == 204 or not answer.body:
            return None
        content_type = answer.headers.get("Content-Type", "")
        return decode_json(answer.body, content_type=content_type, what=f"{method} {answer.url}")

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared <= self.max_body_bytes:
            return await response.read()
        return await read_limited(response, self.max_body_bytes, what="Actionstep response")

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        resource: str,
        limiter: ConcurrencyLimiter | None = None,
    ) -> _Answer:
        """Send ``method`` to ``<endpoint>rest/<path>`` until it succeeds or the budget is spent."""
        session = self._session()
        policy = self.retry
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts = 0
        reauthorized = False
        while True:
            token = await self.manager.token(self.key)
            prepared = self._prepared
            if prepared is None or prepared.token is not token:
                prepared = self._prepared = _prepare(token)
            url = prepared.base + path
            attempts += 1
            outcome: Outcome = "failed"
            pause = 0.0
            failure: BaseException | None = None
            answer: _Answer | None = None
            sent_at = time.perf_counter()
            extra_ticket = await limiter.acquire() if limiter is not None else 0
            try:
                ticket = await self.limiter.acquire()
                try:
                    async with session.request(
                        method,
                        URL(url, encoded=True),
                        headers=prepared.headers,
                        data=body,
                        timeout=self._client_timeout,
                        allow_redirects=False,
                    ) as response:
                        answer = _Answer(
                            response.status, response.headers, await self._read(response), url
                        )
                    if answer.status == 429:
                        outcome = "rate_limited"
                        pause = answer.retry_after or 0.0
                    elif answer.status < 500:
                        outcome = "ok"
                except _WRAP_TRANSPORT as exc:
                    failure = exc
                finally:
                    self.limiter.release(ticket, outcome, retry_after=pause)
            finally:
                if limiter is not None:
                    limiter.release(extra_ticket, outcome, retry_after=pause)
            elapsed = time.perf_counter() - sent_at

            if answer is None:
                assert failure is not None
                sent = not isinstance(failure, _NOT_SENT)
                log.debug(
                    "%s %s failed after %.1f ms (%s, token %s)",
                    method,
                    url,
                    elapsed * 1000,
                    type(failure).__name__,
                    prepared.fingerprint,
                )
                if retryable_failure(method, sent=sent):
                    delay = policy.delay(attempts, None, rng=self._rng)
                    if policy.allows(attempts, loop.time() - started, delay):
                        await asyncio.sleep(delay)
                        continue
                raise self._transport_error(method, url, failure, sent=sent) from failure

            status = answer.status
            log.debug(
                "%s %s -> %d in %.1f ms (token %s)",
                method,
                url,
                status,
                elapsed * 1000,
                prepared.fingerprint,
            )
            if 200 <= status < 300:
                return answer
            if status == 401 and not reauthorized:
                reauthorized = True
                fresh = await self.manager.token_rejected(self.key, token)
                if fresh.access_token != token.access_token:
                    attempts -= 1  # a refused token is not the server failing: no budget spent
                    continue
            elif status in policy.statuses and (status == 429 or is_idempotent(method)):
                delay = policy.delay(attempts, answer.retry_after, rng=self._rng)
                if policy.allows(attempts, loop.time() - started, delay):
                    log.info(
                        "%s %s -> %d; retrying in %.2f s (attempt %d of %d)",
                        method,
                        url,
                        status,
                        delay,
                        attempts + 1,
                        policy.max_attempts,
                    )
                    await asyncio.sleep(delay)
                    continue
            raise self._api_error(method, answer)

    @staticmethod
    def _transport_error(
        method: str, url: str, failure: BaseException, *, sent: bool
    ) -> TransportError:
        what = type(failure).__name__
        timed_out = isinstance(failure, asyncio.TimeoutError)
        if sent and method != "GET" and method != "OPTIONS":
            return OutcomeUnknownError(
                f"{method} {url}: {'timed out' if timed_out else what} after the request may"
                " have reached the server; check before repeating it",
                method=method,
                url=url,
            )
        if timed_out:
            return RequestTimeout(f"{method} {url} timed out ({what})", method=method, url=url)
        if not sent:
            return ConnectError(f"{method} {url}: no connection ({what})", method=method, url=url)
        return TransportError(f"{method} {url} failed: {what}", method=method, url=url)

    @staticmethod
    def _api_error(method: str, answer: _Answer) -> APIError:
        status, headers, raw, url = answer.status, answer.headers, answer.body, answer.url
        document: object = None
        if raw:
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError):
                # An HTML error page, or nesting too deep for the stdlib parser: the status says
                # enough, and RecursionError must not escape as an untyped error.
                document = None
        errors, detail = error_details(document)
        cls = api_error_class(status)
        if 300 <= status < 400:
            message = "unexpected redirect (not followed)"
        else:
            message = detail or f"HTTP {status}"
        kwargs: dict[str, Any] = {
            "status": status,
            "method": method,
            "url": url,
            "errors": errors,
            "request_id": headers.get("X-Request-Id"),
        }
        if status == 429:
            kwargs["retry_after"] = answer.retry_after
        return cls(message, **kwargs)


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name} must be a positive int")
    return value


def _quote(text: str) -> str:
    return quote(text, safe="*,:-._~")
