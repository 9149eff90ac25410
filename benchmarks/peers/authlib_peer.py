"""Authlib's ``AsyncOAuth2Client`` (httpx), configured as its documentation shows.

The token is handed over as a dict with an integer ``expires_at`` (what Authlib itself stores),
and an ``update_token`` callback persists every refreshed token to a JSON file, which is how
Authlib users share tokens between processes. Authlib refreshes proactively under a per-client
lock (60 s leeway) and has no 401 handling. The httpx pool is given aiohttp's default size (100
connections, all kept alive) and a 60 s timeout, so pool limits do not decide the comparison.
"""

from __future__ import annotations

import warnings
from typing import Any

import authlib.deprecate  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
import httpx

from . import (
    CLIENT_ID,
    CLIENT_SECRET,
    JSON_API,
    POOL_SIZE,
    Setup,
    decode,
    read_token_file,
    write_token_file,
)

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns once it falls back to httpx.
    warnings.simplefilter("ignore")
    # Imported after authlib.deprecate, whose "always" filter this block overrides.
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped,unused-ignore]
        AsyncOAuth2Client,
    )


def authlib_token(document: dict[str, Any]) -> dict[str, Any]:
    """The token as Authlib keeps it: an int ``expires_at`` (floats disable its expiry check)."""
    return {
        "access_token": document["access_token"],
        "refresh_token": document["refresh_token"],
        "token_type": "Bearer",
        "expires_at": int(document["expires_at"]),
    }


class AuthlibPeer:
    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        if setup.token is not None:
            token = authlib_token(setup.token)
        else:
            assert setup.token_file is not None, "authlib needs a token or a token file"
            token = authlib_token(read_token_file(setup.token_file))
        self.client = AsyncOAuth2Client(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token=token,
            token_endpoint=setup.token_url,
            update_token=self._update_token,
            headers={"Accept": JSON_API},
            timeout=60.0,
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
        )

    async def _update_token(
        self,
        token: dict[str, Any],
        refresh_token: str | None = None,
        access_token: str | None = None,
    ) -> None:
        if self._setup.token_file is not None:
            write_token_file(self._setup.token_file, token)

    async def get(self, action_id: int) -> int:
        response = await self.client.get(self._setup.action_url(action_id))
        status: int = response.status_code
        if status == 200:
            decode(response.content)
        return status

    async def aclose(self) -> None:
        await self.client.aclose()


async def open_peer(name: str, setup: Setup) -> AuthlibPeer:
    return AuthlibPeer(setup)
