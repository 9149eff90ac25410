"""AsyncResourceClient: the Actionstep REST resources, with every wire quirk handled.

One call goes: validate the resource and ids -> take the *current* token from the TokenManager
(a refresh may move the organisation to another data host) -> a limiter permit -> one exchange
through the Transport -> :func:`next_step` decides: done, report a refused token and retry once,
sleep and retry within the RetryPolicy budget (permit released while waiting), or fail -> decode.

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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import (
    Any,
    Final,
    Generic,
    Literal,
    NamedTuple,
    Self,
    TypeAlias,
    TypedDict,
    Unpack,
    cast,
    overload,
)
from urllib.parse import quote

import aiohttp
import attrs
from multidict import CIMultiDict
from typing_extensions import TypeVar

from ._arguments import check_type
from ._client_stats import ClientStats, RetryCause
from ._documents import Documents
from ._errors import (
    APIError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ResponseDecodeError,
    TransportError,
    UnsafeEndpointError,
    UsageError,
    api_error_class,
)
from ._generated import ResourceAccessors
from ._governor import Governor, Permit, governor_for
from ._hooks import Hooks
from ._limits import ConcurrencyLimiter, Outcome
from ._manager import TokenManager
from ._models import (
    AnyRecord,
    Id,
    Page,
    Record,
    decode_body,
    decode_page,
    error_details,
    primary_records,
    structure_record,
)
from ._paging import Seen, check_same_totals, planned_pages
from ._query import FieldsArg, FiltersArg, Names, build_query
from ._redact import redact_value
from ._retry import (
    Answered,
    AttemptOutcome,
    Fail,
    Reauthorize,
    RetryPolicy,
    Sleep,
    Step,
    Unanswered,
    next_step,
    parse_retry_after,
)
from ._tokens import Token
from ._transport import AiohttpTransport, Request, Response, Transport, outcome_unknown

__all__ = ["DEFAULT_MAX_BODY_BYTES", "AsyncResourceClient"]

log = logging.getLogger("actionstep_async.client")

RETRY_RECORD: Final = "actionstep_retry"
"""Log records about a retry carry ``(reason, delay, attempt, max_attempts)`` under this
attribute: ``reason`` is the HTTP status or the exception's class name. The CLI reports them."""

JSON_API: Final = "application/vnd.api+json"
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""A page of 200 wide records is a few hundred kB; anything near this is not a sane answer."""

Method: TypeAlias = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# PATCH: the actions YAML documents it for updates (see _deviations.EXTRA_METHODS).

RecordT = TypeVar("RecordT", default=Record)
"""What the generic methods return: Record, or Record | Model with ``typed=True``."""
Document: TypeAlias = dict[str, Any] | None
"""A decoded response body (None for 204)."""


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`AsyncResourceClient` other than ``typed``."""

    session: aiohttp.ClientSession | None
    transport: Transport | None
    governor: Governor | None
    timeout: float
    retry: RetryPolicy | None
    concurrency: int
    adaptive: bool
    max_body_bytes: int


_RESOURCE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Actionstep's composite ids join parts with "--", document ids use "::" and ";"; nothing here
# can end a path segment, start a query or fragment, or be percent-decoded into something that does.
_ID: Final = re.compile(r"[A-Za-z0-9_\-.:;]{1,200}")
_PARAM: Final = re.compile(r"[A-Za-z][A-Za-z0-9_\[\]]{0,99}")
_MISSING: Final[Any] = object()
_SUCCESS: Final = {status: Answered(status) for status in (200, 201, 204)}
"""The outcomes of most requests, built once."""


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


def _not_cached(key: str) -> None:
    return None


def _invalid(what: str, value: object, why: str) -> InvalidRequestError:
    shown = repr(value) if isinstance(value, str | int) and len(repr(value)) <= 80 else "value"
    return InvalidRequestError(f"invalid {what} {shown}: {why}")


_CHECKED: set[str] = set()
"""Resource names already validated; a program uses a handful, so bounded in practice too."""


def check_resource(resource: object) -> str:
    """``resource`` if it is a plain resource name (``actions``), else InvalidRequestError."""
    if type(resource) is str and resource in _CHECKED:
        return resource
    if not isinstance(resource, str) or not _RESOURCE.fullmatch(resource):
        raise _invalid("resource name", resource, "use letters, digits and _ only")
    if len(_CHECKED) < 1024:
        _CHECKED.add(resource)
    return resource


