"""Limits that hold against a hostile resource server (issue 12, section 4).

A scripted aiohttp app on loopback plays the server: paging totals that lie or change, pages
that repeat, no paging block at all, integers past 64 bits, a server that never answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web

from actionstep_async import (
    AsyncResourceClient,
    InconsistentPagingError,
    InvalidRequestError,
    OAuthClient,
    RequestTimeout,
    RetryPolicy,
    Token,
    TokenManager,
    UsageError,
)
from actionstep_async.testing import FakeActionstep

from ._peers import silent_listener

KEY = "org"
Script = Callable[[int], dict[str, Any]]


@attrs.define
class Scripted:
    base: str
    script: list[Script]
    hits: list[int]


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    state = Scripted("", [], [])

    async def actions(request: web.Request) -> web.Response:
        number = int(request.query.get("page", "1"))
        state.hits.append(number)
        return web.json_response(state.script[0](number), content_type="application/vnd.api+json")

    app = web.Application()
    app.router.add_get("/api/rest/actions", actions)
    app.router.add_get("/api/rest/actions/{id}", actions)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.base = f"http://127.0.0.1:{runner.addresses[0][1]}/api/"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(server: Scripted) -> AsyncIterator[AsyncResourceClient]:
    async with FakeActionstep() as fake:
        manager = TokenManager(fake.oauth_client())
        await manager.save(KEY, attrs.evolve(fake.issue_token(), api_endpoint=server.base))
        async with AsyncResourceClient(manager, KEY) as made:
            yield made


def _page(
    ids: list[int], *, records: int | None, pages: int | None, size: int = 2
) -> dict[str, Any]:
    document: dict[str, Any] = {"actions": [{"id": i} for i in ids]}
    if records is not None and pages is not None:
        block = {"recordCount": records, "pageCount": pages, "page": 1, "pageSize": size}
        document["meta"] = {"paging": {"actions": block}}
    return document


async def _all(client: AsyncResourceClient) -> list[Any]:
    return [record.id async for record in client.iterate("actions", page_size=2)]


async def test_absurd_page_count_is_refused_after_one_request(
    server: Scripted, client: AsyncResourceClient
) -> None:
    server.script.append(lambda n: _page([1, 2], records=4, pages=10**9))
    with pytest.raises(InconsistentPagingError, match="cannot hold"):
        await _all(client)
    assert server.hits == [1]


async def test_pages_added_mid_run_are_a_typed_error(
    server: Scripted, client: AsyncResourceClient
) -> None:
    server.script.append(
        lambda n: _page([2 * n - 1, 2 * n], records=4 if n == 1 else 6, pages=2 if n == 1 else 3)
    )
    with pytest.raises(InconsistentPagingError, match="changed during the run"):
        await _all(client)
    assert len(server.hits) <= 2 + 1


async def test_a_server_that_repeats_page_one_is_a_typed_error(
    server: Scripted, client: AsyncResourceClient
) -> None:
    server.script.append(lambda n: _page([1, 2], records=6, pages=3))
    with pytest.raises(InconsistentPagingError, match="repeats"):
        await _all(client)
    assert len(server.hits) <= 3


async def test_a_record_shifted_onto_the_next_page_is_yielded_once(
    server: Scripted, client: AsyncResourceClient
) -> None:
    pages = {1: [1, 2], 2: [2, 3], 3: [4]}
    server.script.append(lambda n: _page(pages[n], records=5, pages=3))
    assert await _all(client) == [1, 2, 3, 4]
    assert sorted(server.hits) == [1, 2, 3]


async def test_without_a_paging_block_every_page_is_followed(
    server: Scripted, client: AsyncResourceClient
) -> None:
    pages: dict[int, list[int]] = {1: [1, 2], 2: [3], 3: [4, 5], 4: []}
    server.script.append(lambda n: _page(pages.get(n, []), records=None, pages=None))
    assert await _all(client) == [1, 2, 3, 4, 5]
    assert server.hits == [1, 2, 3, 4]


async def test_ids_past_64_bits_stay_ints(server: Scripted, client: AsyncResourceClient) -> None:
    big = 2**70 + 1
    server.script.append(lambda n: {"actions": [{"id": big, "links": {"owner": str(big)}}]})
    record = await client.get("actions", 1)
    assert record.id == big
    assert type(record.id) is int
    listed = await client.list("actions")
    assert [r.id for r in listed] == [big]


@pytest.mark.parametrize(
    "ids",
    [b"12", bytearray(b"7"), memoryview(b"7"), 10**5000],
    ids=["bytes", "bytearray", "memoryview", "huge"],
)
async def test_ids_that_are_not_ids_are_refused(
    server: Scripted, client: AsyncResourceClient, ids: Any
) -> None:
    with pytest.raises(InvalidRequestError):
        await client.get("actions", ids)
    assert server.hits == []


async def test_null_string_filter_is_not_none(
    server: Scripted, client: AsyncResourceClient
) -> None:
    server.script.append(lambda n: _page([], records=0, pages=0))
    with pytest.raises(InvalidRequestError, match="pass None"):
        await client.list("actions", filters={"name": ":NULL"})
    await client.list("actions", filters={"name": None})
    with pytest.raises(InvalidRequestError):
        await client.list("actions", filters={"id": 10**5000})
    assert len(server.hits) == 1


async def test_max_elapsed_includes_the_last_attempt() -> None:
    """Two 3 s attempts would take 6 s; the budget of 3.5 s cuts the retry's timeout."""
    async with FakeActionstep() as fake, silent_listener() as port:
        manager = TokenManager(fake.oauth_client())
        token = attrs.evolve(fake.issue_token(), api_endpoint=f"http://127.0.0.1:{port}/api/")
        await manager.save(KEY, token)
        retry = RetryPolicy(max_attempts=5, max_elapsed=3.5, backoff_base=0.01, backoff_cap=0.02)
        async with AsyncResourceClient(manager, KEY, timeout=3.0, retry=retry) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await client.list("actions")
            elapsed = time.monotonic() - started
    assert elapsed < 5.5, f"{elapsed:.2f} s spent against a 3.5 s budget"


