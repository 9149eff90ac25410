"""Property-based fuzzing of everything the resource API can send the client.

Volume goes through the pure decoding functions of ``_models`` (fast); a smaller number of cases
run end to end: a loopback aiohttp server answers with the fuzzed status, headers and bytes, and
a real AsyncResourceClient must return a result or raise a typed ActionstepError, promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actionstep_async import (
    Action,
    ActionstepError,
    AsyncResourceClient,
    Environment,
    MemoryTokenStore,
    Page,
    Record,
    ResponseDecodeError,
    RetryPolicy,
    Token,
    TokenManager,
)
from actionstep_async._catalogue import resource_spec
from actionstep_async._governor import Governor
from actionstep_async._models import (
    TYPED_MODELS,
    decode_json,
    error_details,
    make_page,
    primary_records,
    structure_record,
)
from actionstep_async._oauth import parse_token_response
from actionstep_async._serving import Serving, serve

from .._hypothesis import examples

RESOURCES = [*TYPED_MODELS, "customresource"]
KEY = "fuzz"

# -- strategies ---------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "T",
            "F",
            "",
            "0",
            "12",
            "1024--31--11",
            "2024-02-30",
            "2024-01-05",
            "2024-01-05T10:00:00+10:00",
            "NaN",
            "1e999",
            "-7",
            "9" * 40,
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)
field_names = st.sampled_from(
    [
        "id",
        "name",
        "reference",
        "priority",
        "isBillable",
        "createdTimestamp",
        "modifiedTimestamp",
        "actualHours",
        "billableAmount",
        "timestampDate",
        "displayName",
        "isCompany",
        "dateOfBirth",
        "links",
        "text",
        "enteredTimestamp",
        "isDisabled",
    ]
) | st.text(max_size=10)
records = st.dictionaries(field_names, json_values, max_size=8) | json_values
paging_blocks = json_values | st.fixed_dictionaries(
    {},
    optional={
        "recordCount": json_values,
        "pageCount": json_values,
        "page": json_values,
        "pageSize": json_values,
    },
)


@st.composite
def documents(draw: st.DrawFn, resource: str) -> Any:
    """Envelopes that look like Actionstep's, with any member possibly wrong."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    document: dict[str, Any] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        document[resource] = draw(st.lists(records, max_size=4) | records)
    if draw(st.booleans()):
        document["meta"] = draw(
            st.fixed_dictionaries({"paging": st.dictionaries(st.just(resource), paging_blocks)})
            | json_values
        )
    if draw(st.booleans()):
        document["linked"] = draw(
            st.dictionaries(st.sampled_from(RESOURCES), st.lists(records, max_size=3) | records)
            | json_values
        )
    if draw(st.booleans()):
        document["links"] = draw(json_values)
    return document


def huge_string(size: int = 200_000) -> str:
    return "x" * size


# -- pure decoding: volume -------------------------------------------------------------------


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), resource=st.sampled_from(RESOURCES), typed=st.booleans())
def test_any_document_decodes_to_a_page_or_a_typed_error(
    data: st.DataObject, resource: str, typed: bool
) -> None:
    """Wrong types, missing keys, objects for lists, garbage paging: a Page or a typed error."""
    document = data.draw(documents(resource))
    try:
        page = make_page(resource, document, typed=typed, page=1, page_size=50)
    except ResponseDecodeError:
        return  # the only error decoding may raise
    assert isinstance(page, Page)
    assert all(isinstance(n, int) for n in attrs.astuple(page.paging))
    for record in page:
        links = record.links if isinstance(record, Record) else record.wire_links
        for link in list(links)[:3]:
            page.related(record, link)  # following any link never raises
        repr(record)


@settings(max_examples=examples(300), deadline=None)
@given(resource=st.sampled_from(RESOURCES), raw=records, typed=st.booleans())
def test_any_record_structures_or_raises_a_typed_error(
    resource: str, raw: Any, typed: bool
) -> None:
    """Any single record becomes a Record, a typed model, or a ResponseDecodeError."""
    try:
        record = structure_record(resource, raw, typed=typed)
    except ResponseDecodeError:
        return
    if typed and resource in TYPED_MODELS:
        spec = resource_spec(resource)
        if spec is None or any(field.wire == "id" for field in spec.fields):
            assert isinstance(record.id, int | str)  # models normalise ids
        else:
            assert record.id is None  # lookup lists such as primarylanguage have no id
    else:
        assert record.id == raw.get("id")  # plain records keep the wire value
    assert primary_records(resource, {resource: raw}) == [raw]


@settings(max_examples=examples(300), deadline=None)
@given(document=json_values | st.fixed_dictionaries({"errors": json_values}))
def test_any_error_body_gives_a_list_of_objects_and_a_short_message(document: Any) -> None:
    """``errors`` as a list, an object or garbage yields only dicts and a message <= 300 chars."""
    errors, detail = error_details(document)
    assert all(isinstance(item, dict) for item in errors)
    assert detail is None or 0 < len(detail) <= 300


