"""Helpers for testing FakeActionstep over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import attrs
import pytest

from actionstep_async.testing import FakeActionstep

JSON_API = "application/vnd.api+json"


@attrs.frozen
class Result:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class Api:
    """Sends Actionstep-style requests (JSON API headers, bearer token) to a fake."""

    fake: FakeActionstep
    session: aiohttp.ClientSession
    token: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> Result:
        sent = {"Accept": JSON_API}
        bearer = token or self.token
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        data = None
        if json_body is not None:
            sent["Content-Type"] = JSON_API
            data = json.dumps(json_body)
        sent.update(headers or {})
        url = f"{self.fake.api_endpoint}rest/{path}"
        async with self.session.request(
            method, url, params=params, data=data, headers=sent
        ) as response:
            return Result(response.status, response.headers.copy(), await response.read())

    async def get(self, path: str, **params: Any) -> Result:
        return await self.call("GET", path, params=params or None)

    async def token_request(
        self, form: Mapping[str, str], *, headers: Mapping[str, str] | None = None
    ) -> Result:
        async with self.session.post(
            f"{self.fake.base_url}/api/oauth/token", data=dict(form), headers=headers
        ) as response:
            return Result(response.status, response.headers.copy(), await response.read())

    def refresh_form(self, refresh_token: str, **extra: str) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.fake.client_id,
            "client_secret": self.fake.client_secret,
            **extra,
        }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def fake() -> AsyncIterator[FakeActionstep]:
    async with FakeActionstep(records={"actions": 120, "participants": 40}) as server:
        yield server


@pytest.fixture
def api(fake: FakeActionstep, session: aiohttp.ClientSession) -> Api:
    return Api(fake, session, fake.issue_token(scopes=("all",)).access_token)
