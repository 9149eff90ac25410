"""What reached the wire, and limits that hold against hostile peers (issue 12, sections 2 and 4).

Every peer is a real loopback socket started here: a port whose accept queue is full (SYNs are
dropped, so nothing can be sent), a listener that reads and never answers (the request was
sent), a relay that makes the black-holed port answer again, an aiohttp app serving a gzip bomb.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from urllib.parse import urlsplit

import aiohttp
import attrs
import pytest
from aiohttp import web

from actionstep_async import (
    AiohttpTransport,
    AsyncResourceClient,
    ConnectError,
    Environment,
    OAuthClient,
    OutcomeUnknownError,
    RefreshPolicy,
    ResponseDecodeError,
    RetryPolicy,
    TokenEndpointUnavailable,
    TokenManager,
    TransientError,
    TransportError,
)
from actionstep_async.testing import FakeActionstep, FaultRule

from ._peers import black_hole, silent_listener

KEY = "org"
QUICK = RefreshPolicy(backoff_base=0.05, backoff_cap=0.1, claim_poll=0.01)
WRITE_SCOPES = ("actions", "filenotes")


def _port(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


def _oauth(
    fake: FakeActionstep, environment: Environment, transport: AiohttpTransport
) -> OAuthClient:
    return OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=environment,
        timeout=5.0,
        transport=transport,
    )


async def test_black_holed_token_endpoint_is_transient_then_refreshes_normally() -> None:
    async with (
        FakeActionstep(reuse_detection=True) as fake,
        AiohttpTransport(connect_timeout=0.3) as transport,
    ):
        with black_hole() as hole:
            manager = TokenManager(
                _oauth(fake, Environment.local(hole.url), transport), policy=QUICK
            )
            expired = attrs.evolve(fake.issue_token(), expires_at=time.time() - 1)
            await manager.save(KEY, expired)
            for _ in range(3):  # every blip, backoff or not, is transient
                with pytest.raises(TransientError) as caught:
                    await manager.token(KEY)
                assert isinstance(caught.value, TransportError)
                assert caught.value.may_have_been_sent is False
                await asyncio.sleep(0.15)  # past the manager's backoff
            assert fake.counters.token_calls == 0
            async with hole.open(_port(fake.base_url)):
                token = await manager.token(KEY)
        assert token.access_token != expired.access_token
        assert fake.counters.token_calls_by_grant["refresh_token"] == 1
        assert fake.counters.spent_token_reuses == 0
        async with AsyncResourceClient(manager, KEY) as client:
            assert (await client.list("actions")).records is not None
        await manager.aclose()


async def test_write_to_a_black_hole_is_retried_and_lands_once_it_answers() -> None:
    """A POST that never reached the wire is safe to repeat: it is, until the host answers."""
    async with FakeActionstep() as fake:
        with black_hole() as hole:
            manager = TokenManager(fake.oauth_client())
            token = attrs.evolve(fake.issue_token(WRITE_SCOPES), api_endpoint=f"{hole.url}/api/")
            await manager.save(KEY, token)
            retry = RetryPolicy(max_attempts=50, max_elapsed=60, backoff_base=0.05, backoff_cap=0.1)
            client = AsyncResourceClient(manager, KEY, timeout=0.3, retry=retry)
            async with client:
                create = asyncio.ensure_future(
                    client.create("filenotes", {"text": "once"}, links={"action": "1"})
                )
                await asyncio.sleep(1.0)
                assert not create.done()
                async with hole.open(_port(fake.base_url)):
                    created = await create
        assert created is not None
        posts = {k: n for k, n in fake.counters.requests.items() if k[:2] == ("POST", "filenotes")}
        assert posts == {("POST", "filenotes", 200): 1}


async def test_write_to_a_black_hole_fails_as_never_sent() -> None:
    async with FakeActionstep() as fake:
        with black_hole() as hole:
            manager = TokenManager(fake.oauth_client())
            token = attrs.evolve(fake.issue_token(WRITE_SCOPES), api_endpoint=f"{hole.url}/api/")
            await manager.save(KEY, token)
            retry = RetryPolicy(max_attempts=2, backoff_base=0.01)
            async with AsyncResourceClient(manager, KEY, timeout=0.3, retry=retry) as client:
                with pytest.raises(TransportError) as caught:
                    await client.create("filenotes", {"text": "x"})
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.may_have_been_sent is False


async def test_write_to_a_listener_that_never_answers_is_outcome_unknown() -> None:
    async with FakeActionstep() as fake, silent_listener() as port:
        manager = TokenManager(fake.oauth_client())
        token = attrs.evolve(fake.issue_token(), api_endpoint=f"http://127.0.0.1:{port}/api/")
        await manager.save(KEY, token)
        async with AsyncResourceClient(manager, KEY, timeout=0.3, retry=RetryPolicy()) as client:
            with pytest.raises(OutcomeUnknownError) as caught:
                await client.create("filenotes", {"text": "x"})
    assert caught.value.may_have_been_sent is True


async def test_refused_connection_is_connect_error() -> None:
    async with FakeActionstep() as fake:
        with black_hole() as hole:
            port = hole.port
        manager = TokenManager(fake.oauth_client())  # the port is closed now: refused
        await manager.save(
            KEY, attrs.evolve(fake.issue_token(), api_endpoint=f"http://127.0.0.1:{port}/api/")
        )
        async with AsyncResourceClient(manager, KEY, retry=RetryPolicy(max_attempts=1)) as client:
            with pytest.raises(ConnectError):
                await client.create("filenotes", {"text": "x"})


# -- decompressed size limit ---------------------------------------------------------------------

BOMB_SIZE = 200 * 1024 * 1024
LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip.compress(b"[" + b" " * (BOMB_SIZE - 2) + b"]", compresslevel=9)


async def test_gzip_bomb_is_refused_after_about_the_limit(gzip_bomb: bytes) -> None:
    """200 MB inflating from about 200 kB, declared by its compressed Content-Length."""
    assert len(gzip_bomb) < 300 * 1024

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip_bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/vnd.api+json"},
        )

    app = web.Application()
    app.router.add_get("/api/rest/actions", bomb)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with FakeActionstep() as fake:
            manager = TokenManager(fake.oauth_client())
            token = attrs.evolve(fake.issue_token(), api_endpoint=f"http://127.0.0.1:{port}/api/")
            await manager.save(KEY, token)
            async with AsyncResourceClient(manager, KEY, max_body_bytes=LIMIT) as client:
                tracemalloc.start()
                try:
                    with pytest.raises(ResponseDecodeError, match="1048576-byte limit"):
                        await client.list("actions")
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
    finally:
        await runner.cleanup()
    # The whole body would be 200 MB; what was held at once stays within a few times the limit.
    assert peak < 8 * LIMIT, f"peak {peak / 2**20:.1f} MiB buffered against a 1 MiB limit"


# -- a borrowed session's defaults ---------------------------------------------------------------


async def test_borrowed_session_defaults_do_not_change_our_requests() -> None:
    """raise_for_status, default headers and auth, a cookie jar, base_url, no decompression."""
    async with FakeActionstep(records={"actions": 3}) as fake:
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({"session": "user-cookie"})
        async with aiohttp.ClientSession(
            raise_for_status=True,
            headers={
                "Accept": "text/html",
                "Authorization": "Basic c29tZW9uZTplbHNl",  # another API's credentials
                "X-Other-Api": "1",
            },
            cookie_jar=jar,
            base_url="http://127.0.0.1:9/",
            auto_decompress=False,
        ) as session:
            oauth = attrs.evolve(fake.oauth_client(), session=session)
            manager = TokenManager(oauth, policy=QUICK)
            token = await manager.save(KEY, fake.issue_token())
            client = AsyncResourceClient(manager, KEY, session=session)
            assert len((await client.list("actions")).records) == 3
            # A 401: the access token is refreshed and the request retried, not raised.
            fake.revoke_access_token(token.access_token)
            assert len((await client.list("actions")).records) == 3
            assert fake.counters.token_calls_by_grant["refresh_token"] == 1
            # A 429 from the token endpoint is our typed error, not aiohttp's.
            fake.add_fault(FaultRule("rate_limit", resource="oauth/token", retry_after=1))
            with pytest.raises(TokenEndpointUnavailable):
                await manager.refresh(KEY)
            await client.aclose()
            await manager.aclose()
        assert session.closed


async def test_borrowed_session_defaults_never_reach_the_token_endpoint() -> None:
    seen: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"error": "slow_down"}, status=429, headers={"Retry-After": "1"})

    app = web.Application()
    app.router.add_post("/api/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    jar = aiohttp.CookieJar(unsafe=True)
    jar.update_cookies({"session": "user-cookie"})
    try:
        async with aiohttp.ClientSession(
            raise_for_status=True,
            headers={"Authorization": "Basic c29tZW9uZTplbHNl", "X-Other-Api": "1"},
            cookie_jar=jar,
        ) as session:
            oauth = OAuthClient(
                client_id="id",
                client_secret="secret-value",
                redirect_uri="http://127.0.0.1/cb",
                environment=Environment.local(base),
                session=session,
            )
            with pytest.raises(TokenEndpointUnavailable) as caught:
                await oauth.exchange_code("code")
    finally:
        await runner.cleanup()
    assert caught.value.retry_after == 1
    assert len(seen) == 1
    assert {"Authorization", "X-Other-Api", "Cookie"}.isdisjoint(seen[0])
