"""Retries, token refresh, write safety, bulk iteration, rate limits and secrecy."""

from __future__ import annotations

import asyncio
import logging
import string
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actionstep_async._client import AsyncResourceClient
from actionstep_async._errors import (
    ConnectError,
    InvalidRequestError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeout,
    ServerError,
    UnauthorizedError,
)
from actionstep_async._manager import TokenManager
from actionstep_async._retry import RetryPolicy
from actionstep_async._tokens import Token
from actionstep_async.testing import FakeActionstep, FaultRule

from .._hypothesis import examples
from .conftest import KEY, rest_requests

MakeClient = Callable[..., AsyncResourceClient]

# -- validation: nothing hostile ever reaches the network -------------------------------------

_SAFE = string.ascii_letters + string.digits
_HOSTILE_PARTS = ["/", "?", "#", "%", "%2F", "..", " ", "\t", "\n", "\r", "\x00", "\x7f", "é",
                  "\u202e", "ａ", "&", "\\", "@", "=", "[", "]", "+", ","]  # fmt: skip
_ID_CHARS = frozenset(_SAFE + "_-.:;")
_hostile_text = st.one_of(
    st.builds(
        lambda a, b, c: a + b + c,
        st.text(_SAFE, max_size=8),
        st.sampled_from(_HOSTILE_PARTS),
        st.text(_SAFE, max_size=8),
    ),
    st.text(max_size=20).filter(lambda s: not s or ".." in s or any(c not in _ID_CHARS for c in s)),
)
_hostile_ids = st.one_of(
    _hostile_text.filter(lambda s: "," not in s),
    st.integers(max_value=-1),
    st.booleans(),
    st.floats(),
    st.none(),
    st.just([]),
    st.lists(_hostile_text.filter(lambda s: "," not in s), min_size=1, max_size=3).map(
        lambda ids: [1, *ids]
    ),
)


def _refused_before_io(call: Any) -> bool:
    """Drive a client coroutine one step: True if it raised InvalidRequestError at once."""
    try:
        call.send(None)
    except InvalidRequestError:
        return True
    except StopIteration:
        return False
    call.close()
    return False


