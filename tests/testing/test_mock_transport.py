"""MockTransport, the public test helpers, and the one map from wire failures to our errors."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actionstep_async import (
    AsyncResourceClient,
    ConnectError,
    OAuthClient,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeout,
    ResponseDecodeError,
    TokenManager,
    TransportError,
)
from actionstep_async._transport import outcome_unknown, transport_error
from actionstep_async.testing import (
    FAST_RETRY,
    FakeClock,
    MockTransport,
    Request,
    Response,
    json_response,
    make_token,
)

README = Path(__file__).resolve().parents[2] / "README.md"
ENDPOINT = "https://ap-southeast-2.actionstep.com/api/"


def _readme_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    return str(block)


async def test_readme_mock_transport_example_runs_verbatim() -> None:
    """The README's MockTransport example, executed exactly as printed."""
    namespace: dict[str, Any] = {}
    exec(compile(_readme_block("MockTransport(answer)"), "README.md", "exec"), namespace)
    await namespace["test_reads_one_matter_without_a_network"]()


def _oauth(**kwargs: Any) -> OAuthClient:
    return OAuthClient("client-id", "client-secret", "https://example.com/callback", **kwargs)


async def _client(transport: MockTransport) -> tuple[TokenManager, AsyncResourceClient]:
    manager = TokenManager(_oauth())
    await manager.save("k", make_token())
    return manager, AsyncResourceClient(manager, "k", transport=transport, retry=FAST_RETRY)


async def test_async_handler_and_request_shape() -> None:
    """An async handler works; the request carries URL, JSON:API headers, body and limits."""

    async def handler(request: Request) -> Response:
        await asyncio.sleep(0)
        return json_response({"filenotes": {"id": 3, "text": "x"}}, status=201)

    transport = MockTransport(handler)
    manager, client = await _client(transport)
    async with manager:
        note = await client.create("filenotes", {"text": "x"}, links={"action": 1})
    assert note["id"] == 3
    (request,) = transport.requests
    assert request.method == "POST"
    assert request.url == ENDPOINT + "rest/filenotes"
    assert request.headers["Content-Type"] == "application/vnd.api+json"
    assert request.headers["Authorization"].startswith("Bearer test-access-")
    assert request.body == b'{"filenotes":{"text":"x","links":{"action":1}}}'
    assert request.max_body_bytes == client.max_body_bytes
    assert "Bearer" not in repr(request) + repr(transport)


async def test_retries_and_retry_after_go_through_the_mock() -> None:
    """A 429 then a 200: one retry; a persistent 429 ends in RateLimitedError with its hint."""
    answers = [Response(429, {"Retry-After": "0"}), json_response({"actions": {"id": 1}})]
    transport = MockTransport(lambda request: answers.pop(0))
    manager, client = await _client(transport)
    async with manager:
        assert (await client.get("actions", 1))["id"] == 1
        transport.handler = lambda request: Response(429, {"retry-after": "0"})
        with pytest.raises(RateLimitedError) as info:
            await client.get("actions", 1)
    assert info.value.retry_after == 0.0
    assert len(transport.requests) == 2 + FAST_RETRY.max_attempts


async def test_wire_failures_raised_by_a_handler_are_mapped_like_real_ones() -> None:
    """A handler raising TimeoutError on a POST: OutcomeUnknownError, never a second POST."""

    def handler(request: Request) -> Response:
        raise TimeoutError

    transport = MockTransport(handler)
    manager, client = await _client(transport)
    async with manager:
        with pytest.raises(OutcomeUnknownError, match="timed out") as info:
            await client.create("filenotes", {"text": "x"})
    assert isinstance(info.value.__cause__, RequestTimeout)
    assert len(transport.requests) == 1