@settings(max_examples=examples(200), deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
def test_any_bytes_decode_or_raise_a_typed_error(body: bytes) -> None:
    """Arbitrary bytes either parse as JSON or raise ResponseDecodeError naming the size."""
    message = ""
    try:
        decode_json(body, content_type="text/html", what="GET x")
    except ResponseDecodeError as exc:
        message = str(exc)
    assert not message or f"{len(body)} bytes" in message


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_bodies_are_typed_errors_everywhere(depth: int) -> None:
    """Nesting deeper than the stdlib JSON parser can recurse never escapes as RecursionError."""
    body = b"[" * depth + b"]" * depth
    with contextlib.suppress(ResponseDecodeError):  # orjson parses 1,000 levels; fine either way
        decode_json(body, content_type="application/json", what="GET x")
    with pytest.raises(ActionstepError):
        parse_token_response(
            500, {}, body, environment=Environment.local("http://127.0.0.1:9"), sent_at=0, now=0
        )
    with pytest.raises(ActionstepError):
        parse_token_response(
            200, {}, body, environment=Environment.local("http://127.0.0.1:9"), sent_at=0, now=0
        )


def test_huge_strings_are_kept_verbatim_not_copied_into_errors() -> None:
    """A 200 kB field value decodes intact; an error built from it quotes at most 300 chars."""
    text = huge_string()
    page = make_page(
        "actions", {"actions": [{"id": 1, "name": text}]}, typed=True, page=1, page_size=50
    )
    action = page[0]
    assert isinstance(action, Action)
    assert action.name == text
    _, detail = error_details({"errors": [{"detail": text}]})
    assert detail is not None
    assert len(detail) == 300
    with pytest.raises(ResponseDecodeError) as caught:
        make_page(
            "actions",
            {"actions": [{"id": 1, "createdTimestamp": text}]},
            typed=True,
            page=1,
            page_size=50,
        )
    assert len(str(caught.value)) < 1000


# -- end to end through a loopback server -------------------------------------------------------


class _Refresher:
    """Mints a new token on every 401, so the client's one retry always happens."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.serial = 0

    def mint(self) -> Token:
        self.serial += 1
        now = time.time()
        return Token(
            access_token=f"fuzz-access-{self.serial}",
            refresh_token=f"fuzz-refresh-{self.serial}",
            expires_at=now + 3600,
            issued_at=now,
            api_endpoint=self.endpoint,
        )

    async def refresh(self, token: Token) -> Token:
        return attrs.evolve(self.mint(), version=token.version)


class Harness:
    """One loop, one scripted server and one client, shared by every example of a test."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, serving: Serving, client: AsyncResourceClient
    ) -> None:
        self.loop = loop
        self.serving = serving
        self.client = client
        self.reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")
        self.chunks: tuple[bytes, int] | None = None

    def __repr__(self) -> str:
        # Hypothesis prints fixtures in failure reports; the reply may be megabytes.
        return "Harness()"

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    holder: dict[str, Harness] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        h = holder["h"]
        if h.chunks is not None:
            chunk, count = h.chunks
            response = web.StreamResponse(status=200, headers=h.reply[1])
            await response.prepare(request)
            try:
                for _ in range(count):
                    await response.write(chunk)
            except ConnectionError:
                pass  # the client refused the body and hung up, as it should
            return response
        status, headers, body = h.reply
        return web.Response(status=status, headers=headers, body=body)

    async def start() -> Harness:
        app = web.Application()
        app.router.add_route("*", "/api/rest/{tail:.*}", handle)
        serving = await serve(app, "127.0.0.1", 0, shutdown_timeout=0.1)
        refresher = _Refresher(f"http://127.0.0.1:{serving.port}/api/")
        manager = TokenManager(refresher, MemoryTokenStore())
        await manager.save(KEY, refresher.mint())
        client = AsyncResourceClient(
            manager,
            KEY,
            timeout=5.0,
            retry=RetryPolicy(
                max_attempts=2, max_elapsed=0.05, rate_limited_elapsed=0.05, backoff_base=0.001
            ),
            max_body_bytes=1 << 20,
            governor=Governor(KEY),
        )
        return Harness(loop, serving, client)

    h = holder["h"] = loop.run_until_complete(start())
    try:
        yield h
    finally:
        loop.run_until_complete(h.client.aclose())
        loop.run_until_complete(h.client.manager.aclose())
        loop.run_until_complete(h.serving.close())
        loop.close()