def _one_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _invalid("id", value, "ids are not negative")
        if value.bit_length() > 640:  # about 193 digits: longer than any id, and str() could raise
            raise InvalidRequestError("invalid id: an int with more digits than any id has")
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
    if isinstance(ids, bytes | bytearray | memoryview):
        raise _invalid("ids", ids, "bytes are not ids; decode them to a str first")
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
    headers: CIMultiDict[str] = attrs.field(repr=False)  # carries the bearer token
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
class _TransportHolder:
    """The transport shared by a client and its ``with_options`` copies.

    ``owned`` is the transport the client created (and closes); None when it was given one.
    """

    transport: Transport
    owned: AiohttpTransport | None
    closed: bool = False
    # The copies share one key, so one token and what every request with it needs.
    prepared: _Prepared | None = None

    def __del__(self) -> None:
        owned = self.owned
        if owned is not None and owned.session is not None and not owned.session.closed:
            warnings.warn(
                "AsyncResourceClient was not closed; use 'async with' or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=1,
            )


def _holder(session: aiohttp.ClientSession | None, transport: Transport | None) -> _TransportHolder:
    if transport is not None:
        if session is not None:
            raise ValueError("give session= or transport=, not both")
        return _TransportHolder(transport, None)
    if session is not None:
        return _TransportHolder(AiohttpTransport(session), None)
    owned = AiohttpTransport()
    return _TransportHolder(owned, owned)