async def test_oversized_mock_body_is_refused_like_a_real_one() -> None:
    """The request's size limit applies to a mock response too."""
    transport = MockTransport(lambda request: Response(200, {}, b"x" * 2048))
    manager = TokenManager(_oauth())
    await manager.save("k", make_token())
    client = AsyncResourceClient(manager, "k", transport=transport, max_body_bytes=1024)
    async with manager:
        with pytest.raises(ResponseDecodeError, match="1024-byte limit"):
            await client.get("actions", 1)


async def test_oauth_client_uses_the_transport_with_a_form_body() -> None:
    """Token requests go through the transport too: a form POST with the grant."""
    clock = FakeClock(2_000_000.0)
    document = {
        "access_token": "a-new-access",
        "refresh_token": "a-new-refresh",
        "token_type": "bearer",
        "expires_in": 3600,
        "api_endpoint": ENDPOINT,
    }
    transport = MockTransport(lambda request: json_response(document))
    oauth = _oauth(transport=transport, clock=clock)
    token = await oauth.exchange_code("the-code")
    assert token.expires_at == clock() + 3600
    (request,) = transport.requests
    assert request.method == "POST"
    assert request.url == "https://api.actionstep.com/api/oauth/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body is not None
    assert b"grant_type=authorization_code" in request.body
    assert b"code=the-code" in request.body
    with pytest.raises(ValueError, match="not both"):
        async with aiohttp.ClientSession() as session:
            _oauth(transport=transport, session=session)


def test_session_and_transport_are_exclusive() -> None:
    manager = TokenManager(_oauth())
    with pytest.raises(ValueError, match="not both"):
        AsyncResourceClient(manager, "k", transport=MockTransport(json_response), session=object())  # type: ignore[call-overload]


def test_fake_clock_and_tokens() -> None:
    """FakeClock moves only when told; make_token makes distinct, valid tokens."""
    clock = FakeClock(100.0)
    clock.advance(5)
    assert clock() == 105.0
    first, second = make_token(now=clock(), lifetime=60), make_token()
    assert first.expires_at == 165.0
    assert first.access_token != second.access_token
    assert first.refresh_token != second.refresh_token
    assert second.expires_in() > 0


REQUEST = Request("POST", "https://example.test/api/rest/actions", {})
_KEY = aiohttp.client_reqrep.ConnectionKey("example.test", 443, True, True, None, None, None)

MAP: list[tuple[BaseException, type[TransportError], bool]] = [
    # (what the wire raised, our error, may it have been sent)
    (aiohttp.ClientConnectorError(_KEY, OSError(111, "refused")), ConnectError, False),
    (aiohttp.ConnectionTimeoutError(), RequestTimeout, False),
    (aiohttp.SocketTimeoutError(), RequestTimeout, True),
    (TimeoutError(), RequestTimeout, True),
    (aiohttp.ServerDisconnectedError(), TransportError, True),
    (aiohttp.ClientPayloadError("cut"), TransportError, True),
    (aiohttp.ClientOSError(104, "reset"), TransportError, True),
]


@pytest.mark.parametrize(("failure", "expected", "sent"), MAP)
def test_the_one_map_from_wire_failures(
    failure: BaseException, expected: type[TransportError], sent: bool
) -> None:
    error = transport_error(REQUEST, failure)
    assert type(error) is expected
    assert error.may_have_been_sent is sent
    assert (error.method, error.url) == ("POST", REQUEST.url)
    assert type(failure).__name__ in str(error)
    unknown = outcome_unknown(error)
    assert "check before repeating" in str(unknown)
    assert unknown.url == REQUEST.url


def test_observed_progress_overrides_what_the_exception_type_says() -> None:
    """A caller that saw the request leave (or not) can say so: the seam for trace events."""
    reset = aiohttp.ServerDisconnectedError()
    assert transport_error(REQUEST, reset, may_have_been_sent=False).may_have_been_sent is False
    assert isinstance(transport_error(REQUEST, reset, may_have_been_sent=False), ConnectError)
    timeout = aiohttp.ConnectionTimeoutError()
    assert transport_error(REQUEST, timeout, may_have_been_sent=True).may_have_been_sent