_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_http_dates = st.integers(-(10**9), 10**10).map(
    lambda offset: email.utils.formatdate(max(0, time.time() + offset), usegmt=True)
)
retry_after_values = (
    st.none()
    | _http_dates
    | _header_text
    | st.sampled_from(
        ["-5", "0", "0.01", "1e308", "inf", "-inf", "nan", "99999999999", " 1 ", "1, 2"]
    )
)
content_types = (
    st.sampled_from(
        [
            "application/vnd.api+json",
            "application/json",
            "text/html",
            "text/plain; charset=utf-8",
            "application/octet-stream",
            "",
            "application/json; charset=latin-1",
        ]
    )
    | _header_text
)
statuses = st.sampled_from(
    [200, 200, 200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504]
) | st.integers(200, 599)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """A short description of a body (built by :func:`build_body`), so a failing example's
    report stays small even when the body is hundreds of kilobytes."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return ("bytes", draw(st.binary(max_size=300)))
    if choice == 1:
        return ("nested", draw(st.sampled_from([10, 1_500, 50_000])))
    if choice == 2:
        return ("errors", draw(json_values | st.lists(json_values, max_size=3)))
    if choice == 3:
        return ("huge", draw(st.sampled_from([300_000, 900_000])))
    return ("document", draw(documents("actions")))


def build_body(spec: tuple[str, Any]) -> bytes:
    kind, value = spec
    if kind == "bytes":
        body: bytes = value
        return body
    if kind == "nested":
        depth: int = value
        return b"[" * depth + b"]" * depth
    if kind == "errors":
        return json.dumps({"errors": value}).encode()
    if kind == "huge":
        return json.dumps({"actions": [{"id": 1, "name": huge_string(value)}]}).encode()
    return json.dumps(value).encode()


CALLS = ["get_one", "get_many", "list", "request", "create", "update", "delete"]


async def _call(client: AsyncResourceClient[Any], call: str) -> Any:
    if call == "get_one":
        return await client.get("actions", 1)
    if call == "get_many":
        return await client.get("actions", [1, 2])
    if call == "list":
        return await client.list("actions", page_size=10)
    if call == "request":
        return await client.request("GET", "actions", params={"page": 2})
    if call == "create":
        return await client.create("actions", {"name": "x"})
    if call == "update":
        return await client.update("actions", 1, {"name": "y"})
    return await client.delete("actions", 1)


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    status=statuses,
    content_type=content_types,
    retry_after=retry_after_values,
    body=bodies(),
    call=st.sampled_from(CALLS),
    typed=st.booleans(),
)
def test_any_response_gives_a_result_or_a_typed_error_promptly(
    harness: Harness,
    status: int,
    content_type: str,
    retry_after: str | None,
    body: tuple[str, Any],
    call: str,
    typed: bool,
) -> None:
    """Any status, Content-Type (true or not), Retry-After and body: a result or a typed error."""
    headers = {"Content-Type": content_type} if content_type else {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if 300 <= status < 400:
        headers["Location"] = "http://evil.example/steal"
    harness.reply = (status, headers, b"" if status == 204 else build_body(body))
    client = harness.client.with_options(typed=typed)
    started = time.monotonic()
    try:
        harness.run(_call(client, call))
    except ActionstepError as exc:
        text = str(exc)
        assert len(text) < 2000  # a huge body is never copied into the message
        assert "fuzz-access" not in text
    # The retry budget is 50 ms: a hostile Retry-After never parks the caller.
    assert time.monotonic() - started < 5.0


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(retry_after=retry_after_values, status=st.sampled_from([429, 503]))
def test_hostile_retry_after_never_hangs_or_escapes(
    harness: Harness, retry_after: str | None, status: int
) -> None:
    """Retry-After as a date, negative, enormous or garbage: a typed error within the budget."""
    headers = {"Content-Type": "application/vnd.api+json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    harness.reply = (status, headers, b'{"errors": [{"detail": "slow down"}]}')
    # Each example is a new server: forget the pause and rate earlier examples' 429s taught.
    harness.client._governor = Governor(KEY)
    started = time.monotonic()
    with pytest.raises(ActionstepError) as caught:
        harness.run(harness.client.get("actions", 1))
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert time.monotonic() - started < 2.0
    if status == 429:
        delay = caught.value.retry_after  # type: ignore[attr-defined]
        assert delay is None or 0.0 <= delay <= 3600.0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_five_megabyte_body_is_refused_within_bounded_memory(
    harness: Harness, declared: bool
) -> None:
    """A 5 MB answer to a client limited to 1 MB is refused, and never held in memory whole."""
    chunk = b"x" * 65536
    count = (5 << 20) // len(chunk)
    headers = {"Content-Type": "application/vnd.api+json"}
    if declared:
        headers["Content-Length"] = str(len(chunk) * count)
    harness.client._governor = Governor(KEY)  # earlier examples' 429 pauses must not carry over
    harness.reply = (200, headers, b"")
    harness.chunks = (chunk, count)
    try:
        tracemalloc.start()
        with pytest.raises(ResponseDecodeError, match="limit"):
            harness.run(harness.client.get("actions", 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        harness.chunks = None
    assert peak < 2.5 * (1 << 20)
