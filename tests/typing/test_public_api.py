"""The public API's static types, pinned: mypy checks this module (CI runs it over tests/).

Nothing here needs a server: the coroutines are defined and type-checked, never awaited, and
the one collected test only proves the module imports. A public signature that drifts to
``Any`` or to a wrong type fails ``mypy --strict tests``. To pin a new API, add an ``assert_type``
line to the section it belongs to (or a new ``_check_<area>`` function).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import assert_type

from actionstep_async import (
    PRODUCTION,
    ActionstepError,
    APIError,
    AsyncResourceClient,
    AuthorizationRequest,
    ConfigurationError,
    Environment,
    FileTokenStore,
    MemoryTokenStore,
    NotFoundError,
    OAuthClient,
    Page,
    Paging,
    RateLimitedError,
    Record,
    Token,
    TokenManager,
    TokenStore,
    TokenStoreError,
    TransientError,
)


async def _check_oauth(oauth: OAuthClient, token: Token) -> None:
    assert_type(oauth.client_id, str)
    assert_type(oauth.environment, Environment)
    assert_type(oauth.authorization_request(["actions"]), AuthorizationRequest)
    assert_type(oauth.authorization_request("actions participants"), AuthorizationRequest)
    assert_type(oauth.authorization_request("actions").url, str)
    assert_type(oauth.authorization_request("actions").scopes, tuple[str, ...])
    assert_type(await oauth.exchange_code("code"), Token)
    assert_type(await oauth.exchange_code("code", scopes="actions"), Token)
    assert_type(await oauth.refresh(token), Token)


def _check_token(token: Token) -> None:
    assert_type(token.access_token, str)
    assert_type(token.expires_at, float)
    assert_type(token.api_endpoint, str)
    assert_type(token.orgkey, str | None)
    assert_type(token.scopes, tuple[str, ...])
    assert_type(token.fingerprint, str)


async def _check_manager(manager: TokenManager, token: Token) -> None:
    assert_type(TokenManager(OAuthClient("id", "secret", "http://127.0.0.1/cb")), TokenManager)
    assert_type(manager.store, TokenStore)
    assert_type(await manager.token("key"), Token)
    assert_type(await manager.token_rejected("key", token), Token)
    assert_type(await manager.save("key", token), Token)
    assert_type(await manager.load("key"), Token | None)
    assert_type(await manager.refresh("key"), Token)
    assert_type(await manager.delete("key"), None)
    assert_type(await manager.aclose(), None)


def _takes_store(store: TokenStore) -> None: ...


async def _check_stores(store: TokenStore, memory: MemoryTokenStore, file: FileTokenStore) -> None:
    # Both built-in stores satisfy the protocol the manager takes.
    _takes_store(memory)
    _takes_store(file)
    assert_type(await store.load("key"), Token | None)
    assert_type(await store.delete("key"), None)
    assert_type(store.lock("key"), AbstractAsyncContextManager[None])
    assert_type(await memory.load("key"), Token | None)
    assert_type(await file.load("key"), Token | None)
    assert_type(FileTokenStore(Path("tokens")).directory, Path)


async def _check_resource_client(manager: TokenManager) -> None:
    client = AsyncResourceClient(manager, "key")
    assert_type(client, AsyncResourceClient[Record])
    assert_type(client.with_options(timeout=60), AsyncResourceClient[Record])
    async with client as entered:
        assert_type(entered, AsyncResourceClient[Record])
    page = await client.list("actions", page_size=10)
    assert_type(page, Page[Record])
    assert_type(page.paging, Paging)
    assert_type(page.paging.page_count, int)
    assert_type(await client.delete("actions", 1), None)
    assert_type(await client.aclose(), None)
    # get/create/iterate/request: their record types are pinned with the typed accessors.


def _check_errors(error: ActionstepError) -> None:
    assert_type(PRODUCTION, Environment)
    if isinstance(error, APIError):
        assert_type(error.status, int)
        assert_type(error.method, str)
        assert_type(error.url, str)
        assert_type(error.request_id, str | None)
    if isinstance(error, RateLimitedError):
        assert_type(error.retry_after, float | None)
    # The hierarchy callers catch by: these assignments fail to type-check if a base moves.
    value_error: ValueError = ConfigurationError("x")
    transient: TransientError = RateLimitedError("x", status=429, method="GET", url="u")
    api: APIError = NotFoundError("x", status=404, method="GET", url="u")
    base: ActionstepError = TokenStoreError("x")
    del value_error, transient, api, base


def test_module_imports() -> None:
    """The checks above are for mypy; at run time the module only has to import."""
    assert callable(_check_errors)
