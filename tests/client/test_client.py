"""AsyncResourceClient against FakeActionstep over loopback: operations and wire quirks."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from actionstep_async._client import USER_AGENT, AsyncResourceClient
from actionstep_async._errors import (
    APIError,
    InvalidRequestError,
    NotFoundError,
    ResponseDecodeError,
)
from actionstep_async._governor import Governor
from actionstep_async._manager import TokenManager
from actionstep_async._models import Action, Page, Record
from actionstep_async._query import F
from actionstep_async._rate import GovernorPolicy
from actionstep_async._tokens import Token
from actionstep_async.testing import FAST_RETRY, FakeActionstep, FaultRule

from .conftest import KEY, rest_requests

MakeClient = Callable[..., AsyncResourceClient]


def tracing(events: list[Any]) -> aiohttp.TraceConfig:
    """A TraceConfig recording every request start (method, url, headers)."""
    config = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        events.append(params)

    config.on_request_start.append(on_start)
    return config


async def test_get_one_record(client: AsyncResourceClient) -> None:
    """get(resource, id) returns that record as a read-only mapping."""
    record = await client.get("actions", 7)
    assert isinstance(record, Record)
    assert record.id == 7
    assert record["isDeleted"] in ("T", "F")


async def test_get_many_ids_is_one_comma_list_request(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """get(resource, [ids]) sends one /actions/1,2,3 request and returns a list."""
    records = await client.get("actions", [1, 2, 3])
    assert [r.id for r in records] == [1, 2, 3]
    assert rest_requests(fake_actionstep) == 1


async def test_get_missing_record_raises_not_found(client: AsyncResourceClient) -> None:
    """An unknown id raises NotFoundError carrying the server's error details."""
    with pytest.raises(NotFoundError) as caught:
        await client.get("actions", 999999)
    assert caught.value.errors
    assert caught.value.request_id


async def test_composite_ids_are_allowed(client: AsyncResourceClient) -> None:
    """Composite ids such as 1--1--1 reach the server untouched."""
    first = (await client.list("actionparticipants", page_size=1))[0]
    assert "--" in first.id
    again = await client.get("actionparticipants", first.id)
    assert again.id == first.id


async def test_list_returns_page_with_paging(client: AsyncResourceClient) -> None:
    """list() returns one Page with meta.paging totals."""
    page = await client.list("actions", page=2, page_size=20)
    assert isinstance(page, Page)
    assert len(page) == 20
    assert (page.paging.page, page.paging.page_size, page.paging.record_count) == (2, 20, 50)
    assert page.paging.page_count == 3
    assert page[0].id == 21


async def test_list_without_matches_is_empty(client: AsyncResourceClient) -> None:
    """A query matching nothing (204 on the wire) gives an empty page, not an error."""
    page = await client.list("actions", filters={"name": "no such matter"})
    assert list(page) == []
    assert page.paging.record_count == 0


async def test_list_with_one_match_gives_one_record(client: AsyncResourceClient) -> None:
    """A query with one match (an object on the wire) gives a page of one record."""
    page = await client.list("actions", filters=[F("id").eq(5)])
    assert [r.id for r in page] == [5]


async def test_filters_fields_and_sort_reach_the_server(client: AsyncResourceClient) -> None:
    """Filters with operators, fields and sort shape the server's answer."""
    page = await client.list(
        "actions",
        filters={"id_in": [3, 9, 4, 30], "priority_gteq": 0},
        fields=["id", "name"],
        sort=["-id"],
    )
    assert [r.id for r in page] == [30, 9, 4, 3]
    assert set(page[0]) <= {"id", "name", "links"}


async def test_include_side_loads_linked_records(client: AsyncResourceClient) -> None:
    """include= puts related records in linked, reachable through related()."""
    page = await client.list("actions", include=["actionType", "assignedTo"], page_size=5)
    for action in page:
        (action_type,) = page.related(action, "actionType")
        assert str(action_type.id) == action.links["actionType"]
        assert page.related(action, "assignedTo")[0].id == int(action.links["assignedTo"])


async def test_typed_records_for_core_resources(make_client: MakeClient) -> None:
    """typed=True turns actions into Action models and leaves other resources as Records."""
    client = make_client(typed=True)
    action = await client.get("actions", 3)
    assert isinstance(action, Action)
    assert isinstance(action.is_deleted, bool)
    assert isinstance(action.created_timestamp, datetime)
    assert action.created_timestamp.utcoffset() is not None
    user = await client.get("users", 1)
    assert isinstance(user, Record)


