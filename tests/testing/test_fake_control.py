"""The /_fake/ control endpoints, the standalone process and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from actionstep_async.testing import FakeActionstep

from .conftest import JSON_API, Api


async def control(
    session: aiohttp.ClientSession, base_url: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, f"{base_url}/_fake/{path}", json=body) as response:
        return response.status, await response.json()


async def test_control_token_counters_and_reset(api: Api) -> None:
    """/_fake/token mints a usable token; /_fake/counters reports; /_fake/reset zeroes."""
    base = api.fake.base_url
    status, token = await control(api.session, base, "POST", "token", {"scopes": ["actions"]})
    assert status == 200
    assert token["api_endpoint"] == api.fake.api_endpoint
    assert (await api.call("GET", "actions/1", token=token["access_token"])).status == 200
    await api.token_request(api.refresh_form(token["refresh_token"]))
    await api.token_request(api.refresh_form(token["refresh_token"]))
    _, counters = await control(api.session, base, "GET", "counters")
    assert counters["token_calls"] == 2
    assert counters["spent_token_reuses"] == 1
    assert counters["max_refresh_presented"] == 2
    assert counters["requests"]["GET actions 200"] == 1
    # Secrets never leave as such: refresh tokens are keyed by fingerprint.
    assert token["refresh_token"] not in str(counters)
    await control(api.session, base, "POST", "reset")
    _, counters = await control(api.session, base, "GET", "counters")
    assert counters["token_calls"] == 0
    assert counters["requests"] == {}


async def test_control_faults_rate_limit_and_config(api: Api) -> None:
    """Faults, the rate limit and settings can be driven over HTTP."""
    base, session = api.fake.base_url, api.session
    status, listed = await control(
        session, base, "POST", "faults", {"kind": "status", "status": 502, "count": 1}
    )
    assert status == 200
    assert listed["faults"][0]["status"] == 502
    assert (await api.get("actions/1")).status == 502
    assert (await control(session, base, "POST", "faults", {"kind": "nope"}))[0] == 400
    await control(session, base, "POST", "faults", [{"kind": "status"}])
    _, cleared = await control(session, base, "DELETE", "faults")
    assert cleared == {"faults": []}
    await control(session, base, "POST", "rate_limit", {"rate": 1, "burst": 1})
    assert [(await api.get("actions/1")).status for _ in range(2)] == [200, 429]
    await control(session, base, "POST", "rate_limit", {"rate": None})
    assert (await api.get("actions/1")).status == 200
    status, settings = await control(session, base, "POST", "config", {"reuse_detection": True})
    assert (status, settings["reuse_detection"]) == (200, True)
    assert api.fake.reuse_detection is True
    assert (await control(session, base, "POST", "config", {"host": "x"}))[0] == 400


async def test_control_revoke_expire_and_data_reset(api: Api) -> None:
    """/_fake/revoke and /_fake/expire kill a token; reset with data forgets writes."""
    base, session = api.fake.base_url, api.session
    victim = api.fake.issue_token()
    _, answer = await control(session, base, "POST", "revoke", {"token": victim.access_token})
    assert answer == {"revoked": True}
    assert (await api.call("GET", "actions", token=victim.access_token)).status == 401
    other = api.fake.issue_token()
    await control(session, base, "POST", "expire", {"token": other.access_token})
    assert (await api.call("GET", "actions", token=other.access_token)).status == 401
    assert (await api.call("DELETE", "filenotes/1")).status == 204
    await control(session, base, "POST", "reset", {"data": True})
    assert (await api.get("filenotes/1")).status == 200


@pytest.mark.slow
async def test_standalone_process_serves_and_stops() -> None:
    """python -m actionstep_async.testing prints its URL, serves the API and exits on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "actionstep_async.testing", "--records", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("FakeActionstep listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[-1].strip()
        async with aiohttp.ClientSession() as session:
            _, token = await control(session, base, "POST", "token", {})
            headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": JSON_API}
            url = f"{token['api_endpoint']}rest/actions"
            async with session.get(url, params={"pageSize": "200"}, headers=headers) as response:
                document = await response.json(content_type=JSON_API)
        assert document["meta"]["paging"]["actions"]["recordCount"] == 1000
        assert len(document["actions"]) == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert token["access_token"] not in stderr


@pytest.mark.fake_actionstep(records={"actions": 7}, reuse_detection=True)
async def test_plugin_fixture_honours_marker(fake_actionstep: FakeActionstep) -> None:
    """The fake_actionstep fixture is started and configured from the marker's kwargs."""
    assert fake_actionstep.reuse_detection is True
    async with aiohttp.ClientSession() as session:
        api = Api(fake_actionstep, session, fake_actionstep.issue_token().access_token)
        paging = (await api.get("actions")).json["meta"]["paging"]["actions"]
    assert paging["recordCount"] == 7


async def test_plugin_fixture_defaults(fake_actionstep: FakeActionstep) -> None:
    """Without a marker the fixture is a default fake listening on loopback."""
    assert fake_actionstep.base_url.startswith("http://127.0.0.1:")
    assert fake_actionstep.client_id == "test-client-id"


async def test_start_twice_and_base_url_before_start_are_errors() -> None:
    """base_url before start and a second start raise RuntimeError."""
    fake = FakeActionstep()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    async with fake:
        with pytest.raises(RuntimeError):
            await fake.start()
    with pytest.raises(ValueError, match="cannot seed"):
        FakeActionstep(records={"widgets": 3})