class AsyncResourceClient(ResourceAccessors, Generic[RecordT]):
    """Read and write Actionstep resources for one connection (a TokenManager key).

    ``session`` is borrowed when given (your trace configs, proxies and connector limits apply;
    it is never closed here); otherwise one is created on first use and closed by
    :meth:`aclose` or ``async with``. ``transport`` replaces aiohttp altogether (for example
    ``actionstep_async.testing.MockTransport``); it is not closed here either.
    ``timeout`` (seconds) bounds each HTTP exchange,
    ``retry`` how hard a call tries, ``concurrency`` how many exchanges run at once (``adaptive``
    halves it on 429 and grows it back). With ``typed=True`` the core resources come back as
    attrs models (:class:`Action`, ...) instead of read-only :class:`Record` mappings; the type
    checker follows: ``AsyncResourceClient(...)`` is an ``AsyncResourceClient[Record]`` and
    ``AsyncResourceClient(..., typed=True)`` an ``AsyncResourceClient[Record | Model]``. The
    accessors (``client.actions``) are always typed.

    Every request also passes the key's :class:`Governor` (one per key and event loop, shared
    by all clients of the key): give ``governor=`` to share the budget across processes through
    Redis or to tune it (a given governor also becomes the loop's one for the key, for clients
    that give none, unless the loop already has one).
    ``stats`` (:class:`ClientStats`) counts what the requests met.
    """

    @overload
    def __init__(
        self: AsyncResourceClient[Record],
        manager: TokenManager,
        key: str,
        *,
        typed: Literal[False] = False,
        **options: Unpack[ClientOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: AsyncResourceClient[AnyRecord],
        manager: TokenManager,
        key: str,
        *,
        typed: Literal[True],
        **options: Unpack[ClientOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: AsyncResourceClient[AnyRecord],
        manager: TokenManager,
        key: str,
        *,
        typed: bool,
        **options: Unpack[ClientOptions],
    ) -> None: ...

    def __init__(
        self,
        manager: TokenManager,
        key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        transport: Transport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        adaptive: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        typed: bool = False,
        governor: Governor | None = None,
    ) -> None:
        check_type("manager", manager, TokenManager, "a TokenManager")
        check_type("key", key, str, "the TokenManager key (a str) the token is stored under")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self.manager = manager
        self.key = key
        # A subclass's own token() is always awaited; the base class's answers from memory.
        self._cached_token: Callable[[str], Token | None] = (
            manager.cached_token if type(manager).token is TokenManager.token else _not_cached
        )
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_body_bytes = max_body_bytes
        self.typed = typed
        self.limiter = ConcurrencyLimiter(concurrency, adaptive=adaptive)
        self.stats = ClientStats()
        if governor is not None and governor.key != key:
            raise ValueError("the governor belongs to another key")
        self._governor = governor
        self._bulk = False
        self._holder = _holder(session, transport)
        self._rng = random.Random()
        # (loop, governor=, the governor used): governor_for's answer, looked up once per loop.
        self._loop_governor: tuple[asyncio.AbstractEventLoop, Governor | None, Governor] | None = (
            None
        )
        self._typed_view: AsyncResourceClient[AnyRecord] | None = None

    def __repr__(self) -> str:
        holder = self._holder
        if isinstance(holder.transport, AiohttpTransport):
            via = "session=" + ("owned" if holder.owned is not None else "borrowed")
        else:
            via = f"transport={type(holder.transport).__name__}"
        return (
            f"AsyncResourceClient(key={self.key!r}, {via}, typed={self.typed},"
            f" timeout={self.timeout:g}, {self.limiter!r})"
        )

    @overload
    def with_options(
        self, *, timeout: float | None = None, retry: RetryPolicy | None = None, typed: None = None
    ) -> AsyncResourceClient[RecordT]: ...

    @overload
    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        typed: Literal[False],
    ) -> AsyncResourceClient[Record]: ...

    @overload
    def with_options(
        self, *, timeout: float | None = None, retry: RetryPolicy | None = None, typed: bool
    ) -> AsyncResourceClient[AnyRecord]: ...

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        typed: bool | None = None,
    ) -> AsyncResourceClient[Any]:
        """A copy with other per-request settings, sharing the transport, limiter and token.

        ``await client.with_options(timeout=600).list("actions", ...)`` gives one slow query
        more time without changing the client everyone else uses.
        """
        copy: AsyncResourceClient[Any] = AsyncResourceClient.__new__(AsyncResourceClient)
        copy.__dict__.update(self.__dict__)
        if timeout is not None:
            if timeout <= 0:
                raise ValueError("timeout must be positive")
            copy.timeout = timeout
        if retry is not None:
            copy.retry = retry
        if typed is not None:
            copy.typed = typed
        copy._typed_view = None  # it would carry this client's options, not the copy's
        return copy

    def _typed(self) -> AsyncResourceClient[AnyRecord]:
        """This client if it is typed, else a typed copy made once: what the accessors use."""
        if self.typed:
            return cast("AsyncResourceClient[AnyRecord]", self)
        view = self._typed_view
        if view is None:
            view = self._typed_view = self.with_options(typed=True)
        return view

    @property
    def documents(self) -> Documents:
        """Upload, attach and download files (``client.documents.upload(...)``)."""
        return Documents(self)

    @property
    def hooks(self) -> Hooks:
        """REST hook subscriptions (``ensure``, ``list``, ...) and ``reconcile``."""
        return Hooks(self)

    def bulk(self) -> AsyncResourceClient[RecordT]:
        """A copy for bulk work: 429s with Retry-After are waited out for the longer budget.

        ``iterate()`` uses it on its own; the CLI's export lists pages through it.
        """
        copy: AsyncResourceClient[RecordT] = self.with_options()
        copy._bulk = True
        return copy

    @property
    def governor(self) -> Governor:
        """The governor this client's requests pass (the running loop's one for the key)."""
        loop = asyncio.get_running_loop()
        cached = self._loop_governor
        if cached is not None and cached[0] is loop and cached[1] is self._governor:
            return cached[2]
        governor = governor_for(self.key, self._governor)
        self._loop_governor = (loop, self._governor, governor)
        return governor

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this client created it; a borrowed one or a transport stays open."""
        holder = self._holder
        holder.closed = True
        if holder.owned is not None:
            await holder.owned.aclose()

    # -- operations --------------------------------------------------------------------------

    @overload
    async def get(self, resource: str, id: Id) -> RecordT: ...

    @overload
    async def get(
        self, resource: str, id: builtins.list[Id] | tuple[Id, ...]
    ) -> builtins.list[RecordT]: ...

    async def get(self, resource: str, id: Id | Sequence[Id]) -> RecordT | builtins.list[RecordT]:
        """One record by id (NotFoundError if there is none), or a list for a list of ids.

        A list of ids is one request (``/actions/1,2,3``); ids the server does not know are
        simply absent from the result.
        """
        path = check_resource(resource) + "/" + format_ids(id)
        answer = await self._call("GET", path, None, resource=resource)
        document = self._decode(answer, "GET", resource)
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
            return cast(RecordT, structure_record(resource, raws[0], typed=typed))
        return [cast(RecordT, structure_record(resource, raw, typed=typed)) for raw in raws]

    async def list(
        self,
        resource: str,
        *,
        filters: FiltersArg = None,
        include: Names | None = None,
        fields: FieldsArg = None,
        sort: Names | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[RecordT]:
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
        # Not through _page: a coroutine frame less on every suspension of the exchange.
        answer = await self._call("GET", resource + "?" + query, None, resource=resource)
        return self._decoded_page(answer, resource, page, page_size)

    def iterate(
        self,
        resource: str,
        *,
        filters: FiltersArg = None,
        include: Names | None = None,
        fields: FieldsArg = None,
        sort: Names | None = None,
        page_size: int = 200,
        concurrency: int = 4,
        adaptive: bool = True,
        prefetch: int | None = None,
    ) -> AsyncIterator[RecordT]:
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
        return self.bulk()._iterate(resource, base, page_size, ahead, limiter)

    async def _iterate(
        self,
        resource: str,
        base: str,
        page_size: int,
        ahead: int,
        limiter: ConcurrencyLimiter,
    ) -> AsyncIterator[RecordT]:
        def fetch(number: int) -> asyncio.Task[Page[RecordT]]:
            query = f"{base}&page={number}"
            return asyncio.ensure_future(self._page(resource, query, number, page_size, limiter))

        first = await self._page(resource, f"{base}&page=1", 1, page_size, limiter)
        seen = Seen()
        if not first.paging.reported:
            # No totals to trust: follow the pages one by one until one comes back empty.
            page, number = first, 1
            while page.records:
                for record in seen.fresh(resource, page, number):
                    yield record
                number += 1
                page = await fetch(number)
            return
        pages = planned_pages(resource, first.paging)
        window: deque[tuple[int, asyncio.Task[Page[RecordT]]]] = deque()
        upcoming = 2
        try:
            # Start the next pages before handing out page 1: the caller's work overlaps them.
            while upcoming <= pages and len(window) < ahead:
                window.append((upcoming, fetch(upcoming)))
                upcoming += 1
            for record in seen.fresh(resource, first, 1):
                yield record
            while window:
                number, task = window.popleft()
                page = await task
                if upcoming <= pages:
                    window.append((upcoming, fetch(upcoming)))
                    upcoming += 1
                check_same_totals(resource, first.paging, page, number)
                if not page.records:
                    break  # the result set shrank while we were reading it
                for record in seen.fresh(resource, page, number):
                    yield record
        finally:
            for _, task in window:
                task.cancel()
            if window:
                await asyncio.gather(*(task for _, task in window), return_exceptions=True)

    async def create(
        self,
        resource: str,
        fields: Mapping[str, Any],
        *,
        links: Mapping[str, Any] | None = None,
    ) -> RecordT:
        """Create a record (POST ``{resource: {...fields, "links": links}}``); returns it.

        Never retried once it may have reached the server: a timeout or dropped connection
        raises OutcomeUnknownError, and the caller decides after checking. Fields are not
        checked here (this is the escape hatch for what the catalogue does not describe);
        ``client.<resource>.create`` checks them.
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
    ) -> RecordT:
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
    ) -> Document:
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
        document = self._decode(answer, method)
        if document is not None and not isinstance(document, dict):
            raise ResponseDecodeError(f"{method} {answer.url}: the body is not a JSON object")
        return cast(Document, document)

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

    def _written(self, resource: str, answer: Response, method: str) -> RecordT:
        document = self._decode(answer, method, resource)
        raws = primary_records(resource, document) if document is not None else []
        if not raws:
            raise ResponseDecodeError(
                f"{method} {answer.url} answered without the {resource} record"
            )
        return cast(RecordT, structure_record(resource, raws[0], typed=self.typed))

    async def _page(
        self,
        resource: str,
        query: str,
        page: int,
        page_size: int,
        limiter: ConcurrencyLimiter | None,
    ) -> Page[RecordT]:
        path = resource + "?" + query if query else resource
        answer = await self._call("GET", path, None, resource=resource, limiter=limiter)
        return self._decoded_page(answer, resource, page, page_size)

    def _decoded_page(
        self, answer: Response, resource: str, page: int, page_size: int
    ) -> Page[RecordT]:
        page_ = decode_page(
            answer.status,
            answer.body,
            answer.headers,
            "GET",
            answer.url,
            resource,
            typed=self.typed,
            page=page,
            page_size=page_size,
        )
        return cast("Page[RecordT]", page_)

    def _decode(self, answer: Response, method: str, resource: str | None = None) -> Any:
        return decode_body(answer.status, answer.body, answer.headers, method, answer.url, resource)

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        resource: str,
        limiter: ConcurrencyLimiter | None = None,
        headers: Mapping[str, str] | None = None,
        max_body_bytes: int | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send ``method`` to ``<endpoint>rest/<path>`` until :func:`next_step` says stop.

        ``headers``, ``max_body_bytes`` and ``idempotent`` override the defaults for this call.
        The usual exchange (no permit to wait for) runs right here rather than in
        :meth:`_exchange`: every call and coroutine on this path costs CPU on every request."""
        holder = self._holder
        if holder.closed:
            raise UsageError("this AsyncResourceClient is closed; create a new one")
        transport = holder.transport
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        reauthorized = False
        while True:
            token = self._cached_token(self.key)
            if token is None:
                token = await self.manager.token(self.key)
            prepared = holder.prepared
            if prepared is None or prepared.token is not token:
                prepared = holder.prepared = _prepare(token)
            attempt += 1
            left = self.retry.max_elapsed - (loop.time() - started) if attempt > 1 else None
            request = self._request(method, prepared, path, body, headers, max_body_bytes, left)
            held = self._hold_nowait(request) if limiter is None else None
            if held is None:
                outcome, result = await self._exchange(transport, request, limiter, prepared)
            else:
                response = failure = None
                try:
                    response = await transport.send(request)
                except TransportError as exc:
                    failure = exc
                finally:
                    retry_after = self._let_go(held, response)
                if held[3] is not None:  # the time it was sent: the exchange is logged
                    elapsed = time.perf_counter() - held[3]
                    _log_exchange(request, response, failure, elapsed, prepared)
                if response is not None and 200 <= response.status < 300:
                    return response  # as below, without working out the outcome first
                outcome, result = _attempt(response, failure, retry_after)
            if isinstance(result, Response) and 200 <= result.status < 300:
                return result  # next_step says DONE for every 2xx and for nothing else
            attempt, reauthorized = await self._recover(
                _Attempted(request, outcome, result, token, attempt, reauthorized),
                loop.time() - started,
                idempotent,
            )

    async def _recover(
        self, tried: _Attempted, elapsed: float, idempotent: bool | None
    ) -> tuple[int, bool]:
        """After an attempt that did not succeed: wait for the retry :func:`next_step` asks for
        and return the (attempt, reauthorized) to go on with, or raise the call's error."""
        method, outcome, result, attempt = (
            tried.request.method,
            tried.outcome,
            tried.result,
            tried.attempt,
        )
        step = next_step(
            self.retry,
            method,
            outcome,
            attempt=attempt,
            elapsed=elapsed,
            reauthorized=tried.reauthorized,
            rng=self._rng,
            idempotent=idempotent,
            bulk=self._bulk,
        )
        if isinstance(step, Sleep):
            self._log_retry(tried.request, result, step, attempt)
            await self._back_off(outcome, step.seconds)
            return attempt, tried.reauthorized
        if isinstance(step, Reauthorize):
            token = tried.token
            fresh = await self.manager.token_rejected(self.key, token)
            if fresh.access_token != token.access_token:
                self.stats.retries["unauthorized"] += 1
                self.stats.refreshes += 1
                # A refused token is not the server failing: no budget spent.
                return attempt - 1, True
        raise self._failure(method, outcome, result, step)

    def _request(
        self,
        method: str,
        prepared: _Prepared,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        max_body_bytes: int | None,
        budget_left: float | None,
    ) -> Request:
        """One attempt's request; a retry may only use what is left of the call's budget."""
        sent = prepared.headers if headers is None else _merged(prepared.headers, headers)
        limit = self.max_body_bytes if max_body_bytes is None else max_body_bytes
        timeout = self.timeout
        if budget_left is not None:
            timeout = min(timeout, max(budget_left, 1e-3))
        return Request(method, prepared.base + path, sent, body, timeout, limit)

    def _check_pause(self, governor: Governor, request: Request) -> None:
        """Fail at once when an earlier 429's pause outlasts this call's whole 429 budget."""
        policy = self.retry
        budget = policy.bulk_rate_limited_elapsed if self._bulk else policy.rate_limited_elapsed
        paused = governor.paused_until - time.monotonic()
        if paused > budget:
            raise RateLimitedError(
                f"rate limited: an earlier 429 paused this connection for {paused:.0f} s more",
                status=429,
                method=request.method,
                url=request.url,
                retry_after=paused,
            )

    async def _back_off(self, outcome: AttemptOutcome, seconds: float) -> None:
        cause: RetryCause
        if isinstance(outcome, Unanswered):
            cause = "connection"
        else:
            cause = "rate_limited" if outcome.status == 429 else "server_error"
        stats = self.stats
        stats.retries[cause] += 1
        stats.waited += seconds
        await asyncio.sleep(seconds)

    def _hold_nowait(self, request: Request) -> _Held | None:
        """The client limiter's and the governor's permits for ``request`` when neither has to be
        waited for (the usual case), counted as :meth:`_exchange` counts them; else None."""
        governor = self.governor
        if governor.paused_until:
            self._check_pause(governor, request)
        sent_at = time.perf_counter() if log.isEnabledFor(logging.DEBUG) else None
        limiter = self.limiter
        if (epoch := limiter.try_acquire()) < 0:
            return None
        # Never a leased permit (try_acquire refuses when the budget is shared), so its
        # release needs no coroutine either.
        permit = governor.try_acquire(bulk=self._bulk)
        if permit is None:
            # Only an undo: try_acquire gave the permit with nobody queued, and nobody could
            # queue since, so this release wakes nobody and "failed" teaches the limiter nothing.
            limiter.release(epoch, "failed")
            return None
        stats = self.stats
        stats.requests += 1
        stats.waited += permit.waited
        return epoch, governor, permit, sent_at

    def _let_go(self, held: _Held, response: Response | None) -> float | None:
        """Hand back :meth:`_hold_nowait`'s permits as :meth:`_exchange` does (``response`` None:
        no answer); returns the answer's Retry-After."""
        epoch, governor, permit, _ = held
        verdict, retry_after, pause = self._counted(response)
        self.limiter.release(epoch, verdict, retry_after=pause)
        governor.release_nowait(permit, None if response is None else response.status, retry_after)
        return retry_after

    def _counted(self, response: Response | None) -> tuple[Outcome, float | None, float]:
        """How the limiters count an exchange (None: no answer), with its Retry-After and the
        pause it asks of the limiter; a 429 is counted in ``stats``."""
        if response is None:
            return "failed", None, 0.0
        verdict, retry_after = _verdict(response)
        if verdict != "rate_limited":
            return verdict, retry_after, 0.0
        self.stats.rate_limited += 1
        return verdict, retry_after, retry_after or 0.0

    async def _exchange(
        self,
        transport: Transport,
        request: Request,
        limiter: ConcurrencyLimiter | None,
        prepared: _Prepared,
    ) -> tuple[AttemptOutcome, Response | TransportError]:
        """One send through the transport, holding the limiters' and the governor's permits."""
        verdict: Outcome = "failed"
        pause = 0.0
        response: Response | None = None
        retry_after: float | None = None
        failure: TransportError | None = None
        governor = self.governor
        if governor.paused_until:
            self._check_pause(governor, request)
        timing = log.isEnabledFor(logging.DEBUG)
        sent_at = time.perf_counter() if timing else 0.0
        # Each permit is taken without a coroutine when nothing has to wait (the usual case).
        iterate_epoch = 0
        if limiter is not None and (iterate_epoch := limiter.try_acquire()) < 0:
            iterate_epoch = await limiter.acquire()
        try:
            if (epoch := self.limiter.try_acquire()) < 0:
                epoch = await self.limiter.acquire()
            permit: Permit | None = None
            try:
                bulk = self._bulk
                permit = governor.try_acquire(bulk=bulk) or await governor.acquire(bulk=bulk)
                stats = self.stats
                stats.requests += 1
                stats.waited += permit.waited
                response = await transport.send(request)
                verdict, retry_after, pause = self._counted(response)
            except TransportError as exc:
                failure = exc
            finally:
                self.limiter.release(epoch, verdict, retry_after=pause)
                if permit is not None:
                    answered = response.status if response is not None else None
                    if permit.lease is None:
                        governor.release_nowait(permit, answered, retry_after)
                    else:
                        await governor.release(permit, answered, retry_after)
        finally:
            if limiter is not None:
                limiter.release(iterate_epoch, verdict, retry_after=pause)
        if timing:
            _log_exchange(request, response, failure, time.perf_counter() - sent_at, prepared)
        return _attempt(response, failure, retry_after)

    def _log_retry(
        self, request: Request, result: Response | TransportError, step: Sleep, attempt: int
    ) -> None:
        reason: int | str
        if isinstance(result, Response):
            reason = result.status
        else:  # the wire-level cause says more ("connection refused") than our class name
            reason = type(result.__cause__ or result).__name__
        notice = (reason, step.seconds, attempt + 1, self.retry.max_attempts)
        log.info(
            "%s %s -> %s; retrying in %.2f s (attempt %d of %d)",
            request.method,
            request.url,
            reason,
            step.seconds,
            attempt + 1,
            self.retry.max_attempts,
            extra={RETRY_RECORD: notice},
        )

    def _failure(
        self,
        method: str,
        outcome: AttemptOutcome,
        result: Response | TransportError,
        step: Step,
    ) -> Exception:
        """The error to raise when :func:`next_step` gave up."""
        if isinstance(result, Response):
            retry_after = outcome.retry_after if isinstance(outcome, Answered) else None
            return self._api_error(method, result, retry_after, self._known_secrets())
        if isinstance(step, Fail) and step.outcome_unknown:
            unknown = outcome_unknown(result)
            unknown.__cause__ = result
            return unknown
        return result

    def _known_secrets(self) -> tuple[str, ...]:
        """Every secret this client knows, to scrub from server text it quotes."""
        found = [getattr(self.manager.refresher, "client_secret", None)]
        prepared = self._holder.prepared
        if prepared is not None:
            found += [prepared.token.access_token, prepared.token.refresh_token]
        return tuple(secret for secret in found if isinstance(secret, str) and secret)

    @staticmethod
    def _api_error(
        method: str, answer: Response, retry_after: float | None, hidden: tuple[str, ...]
    ) -> APIError:
        status, headers, raw, url = answer.status, answer.headers, answer.body, answer.url
        document: object = None
        if raw:
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError):
                # An HTML error page, or nesting too deep for the stdlib parser: the status says
                # enough, and RecursionError must not escape as an untyped error.
                document = None
        errors, detail = error_details(redact_value(document, hidden))
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
            kwargs["retry_after"] = retry_after
        return cls(message, **kwargs)