async def test_closed_client_and_other_loop_are_typed_errors() -> None:
    async with FakeActionstep() as fake:
        client = await fake.connect(KEY)
        await client.list("actions")
        await client.aclose()
        with pytest.raises(UsageError, match="closed"):
            await client.list("actions")
        await client.manager.aclose()


class SlowRefresher:
    """The fake's OAuth client, half a second slower: a refresh is surely in flight meanwhile."""

    def __init__(self, inner: OAuthClient) -> None:
        self.inner = inner

    async def refresh(self, token: Token) -> Token:
        await asyncio.sleep(0.5)
        return await self.inner.refresh(token)


async def test_manager_on_two_running_loops_is_a_usage_error_not_reauthorization() -> None:
    async with FakeActionstep() as fake:
        manager = TokenManager(SlowRefresher(fake.oauth_client()))
        expired = attrs.evolve(fake.issue_token(), expires_at=time.time() - 1)
        await manager.save(KEY, expired)

        def on_own_loop(delay: float) -> Token | BaseException:
            async def run() -> Token:
                await asyncio.sleep(delay)
                return await manager.token(KEY)

            try:
                return asyncio.run(run())
            except Exception as exc:
                return exc

        first, second = await asyncio.gather(
            asyncio.to_thread(on_own_loop, 0.0), asyncio.to_thread(on_own_loop, 0.2)
        )
        assert isinstance(first, Token)
        assert isinstance(second, UsageError), second
        assert "one TokenManager per loop" in str(second)
        # One loop after another (both finished) is fine: the manager follows the new loop.
        later = await asyncio.to_thread(on_own_loop, 0.0)
        assert isinstance(later, Token)
        assert fake.counters.token_calls_by_grant["refresh_token"] == 1