async def test_page_size_over_200_sends_nothing(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A page_size of 201 is an InvalidRequestError before any request."""
    with pytest.raises(InvalidRequestError):
        await client.list("actions", page_size=201)
    assert rest_requests(fake_actionstep) == 0


async def test_create_update_delete_round_trip(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """create wraps the body under the resource, update PUTs, delete removes the record."""
    created = await client.create("filenotes", {"text": "Client called"}, links={"action": 4})
    assert created["text"] == "Client called"
    assert created.links["action"] == "4"
    updated = await client.update("filenotes", created.id, {"text": "Client called back"})
    assert updated["text"] == "Client called back"
    await client.delete("filenotes", created.id)
    with pytest.raises(NotFoundError):
        await client.get("filenotes", created.id)
    assert rest_requests(fake_actionstep, "POST") == 1
    assert rest_requests(fake_actionstep, "PUT") == 1


async def test_write_booleans_are_sent_as_t_and_f(client: AsyncResourceClient) -> None:
    """A Python bool in fields is sent as Actionstep's "T"/"F"."""
    updated = await client.update("actions", 2, {"isBillableOverride": True})
    assert updated["isBillableOverride"] == "T"


@pytest.mark.fake_actionstep(created_status=201)
async def test_create_accepts_201(client: AsyncResourceClient) -> None:
    """A 201 Created answer is as good as 200."""
    created = await client.create("filenotes", {"text": "x"}, links={"action": 1})
    assert created.id is not None


async def test_delete_many_is_one_request(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """delete(resource, [ids]) removes them all with one comma-list DELETE."""
    await client.delete("filenotes", [1, 2, 3])
    assert [r.id for r in await client.get("filenotes", [1, 2, 3, 4])] == [4]
    assert rest_requests(fake_actionstep, "DELETE") == 1


async def test_raw_request_returns_the_document(client: AsyncResourceClient) -> None:
    """request() is an escape hatch returning the decoded document."""
    document = await client.request("GET", "actions/5", params={"fields": "id,name"})
    assert document is not None
    assert document["actions"]["id"] == 5
    assert "meta" in document
    created = await client.request(
        "POST", "filenotes", json={"filenotes": {"text": "raw", "links": {"action": 2}}}
    )
    assert created is not None
    assert created["filenotes"]["text"] == "raw"
    with pytest.raises(InvalidRequestError):
        await client.request("GET", "actions/../oauth/token")
    with pytest.raises(InvalidRequestError):
        await client.request("TRACE", "actions/5")  # type: ignore[arg-type]


async def test_headers_sent(make_client: MakeClient, manager: TokenManager) -> None:
    """Every request carries the JSON API media types, the bearer token and our User-Agent."""
    events: list[Any] = []
    async with aiohttp.ClientSession(trace_configs=[tracing(events)]) as session:
        client = make_client(session=session)
        await client.get("actions", 1)
        await client.create("filenotes", {"text": "x"}, links={"action": 1})
    token = await manager.token(KEY)
    for event in events:
        assert event.headers["Accept"] == "application/vnd.api+json"
        assert event.headers["Content-Type"] == "application/vnd.api+json"
        assert event.headers["Authorization"] == f"Bearer {token.access_token}"
        assert event.headers["User-Agent"] == USER_AGENT
        assert not str(event.url).endswith("/")
    assert USER_AGENT.startswith("actionstep-async/")
    assert [str(e.url).split("/api/")[1] for e in events] == ["rest/actions/1", "rest/filenotes"]


async def test_borrowed_session_keeps_trace_configs_and_stays_open(make_client: MakeClient) -> None:
    """A session passed in is used as is (trace hooks fire) and is not closed by aclose()."""
    events: list[Any] = []
    async with aiohttp.ClientSession(trace_configs=[tracing(events)]) as session:
        client = make_client(session=session)
        async with client:
            await client.get("actions", 1)
            await client.list("actions")
        assert len(events) == 2
        assert not session.closed


async def test_borrowed_session_defaults_cannot_change_answers(make_client: MakeClient) -> None:
    """A session made with raise_for_status=True still gives our typed errors, not aiohttp's."""
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        client = make_client(session=session)
        with pytest.raises(NotFoundError):
            await client.get("actions", 999_999)
        assert (await client.get("actions", 1))["id"] == 1


def _owned_session(client: AsyncResourceClient) -> aiohttp.ClientSession:
    owned = client._holder.owned
    assert owned is not None
    assert owned.session is not None
    return owned.session


async def test_owned_session_closed_by_context_manager(make_client: MakeClient) -> None:
    """An owned session is created on first use and closed on exit; the client then refuses."""
    client = make_client()
    async with client:
        await client.get("actions", 1)
        session = _owned_session(client)
        was_open = not session.closed
    assert was_open
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.get("actions", 1)


async def test_unclosed_owned_session_warns(manager: TokenManager) -> None:
    """Dropping a client whose own session is still open emits a ResourceWarning."""
    client = AsyncResourceClient(manager, KEY)
    await client.get("actions", 1)
    session = _owned_session(client)
    box = [client]
    del client

    def drop_last_reference() -> None:
        box.clear()
        gc.collect()

    with pytest.warns(ResourceWarning, match="AsyncResourceClient was not closed"):
        drop_last_reference()
    await session.close()


async def test_url_follows_the_current_token(
    client: AsyncResourceClient, manager: TokenManager, fake_actionstep: FakeActionstep
) -> None:
    """When a new token names another api_endpoint, the next request goes there."""
    await client.get("actions", 1)
    async with FakeActionstep(records={"actions": 3}) as other:
        await manager.save(KEY, other.issue_token(scopes=("all",)))
        record = await client.get("actions", 2)
        assert record.id == 2
        assert rest_requests(other) == 1
    assert rest_requests(fake_actionstep) == 1


async def test_redirects_are_not_followed_and_never_leak_the_token(
    fake_actionstep: FakeActionstep, manager: TokenManager
) -> None:
    """A 3xx to another host is an error; the other host never sees the Authorization header."""
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"actions": {"id": 1}})

    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", elsewhere)
    async with TestServer(other_app, host="127.0.0.1", port=0) as other:
        target = str(other.make_url("/api/rest/actions/1"))

        async def redirect(_: web.Request) -> web.Response:
            raise web.HTTPFound(target)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", redirect)
        async with TestServer(app, host="127.0.0.1", port=0) as server:
            token = fake_actionstep.issue_token(scopes=("all",))
            moved = Token(
                access_token=token.access_token,
                refresh_token=token.refresh_token,
                expires_at=token.expires_at,
                issued_at=token.issued_at,
                api_endpoint=str(server.make_url("/api/")),
            )
            await manager.save(KEY, moved)
            async with AsyncResourceClient(manager, KEY) as client:
                with pytest.raises(APIError, match="redirect") as caught:
                    await client.get("actions", 1)
    assert caught.value.status == 302
    assert seen == []