async def test_hostile_resource_names_and_ids_never_produce_a_request(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """Names and ids that could alter the path or query are refused before any I/O."""

    @settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
    @given(resource=_hostile_text, ident=_hostile_ids)
    def check(resource: str, ident: Any) -> None:
        assert _refused_before_io(client.get(resource, 1))
        assert _refused_before_io(client.get("actions", ident))
        assert _refused_before_io(client.delete("actions", ident))
        assert _refused_before_io(client.update("actions", ident, {"name": "x"}))
        assert _refused_before_io(client.list(resource))
        assert _refused_before_io(client.create(resource, {"name": "x"}))
        # request() takes multi-segment paths, so "/" alone is legal there; "%" never is.
        assert _refused_before_io(client.request("GET", "actions/" + resource.replace("/", "%")))
        with pytest.raises(InvalidRequestError):
            client.iterate(resource)

    check()
    assert rest_requests(fake_actionstep) == 0
    owned = client._holder.owned
    assert owned is not None
    assert owned.session is None  # not even a session was needed


@pytest.mark.parametrize("resource", ["", "actions/", "actions/../x", "actions?x=1", "a#b", "ä"])
async def test_obvious_bad_resource_names(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, resource: str
) -> None:
    """Empty, slashed, dotted, query-carrying and non-ASCII names raise InvalidRequestError."""
    with pytest.raises(InvalidRequestError):
        await client.get(resource, 1)
    assert rest_requests(fake_actionstep) == 0


# -- bulk iteration -------------------------------------------------------------------------------


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
@pytest.mark.fake_actionstep(records={"actions": 20000})
@pytest.mark.parametrize("concurrency", [1, 8])
async def test_iterate_20000_records_once_each_in_order(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, concurrency: int
) -> None:
    """All 20,000 records arrive exactly once, in order, whatever the page concurrency."""
    ids = [r.id async for r in client.iterate("actions", page_size=200, concurrency=concurrency)]
    assert ids == list(range(1, 20001))
    assert rest_requests(fake_actionstep, "GET") == 100


async def test_iterate_no_matches_and_one_match(client: AsyncResourceClient) -> None:
    """A query with no matches yields nothing; one with one match yields one record."""
    assert [r async for r in client.iterate("actions", filters={"name": "nobody"})] == []
    assert [r.id async for r in client.iterate("actions", filters={"id": 9})] == [9]


async def test_iterate_keeps_only_a_window_of_pages_in_flight(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """Stopping early cancels the pages in flight; no more than the window was requested."""
    iterator = client.iterate("actions", page_size=5, concurrency=3)
    seen = 0
    async for _ in iterator:
        seen += 1
        if seen == 6:
            break
    await iterator.aclose()  # type: ignore[attr-defined]
    assert rest_requests(fake_actionstep, "GET") <= 1 + 3 + 1


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
@pytest.mark.fake_actionstep(records={"actions": 20000})
async def test_token_revoked_mid_iteration_refreshes_exactly_once(
    client: AsyncResourceClient, manager: TokenManager, fake_actionstep: FakeActionstep
) -> None:
    """Revoking the token server-side mid-iteration costs one refresh and no lost records."""
    count = 0
    async for _ in client.iterate("actions", page_size=200, concurrency=8):
        count += 1
        if count == 3000:
            fake_actionstep.revoke_access_token((await manager.token(KEY)).access_token)
    assert count == 20000
    assert fake_actionstep.counters.token_calls == 1


async def test_second_401_surfaces_as_unauthorized(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A 401 that persists after one refresh raises UnauthorizedError; no refresh storm."""
    fake_actionstep.add_fault(FaultRule(kind="status", status=401))
    with pytest.raises(UnauthorizedError):
        await client.get("actions", 1)
    assert rest_requests(fake_actionstep) == 2
    assert fake_actionstep.counters.token_calls == 1


# -- retries --------------------------------------------------------------------------------------


async def test_get_retries_503_then_succeeds(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """Two 503s then success: the caller just gets the record."""
    fake_actionstep.add_fault(FaultRule(kind="status", status=503, count=2))
    assert (await client.get("actions", 4)).id == 4
    assert rest_requests(fake_actionstep) == 3


async def test_attempt_budget_is_respected(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """With max_attempts=3 a persistent 502 is sent three times, then raises ServerError."""
    fake_actionstep.add_fault(FaultRule(kind="status", status=502))
    client = make_client(retry=RetryPolicy(max_attempts=3, backoff_base=0.001))
    with pytest.raises(ServerError):
        await client.get("actions", 1)
    assert rest_requests(fake_actionstep) == 3


async def test_retry_after_longer_than_the_time_budget_fails_fast(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """A Retry-After beyond the 429 time budget raises RateLimitedError at once, with the hint."""
    fake_actionstep.add_fault(FaultRule(kind="rate_limit", retry_after=30))
    client = make_client(retry=RetryPolicy(rate_limited_elapsed=2.0))
    started = asyncio.get_running_loop().time()
    with pytest.raises(RateLimitedError) as caught:
        await client.get("actions", 1)
    assert caught.value.retry_after == 30
    assert asyncio.get_running_loop().time() - started < 1.0
    assert rest_requests(fake_actionstep) == 1


async def test_retry_after_is_honoured(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """After a 429 with Retry-After: 0.3 the retry waits at least that long."""
    fake_actionstep.add_fault(FaultRule(kind="rate_limit", retry_after=0.3, count=1))
    started = asyncio.get_running_loop().time()
    assert (await client.get("actions", 1)).id == 1
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert rest_requests(fake_actionstep) == 2


async def test_limiter_slot_is_free_while_a_retry_waits(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """A request sleeping out a 503's Retry-After does not block others (concurrency=1).

    (A 429's Retry-After pauses every caller of the key: see tests/client/test_governor.py.)
    """
    client = make_client(concurrency=1)
    fake_actionstep.add_fault(
        FaultRule(kind="status", status=503, retry_after=1, count=1, resource="actions")
    )
    slow = asyncio.ensure_future(client.get("actions", 1))
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    await client.get("participants", 1)
    assert asyncio.get_running_loop().time() - started < 0.5
    assert not slow.done()
    assert (await slow).id == 1


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_many_callers_under_a_rate_limit_all_succeed(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """64 concurrent callers against a 400 req/s limit all get their records."""
    fake_actionstep.rate_limit(rate=400, burst=40)
    client = make_client(
        adaptive=True, concurrency=64, retry=RetryPolicy(max_attempts=20, max_elapsed=30)
    )
    records = await asyncio.gather(*(client.get("actions", i % 50 + 1) for i in range(400)))
    assert len(records) == 400
    assert fake_actionstep.counters.requests[("GET", "actions", 200)] == 400
    stats = client.stats
    assert stats.requests == 400 + stats.rate_limited
    assert stats.retries["rate_limited"] == stats.rate_limited


async def test_post_is_never_repeated_after_a_500(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A POST answered with 500 (or 503) raises at once: it may have been applied."""
    for status in (500, 503):
        fake_actionstep.add_fault(FaultRule(kind="status", status=status, method="POST", count=1))
        with pytest.raises(ServerError):
            await client.create("filenotes", {"text": "x"}, links={"action": 1})
    assert rest_requests(fake_actionstep, "POST") == 2


async def test_post_is_never_repeated_after_a_dropped_connection(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A POST whose connection dropped after sending raises OutcomeUnknownError, sent once."""
    fake_actionstep.add_fault(FaultRule(kind="drop", method="POST", after=True, count=1))
    with pytest.raises(OutcomeUnknownError, match="check before repeating"):
        await client.create("filenotes", {"text": "maybe"}, links={"action": 1})
    assert rest_requests(fake_actionstep, "POST") == 1
    # The fake applied it: exactly the ambiguity the error reports.
    page = await client.list("filenotes", filters={"text": "maybe"})
    assert len(page) == 1


async def test_post_is_retried_on_429(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A 429 means the POST was not processed, so it is sent again and succeeds once."""
    fake_actionstep.add_fault(
        FaultRule(kind="rate_limit", method="POST", retry_after=0.05, count=1)
    )
    created = await client.create("filenotes", {"text": "once"}, links={"action": 1})
    assert created["text"] == "once"
    assert len(await client.list("filenotes", filters={"text": "once"})) == 1


async def test_post_is_retried_when_the_connection_was_refused(manager: TokenManager) -> None:
    """Connection refused means nothing was sent: even a POST is retried, then ConnectError."""
    token = await manager.token(KEY)
    dead = Token(
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        expires_at=token.expires_at,
        issued_at=token.issued_at,
        api_endpoint="http://127.0.0.1:9/api/",  # discard port: nothing listens
    )
    await manager.save(KEY, dead)
    events: list[Any] = []
    config = aiohttp.TraceConfig()

    async def on_start(*_: Any) -> None:
        events.append(1)

    config.on_request_start.append(on_start)
    retry = RetryPolicy(max_attempts=3, backoff_base=0.001)
    async with (
        aiohttp.ClientSession(trace_configs=[config]) as session,
        AsyncResourceClient(manager, KEY, session=session, retry=retry) as client,
    ):
        with pytest.raises(ConnectError):
            await client.create("filenotes", {"text": "x"})
    assert len(events) == 3


async def test_write_timeout_is_outcome_unknown(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """A POST that times out raises OutcomeUnknownError after exactly one attempt."""
    fake_actionstep.add_fault(FaultRule(kind="latency", latency=1.0, method="POST"))
    client = make_client(timeout=0.2)
    with pytest.raises(OutcomeUnknownError, match="timed out"):
        await client.create("filenotes", {"text": "slow"}, links={"action": 1})
    assert fake_actionstep.counters.faults_fired["latency"] == 1


async def test_put_timeout_retries_then_is_outcome_unknown(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """An idempotent PUT is retried on timeout; when retries run out its outcome is unknown."""
    fake_actionstep.add_fault(FaultRule(kind="latency", latency=1.0, method="PUT"))
    client = make_client(timeout=0.15, retry=RetryPolicy(max_attempts=2, backoff_base=0.001))
    with pytest.raises(OutcomeUnknownError):
        await client.update("filenotes", 1, {"text": "slow"})
    assert fake_actionstep.counters.faults_fired["latency"] == 2


async def test_get_timeout_is_request_timeout(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """A GET that keeps timing out raises RequestTimeout, which is also a TimeoutError."""
    fake_actionstep.add_fault(FaultRule(kind="latency", latency=1.0))
    client = make_client(timeout=0.1, retry=RetryPolicy(max_attempts=2, backoff_base=0.001))
    with pytest.raises(RequestTimeout) as caught:
        await client.get("actions", 1)
    assert isinstance(caught.value, TimeoutError)


async def test_slow_query_can_get_more_time_per_call(
    make_client: MakeClient, fake_actionstep: FakeActionstep
) -> None:
    """with_options(timeout=...) lets one slow call wait longer than the client default."""
    fake_actionstep.add_fault(FaultRule(kind="latency", latency=0.3, count=1))
    client = make_client(timeout=0.1, retry=RetryPolicy(max_attempts=1))
    assert (await client.with_options(timeout=2).get("actions", 1)).id == 1


async def test_dropped_get_is_retried(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A GET whose connection drops is simply sent again."""
    fake_actionstep.add_fault(FaultRule(kind="drop", method="GET", count=1))
    assert (await client.get("actions", 2)).id == 2


# -- observability and secrets --------------------------------------------------------------------


async def test_debug_logs_repr_and_errors_never_contain_the_token(
    make_client: MakeClient,
    manager: TokenManager,
    fake_actionstep: FakeActionstep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logs carry method, URL, status and a fingerprint; no text anywhere carries the token."""
    caplog.set_level(logging.DEBUG)
    token = await manager.token(KEY)
    client = make_client(timeout=0.2, retry=RetryPolicy(max_attempts=2, backoff_base=0.001))
    texts = [repr(client), str(client)]
    await client.get("actions", 1)
    fake_actionstep.add_fault(FaultRule(kind="status", status=503, count=2))
    fake_actionstep.add_fault(FaultRule(kind="html", count=1))
    fake_actionstep.add_fault(FaultRule(kind="latency", latency=1.0, method="POST", count=1))
    for call in (
        client.get("actions", 1),
        client.get("actions", 1),
        client.get("actions", 999999),
        client.create("filenotes", {"text": "x"}),
    ):
        with pytest.raises(Exception) as caught:  # noqa: PT011 - any of several errors
            await call
        texts += [str(caught.value), repr(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert any(
        "GET" in t and "/rest/actions/1" in t and "200" in t and token.fingerprint in t
        for t in texts
    )
    assert all(token.access_token not in text for text in texts)
    assert all(token.refresh_token not in text for text in texts)
