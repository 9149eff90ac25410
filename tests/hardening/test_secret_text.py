"""Secrets never reach error text, exception chains or reprs (issue 12, section 5).

The peers here echo what they were sent, as a careless server does: a 403 quoting the bearer
token and the client secret, a token endpoint whose ``error`` is the refresh token it got.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import attrs
import pytest
from aiohttp import web

from actionstep_async import (
    AsyncResourceClient,
    Environment,
    ForbiddenError,
    OAuthClient,
    OAuthError,
    OutcomeUnknownError,
    RetryPolicy,
    TokenManager,
)
from actionstep_async._client import _prepare
from actionstep_async.testing import FakeActionstep

from ._peers import silent_listener

KEY = "org"


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _everything(error: BaseException) -> str:
    return " ".join(f"{e!s} {e!r} {e.args!r} {vars(e)!r}" for e in _chain(error))


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A server that quotes the Authorization header and the form it got in every answer."""

    async def api(request: web.Request) -> web.Response:
        said = request.headers.get("Authorization", "")
        body = {"errors": [{"title": f"token {said} has no scope", "detail": {said: [said]}}]}
        return web.json_response(body, status=403)

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        echoed = f"{form.get('refresh_token')!s} {form.get('client_secret')!s}"
        return web.json_response({"error": echoed, "error_description": echoed}, status=400)

    app = web.Application()
    app.router.add_get("/api/rest/actions", api)
    app.router.add_post("/api/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_403_echoing_the_token_is_redacted(echo: str) -> None:
    async with FakeActionstep() as fake:
        manager = TokenManager(fake.oauth_client())
        token = attrs.evolve(fake.issue_token(), api_endpoint=f"{echo}/api/")
        await manager.save(KEY, token)
        async with AsyncResourceClient(manager, KEY) as client:
            with pytest.raises(ForbiddenError) as caught:
                await client.list("actions")
    text = _everything(caught.value) + json.dumps(caught.value.errors)
    assert "has no scope" in text
    assert token.access_token not in text
    assert "[redacted]" in text


async def test_token_endpoint_echoing_the_refresh_token_is_redacted(echo: str) -> None:
    async with FakeActionstep() as fake:
        token = fake.issue_token()
        oauth = OAuthClient(
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            redirect_uri=fake.redirect_uri,
            environment=Environment.local(echo),
        )
        with pytest.raises(OAuthError) as caught:
            await oauth.refresh(token)
    text = _everything(caught.value)
    assert caught.value.error is not None
    for secret in (token.refresh_token, fake.client_secret):
        assert secret not in text
        assert secret not in caught.value.error


async def test_transport_failures_carry_no_aiohttp_chain() -> None:
    """aiohttp's exceptions hold RequestInfo with the Authorization header: none is chained."""
    async with FakeActionstep() as fake, silent_listener() as port:
        manager = TokenManager(fake.oauth_client())
        token = attrs.evolve(fake.issue_token(), api_endpoint=f"http://127.0.0.1:{port}/api/")
        await manager.save(KEY, token)
        client = AsyncResourceClient(manager, KEY, timeout=0.3, retry=RetryPolicy(max_attempts=1))
        async with client:
            with pytest.raises(OutcomeUnknownError) as caught:
                await client.create("filenotes", {"text": "x"})
    chain = list(_chain(caught.value))
    assert all(type(e).__module__.startswith("actionstep_async") for e in chain)
    assert token.access_token not in _everything(caught.value)


def test_private_reprs_hold_no_token() -> None:
    from actionstep_async.testing import make_token

    token = make_token()
    prepared = _prepare(token)
    assert token.access_token not in repr(prepared)
    assert token.access_token in prepared.headers["Authorization"]
