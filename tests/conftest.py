"""Shared fixtures: sentinel secrets and a scriptable token endpoint on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import settings

from actionstep_async import Environment, OAuthClient

from ._hypothesis import THOROUGH
from ._secrets import SENTINELS

# CI (which sets CI=true) runs every property test at its full example count; a local run
# takes a quick sample. Either can be forced with --hypothesis-profile.
settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("quick", max_examples=10, deadline=None)
settings.load_profile("ci" if THOROUGH else "quick")

# Sentinels: if any of these ever shows up in output, a secret leaked.
SECRET_CLIENT, SECRET_ACCESS, SECRET_REFRESH = SENTINELS[:3]

Reply = tuple[int, dict[str, str], bytes]

# The suite-wide secret scan (see tests/leak_scan.py), pytester for testing that scan, and our
# own fixtures (registered here rather than through the entry point; see pyproject.toml).
pytest_plugins = ["tests.leak_scan", "pytester", "actionstep_async.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _subprocesses_only_in_slow_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pytest -m "not slow"` stays quick only if every test that starts a process says so."""
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("this test starts a subprocess: mark it @pytest.mark.slow")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


class TokenEndpoint:
    """A loopback token endpoint whose replies a test scripts one by one."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, str]] = []
        self.server: TestServer | None = None
        self.delay = 0.0

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    @property
    def api_endpoint(self) -> str:
        return f"{self.base_url}/api/"

    def reply_json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(document).encode()
        self.replies.append((status, {"Content-Type": "application/json", **(headers or {})}, body))

    def reply_raw(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        self.replies.append((status, {"Content-Type": content_type}, body))

    def token_document(self, **overrides: Any) -> dict[str, Any]:
        document: dict[str, Any] = {
            "access_token": SECRET_ACCESS,
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": SECRET_REFRESH,
            "api_endpoint": self.api_endpoint,
            "orgkey": "demoorg",
        }
        document.update(overrides)
        return {k: v for k, v in document.items() if v is not None}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({k: str(v) for k, v in (await request.post()).items()})
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers, body = self.replies.pop(0)
        return web.Response(status=status, headers=headers, body=body)


@pytest.fixture
async def token_endpoint() -> AsyncIterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    app = web.Application()
    app.router.add_post("/api/oauth/token", endpoint.handle)
    endpoint.server = TestServer(app, host="127.0.0.1", port=0)
    await endpoint.server.start_server()
    yield endpoint
    await endpoint.server.close()


@pytest.fixture
def oauth_for(token_endpoint: TokenEndpoint) -> Callable[..., OAuthClient]:
    def make(**kwargs: Any) -> OAuthClient:
        return OAuthClient(
            client_id="client-1",
            client_secret=SECRET_CLIENT,
            redirect_uri="http://127.0.0.1:8765/callback",
            environment=Environment.local(token_endpoint.base_url),
            **kwargs,
        )

    return make
