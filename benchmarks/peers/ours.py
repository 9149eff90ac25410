"""actionstep-async: ``AsyncResourceClient`` over a ``TokenManager``.

``ours-plain`` returns read-only records, ``ours-typed`` attrs models; both keep tokens in a
``MemoryTokenStore``. ``ours-file`` and ``ours-redis`` keep them in a ``FileTokenStore`` or a
``RedisTokenStore`` shared with other processes. The client's ``concurrency`` is set to the
caller's, so the limiter never queues requests the other peers would send.
"""

from __future__ import annotations

from typing import Any

from actionstep_async import (
    APIError,
    AsyncResourceClient,
    Environment,
    FileTokenStore,
    OAuthClient,
    Token,
    TokenManager,
    TokenStore,
)

from . import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Setup


def our_token(document: dict[str, Any]) -> Token:
    return Token(
        access_token=document["access_token"],
        refresh_token=document["refresh_token"],
        expires_at=float(document["expires_at"]),
        issued_at=float(document["issued_at"]),
        api_endpoint=document["api_endpoint"],
        orgkey=document.get("orgkey"),
        scopes=tuple(document.get("scopes", ())),
    )


def make_store(name: str, setup: Setup) -> tuple[TokenStore | None, Any]:
    """The store for peer ``name`` and the Redis connection to close afterwards (if any)."""
    if name == "ours-file":
        assert setup.store_dir is not None, "ours-file needs store_dir"
        return FileTokenStore(setup.store_dir), None
    if name == "ours-redis":
        from redis.asyncio import Redis

        from actionstep_async.stores.redis import RedisTokenStore

        assert setup.redis_prefix is not None, "ours-redis needs redis_prefix"
        redis = Redis(host="127.0.0.1", port=6379)
        return RedisTokenStore(redis, prefix=setup.redis_prefix), redis
    return None, None


class OursPeer:
    def __init__(self, name: str, setup: Setup) -> None:
        oauth = OAuthClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=REDIRECT_URI,
            environment=Environment.local(setup.base_url),
        )
        store, self._redis = make_store(name, setup)
        self.manager = TokenManager(oauth, store)
        self.client = AsyncResourceClient(
            self.manager,
            setup.key,
            concurrency=max(setup.concurrency, 1),
            typed=name == "ours-typed",
        )
        self._key = setup.key

    async def get(self, action_id: int) -> int:
        try:
            await self.client.get("actions", action_id)
        except APIError as exc:
            return exc.status or 0
        return 200

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.manager.aclose()
        if self._redis is not None:
            await self._redis.aclose()


async def open_peer(name: str, setup: Setup) -> OursPeer:
    peer = OursPeer(name, setup)
    if setup.token is not None:
        await peer.manager.save(setup.key, our_token(setup.token))
    return peer
