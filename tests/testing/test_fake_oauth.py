"""FakeActionstep's OAuth endpoints: consent redirect, code exchange, rotation, revocation."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from actionstep_async import OAuthClient, ReauthorizationRequired
from actionstep_async._tokens import fingerprint
from actionstep_async.testing import FakeActionstep

from .conftest import Api


def authorize_params(fake: FakeActionstep, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": fake.redirect_uri,
        "scope": "actions participants",
        "state": "xyz-state",
    }
    params.update(overrides)
    return params


async def authorize(api: Api, **overrides: str) -> tuple[int, dict[str, list[str]], str]:
    async with api.session.get(
        f"{api.fake.base_url}/api/oauth/authorize",
        params=authorize_params(api.fake, **overrides),
        allow_redirects=False,
    ) as response:
        location = response.headers.get("Location", "")
        return response.status, parse_qs(urlsplit(location).query), location


def code_form(fake: FakeActionstep, code: str, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "redirect_uri": fake.redirect_uri,
    }
    form.update(overrides)
    return form


async def test_authorize_redirects_with_code_and_same_state(api: Api) -> None:
    """The consent page auto-approves and redirects to redirect_uri with a code and the state."""
    status, query, location = await authorize(api)
    assert status == 302
    assert location.startswith(api.fake.redirect_uri + "?")
    assert query["state"] == ["xyz-state"]
    assert query["code"][0]
    assert api.fake.counters.authorize_calls == 1
    assert api.fake.counters.requests[("GET", "oauth/authorize", 302)] == 1


async def test_authorize_can_be_told_to_deny(api: Api) -> None:
    """With deny_authorization the redirect carries error=access_denied and the state."""
    api.fake.deny_authorization = True
    status, query, _ = await authorize(api)
    assert status == 302
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["xyz-state"]
    assert "code" not in query


async def test_authorize_never_redirects_to_unregistered_uri(api: Api) -> None:
    """An unknown client or redirect_uri gets a 400 page, not a redirect (RFC 6749 4.1.2.1)."""
    status, _, location = await authorize(api, redirect_uri="https://evil.example/cb")
    assert (status, location) == (400, "")
    status, _, location = await authorize(api, client_id="someone-else")
    assert (status, location) == (400, "")


async def test_authorize_rejects_other_response_types(api: Api) -> None:
    """response_type other than code redirects back with unsupported_response_type."""
    _, query, _ = await authorize(api, response_type="token")
    assert query["error"] == ["unsupported_response_type"]


async def test_code_exchange_returns_full_token_document(api: Api) -> None:
    """A code exchange returns both tokens, bearer type, expires_in, api_endpoint and orgkey."""
    _, query, _ = await authorize(api)
    result = await api.token_request(code_form(api.fake, query["code"][0]))
    assert result.status == 200
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.headers["Cache-Control"] == "no-store"
    document = result.json
    assert document["token_type"] == "bearer"
    assert document["expires_in"] == 3600
    assert document["api_endpoint"] == api.fake.api_endpoint
    assert document["orgkey"] == "fakeorg"
    assert document["access_token"] != document["refresh_token"]
    works = await api.call("GET", "actions/1", token=document["access_token"])
    assert works.status == 200


async def test_code_is_single_use(api: Api) -> None:
    """A second exchange of the same code is invalid_grant."""
    _, query, _ = await authorize(api)
    form = code_form(api.fake, query["code"][0])
    assert (await api.token_request(form)).status == 200
    again = await api.token_request(form)
    assert again.status == 400
    assert again.json["error"] == "invalid_grant"


async def test_code_exchange_checks_redirect_uri(api: Api) -> None:
    """A code exchanged with a different redirect_uri is invalid_grant."""
    code = api.fake.issue_code()
    result = await api.token_request(code_form(api.fake, code, redirect_uri="http://127.0.0.1/x"))
    assert (result.status, result.json["error"]) == (400, "invalid_grant")


async def test_http_basic_client_authentication_is_accepted(api: Api) -> None:
    """Client credentials may come as HTTP Basic instead of form fields."""
    code = api.fake.issue_code()
    form = code_form(api.fake, code)
    del form["client_id"], form["client_secret"]
    basic = base64.b64encode(f"{api.fake.client_id}:{api.fake.client_secret}".encode()).decode()
    result = await api.token_request(form, headers={"Authorization": f"Basic {basic}"})
    assert result.status == 200
    assert result.json["access_token"]


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": ""}, 401, "invalid_client"),
        ({"grant_type": ""}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"code": ""}, 400, "invalid_request"),
        ({"code": "never-issued"}, 400, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors_follow_rfc6749(
    api: Api, form: dict[str, str], status: int, error: str
) -> None:
    """Bad requests get the RFC 6749 status and error code with an error_description."""
    result = await api.token_request({**code_form(api.fake, api.fake.issue_code()), **form})
    assert result.status == status
    assert result.json["error"] == error
    assert isinstance(result.json["error_description"], str)
    if status == 401:
        assert result.headers["WWW-Authenticate"].startswith("Basic")


async def test_refresh_rotates_and_spent_token_is_invalid_grant(api: Api) -> None:
    """Each refresh token works once; presenting it again is invalid_grant and counted."""
    token = api.fake.issue_token()
    first = await api.token_request(api.refresh_form(token.refresh_token))
    assert first.status == 200
    assert first.json["refresh_token"] != token.refresh_token
    assert first.json["access_token"] != token.access_token
    again = await api.token_request(api.refresh_form(token.refresh_token))
    assert (again.status, again.json["error"]) == (400, "invalid_grant")
    counters = api.fake.counters
    assert counters.spent_token_reuses == 1
    assert counters.refresh_presented[token.refresh_token] == 2
    assert counters.token_calls == 2
    assert counters.token_calls_by_grant == {"refresh_token": 2}
    # Without reuse detection the successor still works.
    successor = await api.token_request(api.refresh_form(first.json["refresh_token"]))
    assert successor.status == 200


async def test_reuse_detection_revokes_the_whole_family(api: Api) -> None:
    """With reuse_detection a spent refresh token revokes every token of its family."""
    api.fake.reuse_detection = True
    token = api.fake.issue_token()
    other = api.fake.issue_token()
    rotated = (await api.token_request(api.refresh_form(token.refresh_token))).json
    assert (await api.token_request(api.refresh_form(token.refresh_token))).status == 400
    dead = await api.token_request(api.refresh_form(rotated["refresh_token"]))
    assert (dead.status, dead.json["error"]) == (400, "invalid_grant")
    for access in (token.access_token, rotated["access_token"]):
        assert (await api.call("GET", "actions/1", token=access)).status == 401
    # Another family is untouched.
    assert (await api.call("GET", "actions/1", token=other.access_token)).status == 200


async def test_grace_window_returns_the_already_issued_successor(api: Api) -> None:
    """Within grace_seconds the previous refresh token returns the same successor pair."""
    api.fake.grace_seconds = 0.3
    token = api.fake.issue_token()
    first = (await api.token_request(api.refresh_form(token.refresh_token))).json
    second = await api.token_request(api.refresh_form(token.refresh_token))
    assert second.status == 200
    assert second.json["access_token"] == first["access_token"]
    assert second.json["refresh_token"] == first["refresh_token"]
    assert api.fake.counters.grace_reuses == 1
    await asyncio.sleep(0.35)
    late = await api.token_request(api.refresh_form(token.refresh_token))
    assert (late.status, late.json["error"]) == (400, "invalid_grant")


async def test_refresh_checks_redirect_uri_only_when_sent(api: Api) -> None:
    """A refresh without redirect_uri works; one with a different redirect_uri is refused."""
    token = api.fake.issue_token()
    wrong = await api.token_request(
        api.refresh_form(token.refresh_token, redirect_uri="http://127.0.0.1/other")
    )
    assert (wrong.status, wrong.json["error"]) == (400, "invalid_grant")
    assert (await api.token_request(api.refresh_form(token.refresh_token))).status == 200


async def test_issue_token_returns_a_library_token(fake: FakeActionstep) -> None:
    """issue_token mints a Token whose fields describe the fake and its expiry."""
    before = time.time()
    token = fake.issue_token(scopes=("actions", "filenotes"), expires_in=120)
    assert before <= token.issued_at <= time.time()
    assert token.expires_at == pytest.approx(token.issued_at + 120)
    assert token.api_endpoint == fake.api_endpoint
    assert token.orgkey == "fakeorg"
    assert token.scopes == ("actions", "filenotes")
    assert fake.environment.token_url == f"{fake.base_url}/api/oauth/token"


async def test_access_tokens_expire_by_wall_clock(api: Api) -> None:
    """An access token is refused with 401 once its expires_in has passed."""
    token = api.fake.issue_token(expires_in=0.2)
    assert (await api.call("GET", "actions/1", token=token.access_token)).status == 200
    await asyncio.sleep(0.25)
    result = await api.call("GET", "actions/1", token=token.access_token)
    assert result.status == 401
    # The resource server's 401 is OAuth-style, and says *why* the token was refused.
    assert result.json["error"] == "expired_token"
    assert "expired" in result.json["error_description"]


async def test_revoke_and_expire_on_demand(api: Api) -> None:
    """revoke_access_token and expire_access_token make that token 401 at once."""
    revoked, expired = api.fake.issue_token(), api.fake.issue_token()
    assert api.fake.revoke_access_token(revoked.access_token)
    assert api.fake.expire_access_token(expired.access_token)
    assert not api.fake.revoke_access_token("never-issued")
    for token in (revoked, expired):
        assert (await api.call("GET", "actions", token=token.access_token)).status == 401
    # An expired access token's refresh token still works.
    assert (await api.token_request(api.refresh_form(expired.refresh_token))).status == 200


async def test_token_latency_delays_the_answer() -> None:
    """token_latency makes the token endpoint sleep before answering."""
    async with FakeActionstep(token_latency=0.2) as fake, aiohttp.ClientSession() as session:
        api = Api(fake, session)
        started = time.perf_counter()
        result = await api.token_request(api.refresh_form(fake.issue_token().refresh_token))
        assert result.status == 200
        assert time.perf_counter() - started >= 0.2


async def test_library_oauth_client_round_trip(api: Api) -> None:
    """The library's own OAuthClient exchanges a code and refreshes against the fake."""
    fake = api.fake
    oauth = OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=fake.environment,
        session=api.session,
    )
    request = oauth.authorization_request(["actions"])
    async with api.session.get(request.url, allow_redirects=False) as response:
        location = response.headers["Location"]
    from actionstep_async._oauth import parse_authorization_response

    code = parse_authorization_response(location, expected_state=request.state)
    token = await oauth.exchange_code(code, scopes=request.scopes)
    assert token.api_endpoint == fake.api_endpoint
    refreshed = await oauth.refresh(token)
    assert refreshed.refresh_token != token.refresh_token
    with pytest.raises(ReauthorizationRequired):
        await oauth.refresh(token)
    assert fake.counters.token_calls_by_grant == {"authorization_code": 1, "refresh_token": 2}


async def test_counters_repr_shows_fingerprints_never_refresh_tokens() -> None:
    """repr(fake.counters) names presented refresh tokens by fingerprint only."""
    async with FakeActionstep() as fake:
        token = fake.issue_token()
        fake.counters.refresh_presented[token.refresh_token] += 1
        for text in (repr(fake.counters), repr(fake.counters.refresh_presented)):
            assert token.refresh_token not in text
            assert fingerprint(token.refresh_token) in text
        assert fake.counters.refresh_presented[token.refresh_token] == 1
