"""Bare aiohttp with a fixed bearer header: the physical limit of the request path.

No token management at all: one ``ClientSession`` whose default headers carry the bearer token
and the JSON:API ``Accept``. It cannot refresh, so it only takes part in the request-path runs.
"""

from __future__ import annotations

import aiohttp

from . import JSON_API, Setup, decode


class BareAiohttp:
    def __init__(self, setup: Setup) -> None:
        assert setup.token is not None, "bare aiohttp needs a token up front"
        headers = {"Authorization": f"Bearer {setup.token['access_token']}", "Accept": JSON_API}
        self._session = aiohttp.ClientSession(headers=headers)
        self._setup = setup

    async def get(self, action_id: int) -> int:
        async with self._session.get(self._setup.action_url(action_id)) as response:
            body = await response.read()
            if response.status == 200:
                decode(body)
            return response.status

    async def aclose(self) -> None:
        await self._session.close()


async def open_peer(name: str, setup: Setup) -> BareAiohttp:
    return BareAiohttp(setup)