def _verdict(response: Response) -> tuple[Outcome, float | None]:
    """How the limiters count an answer, and its Retry-After (read for 429 and 5xx only)."""
    status = response.status
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        return ("rate_limited" if status == 429 else "failed"), retry_after
    return "ok", None


class _Attempted(NamedTuple):
    """One attempt of :meth:`AsyncResourceClient._call` that did not succeed."""

    request: Request
    outcome: AttemptOutcome
    result: Response | TransportError
    token: Token
    attempt: int
    reauthorized: bool


_Held: TypeAlias = tuple[int, Governor, Permit, float | None]
"""The permits of an exchange that did not wait for them (:meth:`_hold_nowait`): the limiter's
epoch, the governor and its permit, and ``perf_counter()`` before the send when the exchange is
logged (else None). A plain tuple: this is built for every request."""


def _attempt(
    response: Response | None, failure: TransportError | None, retry_after: float | None
) -> tuple[AttemptOutcome, Response | TransportError]:
    """What :func:`next_step` is told of one exchange, with the answer or the failure."""
    if response is None:
        assert failure is not None
        return Unanswered(failure.may_have_been_sent), failure
    if retry_after is None:
        return _SUCCESS.get(response.status) or Answered(response.status), response
    return Answered(response.status, retry_after), response


def _log_exchange(
    request: Request,
    response: Response | None,
    failure: TransportError | None,
    elapsed: float,
    prepared: _Prepared,
) -> None:
    if response is not None:
        log.debug(
            "%s %s -> %d in %.1f ms (token %s)",
            request.method,
            request.url,
            response.status,
            elapsed * 1000,
            prepared.fingerprint,
        )
    else:
        log.debug(
            "%s %s failed after %.1f ms (%s, token %s)",
            request.method,
            request.url,
            elapsed * 1000,
            type((failure and failure.__cause__) or failure).__name__,
            prepared.fingerprint,
        )


def _merged(base: CIMultiDict[str], extra: Mapping[str, str]) -> CIMultiDict[str]:
    merged = base.copy()
    merged.update(extra)
    return merged


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name} must be a positive int")
    return value


def _quote(text: str) -> str:
    return quote(text, safe="*,:-._~")