async def test_html_and_truncated_bodies_raise_decode_errors(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """An HTML page or truncated JSON with status 200 is a ResponseDecodeError."""
    fake_actionstep.add_fault(FaultRule(kind="html", count=1))
    with pytest.raises(ResponseDecodeError, match=r"HTML page.*text/html"):
        await client.get("actions", 1)
    fake_actionstep.add_fault(FaultRule(kind="malformed", count=1))
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        await client.list("actions")


async def test_oversized_bodies_are_refused(make_client: MakeClient) -> None:
    """A body larger than max_body_bytes is refused instead of buffered."""
    client = make_client(max_body_bytes=2000)
    await client.get("actions", 1)
    with pytest.raises(ResponseDecodeError, match="2000-byte limit"):
        await client.list("actions", page_size=50)


async def test_error_status_carries_errors_and_request_id(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A 400 from the server raises BadRequestError with the parsed errors and request id."""
    fake_actionstep.add_fault(FaultRule(kind="status", status=400, count=1))
    with pytest.raises(APIError) as caught:
        await client.get("actions", 1)
    error = caught.value
    assert type(error).__name__ == "BadRequestError"
    assert error.status == 400
    assert error.method == "GET"
    assert error.errors
    assert error.request_id
    assert error.request_id.startswith("fake-")
    assert error.request_id in str(error)


async def test_typed_mode_can_be_switched_per_call(client: AsyncResourceClient) -> None:
    """with_options returns a copy with other settings sharing the same session."""
    typed = client.with_options(typed=True, timeout=5)
    assert isinstance(await typed.get("actions", 1), Action)
    assert isinstance(await client.get("actions", 1), Record)
    assert typed._holder is client._holder
    assert typed.timeout == 5


async def test_client_repr_is_informative(client: AsyncResourceClient) -> None:
    """repr names the key and session ownership."""
    text = repr(client)
    assert KEY in text
    assert "owned" in text


async def test_requests_run_concurrently_up_to_the_limit(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """With concurrency=4, 16 slow requests take about four rounds.

    The governor starts unpaced here: its slow start would pace the first second on its own.
    """
    fake_actionstep.add_fault(FaultRule(kind="latency", latency=0.1))
    unpaced = Governor(KEY, policy=GovernorPolicy(initial_rate=None))
    client = make_client(concurrency=4, governor=unpaced)
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(client.get("actions", i) for i in range(1, 17)))
    elapsed = asyncio.get_running_loop().time() - started
    assert 0.38 <= elapsed < 1.2


def test_iterate_rejects_bad_prefetch(client: AsyncResourceClient) -> None:
    """prefetch must be a positive int, checked before any request."""
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidRequestError, match="prefetch"):
            client.iterate("actions", prefetch=bad)  # type: ignore[arg-type]


async def test_accessors_and_copies_prepare_each_token_once(
    make_client: Callable[..., AsyncResourceClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The headers and endpoint for a token are built once for a client and all its copies."""
    from actionstep_async import _client

    built: list[Token] = []
    real = _client._prepare

    def counting(token: Token) -> Any:
        built.append(token)
        return real(token)

    monkeypatch.setattr(_client, "_prepare", counting)
    client = make_client()  # untyped: each ``client.actions`` reads through a typed copy
    for id in (1, 2, 3):
        assert isinstance(await client.actions.get(id), Action)
    await client.with_options(timeout=5).get("actions", 1)
    await client.list("actions")
    assert len(built) == 1
    assert client.actions._client is client.actions._client
    slower = client.with_options(timeout=5)
    assert slower.actions._client.timeout == 5, "a copy's accessors keep the copy's options"


class _CountingManager(TokenManager):
    """A subclass with its own token(): the client must await it for every request."""

    asked = 0

    async def token(self, key: str) -> Token:
        self.asked += 1
        return await super().token(key)


async def test_a_managers_own_token_method_is_awaited_for_every_request(
    manager: TokenManager, fake_actionstep: FakeActionstep
) -> None:
    """The in-memory fast path is the base class's token(); a subclass's override still runs."""
    counting = _CountingManager(manager.refresher)
    await counting.save(KEY, fake_actionstep.issue_token(scopes=("all",)))
    async with AsyncResourceClient(counting, KEY) as client:
        for page in (1, 2):
            await client.list("actions", page=page, page_size=5)
    assert counting.asked == 2
    await counting.aclose()


@pytest.mark.parametrize(
    ("faults", "options", "raised", "sends"),
    [
        ([], {}, None, 1),
        ([FaultRule(kind="status", status=503, count=1)], {}, None, 2),
        ([FaultRule(kind="status", status=500, count=1)], {}, APIError, 1),
        ([FaultRule(kind="status", status=503)], {}, APIError, FAST_RETRY.max_attempts),
        ([FaultRule(kind="status", status=400, count=1)], {}, APIError, 1),
        ([FaultRule(kind="rate_limit", count=1)], {}, None, 2),
        # aiohttp itself sends a GET again when a pooled connection turns out closed.
        ([FaultRule(kind="drop", count=1)], {}, None, 1),
        ([FaultRule(kind="html", count=1)], {}, ResponseDecodeError, 1),
        ([], {"max_body_bytes": 10}, ResponseDecodeError, 1),
    ],
)
async def test_every_exchange_hands_back_its_permits_and_is_counted_once(
    make_client: Callable[..., AsyncResourceClient],
    fake_actionstep: FakeActionstep,
    faults: list[FaultRule],
    options: dict[str, Any],
    raised: type[Exception] | None,
    sends: int,
) -> None:
    """Whatever an exchange ends in (answer, error status, 429, dropped connection, a body
    refused), the limiter's and the governor's permits come back and each send is counted."""
    client = make_client(**options)
    for fault in faults:
        fake_actionstep.add_fault(fault)
    if raised is None:
        await client.list("actions", page=1, page_size=5)
    else:
        with pytest.raises(raised):
            await client.list("actions", page=1, page_size=5)
    assert client.limiter.in_flight == 0
    assert client.governor.in_flight == 0
    assert client.stats.requests == sends
