"""aiohttp-oauth2-client: an ``OAuth2Middleware`` on an aiohttp ``ClientSession``.

Its grants refresh lazily, under one ``asyncio.Lock`` per grant, 30 s before expiry. It has no
401 handling and no persistence hook: a process loads the token when it builds the grant, and
the harness writes ``grant.token`` back when the peer closes (the most a user can do).

Configuration note: ``AuthorizationCodeGrant`` (the grant Actionstep uses) consumes
``client_id`` in its constructor, so its refresh request carries only ``refresh_token`` plus the
extra keyword arguments, and Actionstep's token endpoint refuses it (``invalid_client``).
The ``aiohttp-oauth2-client`` peer therefore subclasses the generic ``OAuth2Grant`` (the
library's documented extension point) so ``client_id`` and ``client_secret`` travel with every
refresh; the ``aiohttp-oauth2-client-authcode`` peer uses ``AuthorizationCodeGrant`` unchanged.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp_oauth2_client.grant.authorization_code import AuthorizationCodeGrant  # type: ignore[import-untyped,unused-ignore]
from aiohttp_oauth2_client.grant.common import OAuth2Grant  # type: ignore[import-untyped,unused-ignore]
from aiohttp_oauth2_client.middleware import OAuth2Middleware  # type: ignore[import-untyped,unused-ignore]
from aiohttp_oauth2_client.models.errors import AuthError  # type: ignore[import-untyped,unused-ignore]
from aiohttp_oauth2_client.models.token import Token  # type: ignore[import-untyped,unused-ignore]

from . import CLIENT_ID, CLIENT_SECRET, JSON_API, Setup, decode, read_token_file, write_token_file


class StoredTokenGrant(OAuth2Grant):  # type: ignore[misc,unused-ignore]
    """A grant that starts from a stored token; extra kwargs go into every token request."""

    async def _fetch_token(self) -> Token:
        raise AuthError("no stored token: authorize first")


def grant_token(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_token": document["access_token"],
        "refresh_token": document["refresh_token"],
        "token_type": "bearer",
        "expires_at": int(document["expires_at"]),
    }


class AiohttpOAuth2Peer:
    def __init__(self, setup: Setup, *, authcode: bool = False) -> None:
        self._setup = setup
        if setup.token is not None:
            token = grant_token(setup.token)
        else:
            assert setup.token_file is not None, "aiohttp-oauth2-client needs a token or a file"
            token = grant_token(read_token_file(setup.token_file))
        self.grant: OAuth2Grant
        if authcode:
            self.grant = AuthorizationCodeGrant(
                token_url=setup.token_url,
                authorization_url=f"{setup.base_url}/api/oauth/authorize",
                client_id=CLIENT_ID,
                token=token,
                client_secret=CLIENT_SECRET,
            )
        else:
            self.grant = StoredTokenGrant(
                setup.token_url, token, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
            )
        self._session = aiohttp.ClientSession(
            middlewares=(OAuth2Middleware(self.grant),), headers={"Accept": JSON_API}
        )

    async def get(self, action_id: int) -> int:
        async with self._session.get(self._setup.action_url(action_id)) as response:
            body = await response.read()
            if response.status == 200:
                decode(body)
            return response.status

    async def aclose(self) -> None:
        await self._session.close()
        if self._setup.token_file is not None and self.grant.token is not None:
            write_token_file(self._setup.token_file, self.grant.token.model_dump())
        await self.grant.close()


async def open_peer(name: str, setup: Setup) -> AiohttpOAuth2Peer:
    return AiohttpOAuth2Peer(setup, authcode=name.endswith("-authcode"))
