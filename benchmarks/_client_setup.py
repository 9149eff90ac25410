"""What the client CPU benchmarks share: a standalone fake, a token from it, a TokenManager.

``full_page`` and ``request_path`` both measure this process's CPU against a fake server in
another process, with one token saved under the key ``bench``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp

from actionstep_async import Environment, OAuthClient, Token, TokenManager

KEY = "bench"


@contextlib.contextmanager
def fake_server(records: int, resources: str) -> Iterator[str]:
    """Start ``python -m actionstep_async.testing`` on a free port; yield its base URL."""
    command = [sys.executable, "-m", "actionstep_async.testing", "--port", "0"]
    command += ["--records", str(records), "--resources", resources]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def token_from(document: Mapping[str, Any]) -> Token:
    """The Token in a ``/_fake/token`` answer."""
    return Token(
        access_token=document["access_token"],
        refresh_token=document["refresh_token"],
        expires_at=document["expires_at"],
        issued_at=document["issued_at"],
        api_endpoint=document["api_endpoint"],
        orgkey=document.get("orgkey"),
        scopes=tuple(document["scopes"]),
    )


async def issue_token(session: aiohttp.ClientSession, base_url: str) -> Token:
    async with session.post(f"{base_url}/_fake/token", json={"scopes": ["all"]}) as response:
        return token_from(await response.json())


async def bench_manager(base_url: str, token: Token) -> TokenManager:
    """A TokenManager for the fake with ``token`` saved under :data:`KEY`."""
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=Environment.local(base_url),
    )
    manager = TokenManager(oauth)
    await manager.save(KEY, token)
    return manager
