"""Request shaping against real Actionstep hosts (https), with aioresponses instead of a server.

FakeActionstep runs on loopback http, so these thin tests check what it cannot: the exact https
URLs, headers and bodies sent to a production regional host. aioresponses 0.7.9 predates
aiohttp 3.14 (it builds ClientResponse without ``stream_writer``; upstream issue #289), so the
``mocked`` fixture supplies a response class that fills that argument in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict
from yarl import URL

from actionstep_async import AsyncResourceClient, Token, TokenManager
from actionstep_async._errors import ResponseDecodeError
from actionstep_async._transport import _whole

ENDPOINT = "https://ap-southeast-2.actionstep.com/api/"


class _CompatResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        # Only output_size is read from the writer of an already-sent request.
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _CompatMock(aioresponses):
    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(url, method, *args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[Any]:
    with _CompatMock() as mock:
        yield mock


class _NoRefresh:
    async def refresh(self, token: Token) -> Token:
        raise AssertionError("these tests never refresh")


async def _client() -> AsyncResourceClient:
    now = time.time()
    manager = TokenManager(_NoRefresh())
    await manager.save(
        "firm",
        Token(
            "tok-shape-1",
            "ref-shape-1",
            expires_at=now + 3600,
            issued_at=now,
            api_endpoint=ENDPOINT,
        ),
    )
    return AsyncResourceClient(manager, "firm")


def _sent(mock: Any, method: str, url: str) -> Any:
    return mock.requests[(method, URL(url))][0].kwargs


async def test_get_builds_the_regional_https_url_and_json_api_headers(mocked: Any) -> None:
    """A multi-id GET goes to <api_endpoint>rest/actions/1,2 with the JSON API headers."""
    url = ENDPOINT + "rest/actions/1,2"
    mocked.get(url, payload={"actions": [{"id": 1}, {"id": 2}]})
    async with await _client() as client:
        records = await client.get("actions", [1, 2])
    assert [r["id"] for r in records] == [1, 2]
    headers = _sent(mocked, "GET", url)["headers"]
    assert headers["Accept"] == "application/vnd.api+json"
    assert headers["Content-Type"] == "application/vnd.api+json"
    assert headers["Authorization"] == "Bearer tok-shape-1"
    assert headers["User-Agent"].startswith("actionstep-async/")


async def test_create_wraps_fields_and_links_under_the_resource_name(mocked: Any) -> None:
    """create() POSTs {"filenotes": {..., "links": {...}}} with booleans as "T"/"F"."""
    url = ENDPOINT + "rest/filenotes"
    mocked.post(url, payload={"filenotes": {"id": 9, "text": "hi"}})
    async with await _client() as client:
        created = await client.create(
            "filenotes", {"text": "hi", "isPrivate": True}, links={"action": 34}
        )
    assert created["id"] == 9
    body = json.loads(_sent(mocked, "POST", url)["data"])
    assert body == {"filenotes": {"text": "hi", "isPrivate": "T", "links": {"action": 34}}}


@pytest.mark.parametrize(
    ("length", "encoding", "whole"),
    [
        (100, None, True),
        (100, "identity", True),
        (100, " Identity ", True),
        (1000, None, True),  # exactly the limit
        (None, None, False),  # chunked: counted as it arrives
        (100, "gzip", False),  # a compressed length says nothing of the inflated size
        (5000, "gzip", False),
        (1001, None, "refused"),
    ],
)
def test_a_body_is_read_whole_only_when_its_declared_length_can_be_trusted(
    length: int | None, encoding: str | None, whole: bool | str
) -> None:
    """_whole: one read for an uncompressed body within the limit, a refusal beyond it, and
    counting for chunked or compressed bodies."""
    headers = CIMultiDict({"Content-Encoding": encoding} if encoding is not None else {})
    response = cast(aiohttp.ClientResponse, SimpleNamespace(content_length=length, headers=headers))
    if whole == "refused":
        with pytest.raises(ResponseDecodeError, match="body of 1001 bytes exceeds the 1000-byte"):
            _whole(response, 1000, "Actionstep response")
    else:
        assert _whole(response, 1000, "Actionstep response") is whole
