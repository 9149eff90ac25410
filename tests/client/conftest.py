"""Fixtures for the resource client: a FakeActionstep, a TokenManager bound to it, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from actionstep_async._client import AsyncResourceClient
from actionstep_async._manager import TokenManager
from actionstep_async._oauth import OAuthClient
from actionstep_async.testing import FAST_RETRY, FakeActionstep

KEY = "org-user"


def rest_requests(fake: FakeActionstep, method: str | None = None) -> int:
    """How many data-API requests the fake has seen (optionally of one method)."""
    return sum(
        count
        for (verb, route, _), count in fake.counters.requests.items()
        if not route.startswith("oauth/") and (method is None or verb == method)
    )


@pytest.fixture
async def manager(fake_actionstep: FakeActionstep) -> AsyncIterator[TokenManager]:
    """A TokenManager holding a fresh token from the fake under KEY."""
    fake = fake_actionstep
    oauth = OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=fake.environment,
    )
    manager = TokenManager(oauth)
    await manager.save(KEY, fake.issue_token(scopes=("all",)))
    yield manager
    await manager.aclose()


@pytest.fixture
async def make_client(
    manager: TokenManager,
) -> AsyncIterator[Callable[..., AsyncResourceClient]]:
    """Build clients bound to the fake (fast retries by default); all closed after the test."""
    made: list[AsyncResourceClient] = []

    def make(**kwargs: Any) -> AsyncResourceClient:
        kwargs.setdefault("retry", FAST_RETRY)
        client = AsyncResourceClient(manager, KEY, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make_client: Callable[..., AsyncResourceClient]) -> AsyncResourceClient:
    """A default client (plain records) bound to the fake."""
    return make_client()
