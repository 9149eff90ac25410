"""Issue 12 section 3 (a token's api_endpoint is checked wherever the token came from) and
section 4 (hostile token responses are a ResponseDecodeError at parse time, and back off)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from actionstep_async import (
    AsyncResourceClient,
    RefreshPolicy,
    ResponseDecodeError,
    TokenManager,
    UnsafeEndpointError,
)
from actionstep_async.stores import FileTokenStore
from actionstep_async.testing import FakeActionstep

from ..conftest import TokenEndpoint

KEY = "org"


class Trap:
    """A loopback HTTP server that counts every request: where a stolen token would go."""

    def __init__(self) -> None:
        self.hits = 0
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response({})

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/api/"


@pytest.mark.parametrize(
    "endpoint", ["http://evil.example/api/", "https://actionstep.com.evil.example/api/"]
)
async def test_save_refuses_a_token_for_a_foreign_endpoint(endpoint: str) -> None:
    """manager.save() checks api_endpoint against the OAuth client's environment."""
    async with FakeActionstep() as fake:
        manager = TokenManager(fake.oauth_client())
        token = attrs.evolve(fake.issue_token(), api_endpoint=endpoint)
        with pytest.raises(UnsafeEndpointError):
            await manager.save(KEY, token)
        assert await manager.store.load(KEY) is None


async def test_a_tampered_token_file_sends_nothing(tmp_path: Path) -> None:
    """A stored token pointing at another host (a tampered file) raises; nothing is sent."""
    trap = Trap()
    await trap.server.start_server()
    try:
        async with FakeActionstep() as fake:
            store = FileTokenStore(tmp_path / "tokens")
            manager = TokenManager(fake.oauth_client(), store)
            await manager.save(KEY, fake.issue_token())
            (path,) = (tmp_path / "tokens").glob("*.json")
            document = json.loads(path.read_text())
            # Loopback http is allowed for the fake's environment only on the fake's own port;
            # a production manager must refuse plain http outright.
            document["api_endpoint"] = "https://evil.example/api/"
            path.write_text(json.dumps(document))
            reader = TokenManager(fake.oauth_client(), store)
            with pytest.raises(UnsafeEndpointError):
                await reader.load(KEY)
            async with AsyncResourceClient(reader, KEY) as client:
                with pytest.raises(UnsafeEndpointError):
                    await client.get("actions", 1)
            assert fake.counters.token_calls == 0
            assert sum(fake.counters.requests.values()) == 0
        assert trap.hits == 0
    finally:
        await trap.server.close()


async def test_a_foreign_endpoint_adopted_from_the_store_is_refused(tmp_path: Path) -> None:
    """A sibling's (or an attacker's) record in a shared store is checked before adoption."""
    async with FakeActionstep() as fake:
        store = FileTokenStore(tmp_path / "tokens")
        good = TokenManager(fake.oauth_client(), store)
        first = await good.save(KEY, fake.issue_token(expires_in=3600))
        evil = attrs.evolve(fake.issue_token(), api_endpoint="https://evil.example/api/")
        await store.compare_and_set(KEY, evil, expected_version=first.version)
        with pytest.raises(UnsafeEndpointError):
            await good.token_rejected(KEY, first)  # would adopt the stored token
        assert fake.counters.token_calls == 0


HOSTILE: dict[str, dict[str, Any]] = {
    "expires_in 10**400": {"expires_in": 10**400},
    "expires_in superscript digits": {"expires_in": "³⁶⁰⁰"},
    "expires_in infinity": {"expires_in": 1e400},
    "access token with CR LF": {"access_token": "abc\r\nX-Evil: 1"},
    "access token with NUL": {"access_token": "abc\x00def"},
    "access token with a space": {"access_token": "abc def"},
    "access token with non-ASCII": {"access_token": "abcé"},
    "refresh token with LF": {"refresh_token": "r\nX"},
}


@pytest.mark.parametrize("overrides", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_token_response_is_a_decode_error_and_the_manager_backs_off(
    token_endpoint: TokenEndpoint, oauth_for: Any, overrides: dict[str, Any]
) -> None:
    """Each is a ResponseDecodeError at parse time, never OverflowError/ValueError later; the
    manager backs off as for any bad token answer (one call, then none during the backoff)."""
    oauth = oauth_for()
    body = json.dumps(token_endpoint.token_document(**overrides)).encode()
    token_endpoint.reply_raw(200, body, "application/json")
    with pytest.raises(ResponseDecodeError):
        await oauth.exchange_code("c")
    first = token_endpoint.token_document(expires_in=1)
    token_endpoint.reply_json(200, first)
    manager = TokenManager(oauth, policy=RefreshPolicy(backoff_base=30, backoff_cap=60))
    await manager.save(KEY, await oauth.exchange_code("c"))
    calls = len(token_endpoint.requests)
    token_endpoint.reply_raw(200, body, "application/json")
    with pytest.raises(ResponseDecodeError):
        await manager.refresh(KEY)
    # Backing off: the still-valid token (or, once expired, the same error), no new request.
    for _ in range(20):
        with contextlib.suppress(ResponseDecodeError):
            await manager.token(KEY)
    assert len(token_endpoint.requests) == calls + 1
