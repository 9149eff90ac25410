"""login, token, get and the exit statuses, each through the real command in a subprocess."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from actionstep_async import FileTokenStore

from .helpers import CLIENT_SECRET, KEY, Setup, base_env, finish, free_port, run_cli, start_cli

pytestmark = pytest.mark.slow  # each test runs the real command in a subprocess


async def _authorize_url(process: asyncio.subprocess.Process) -> str:
    """The consent URL the command prints (what a person would open in the browser)."""
    assert process.stdout is not None
    async with asyncio.timeout(20):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "login exited before printing the URL"
            if line.startswith("http"):
                return line.strip()


async def test_login_stores_token_and_names_organisation(setup: Setup) -> None:
    """login prints the URL, takes one redirect, stores the token and names the org and host."""
    process = await start_cli("login", env=setup.env, cwd=setup.cwd)
    url = await _authorize_url(process)
    assert "scope=all" in url
    assert "state=" in url
    async with aiohttp.ClientSession() as browser, browser.get(url) as response:
        # The fake approves and redirects; following it lands on the command's listener.
        assert response.status == 200
        assert "Authorization received" in await response.text()
    result = await finish(process)
    assert result.status == 0, result.stderr
    host = setup.fake.base_url.removeprefix("http://")
    assert f"organisation {setup.fake.orgkey}, region host {host}" in result.stdout
    assert setup.fake.counters.token_calls_by_grant["authorization_code"] == 1
    stored = await FileTokenStore(setup.token_dir).load(KEY)
    assert stored is not None
    assert stored.orgkey == setup.fake.orgkey
    for secret in (CLIENT_SECRET, stored.access_token, stored.refresh_token):
        assert secret not in result.output


async def test_login_refuses_a_redirect_with_the_wrong_state(setup: Setup) -> None:
    """A redirect whose state differs is refused, nothing is exchanged or stored, and it exits 1."""
    process = await start_cli("login", env=setup.env, cwd=setup.cwd)
    await _authorize_url(process)
    forged = f"{setup.redirect_uri}?code=stolen&state=forged"
    async with aiohttp.ClientSession() as browser, browser.get(forged) as response:
        assert response.status == 400
    result = await finish(process)
    assert result.status == 1
    assert "state" in result.stderr
    assert setup.fake.counters.token_calls == 0
    assert not (setup.token_dir / f"{KEY}.json").exists()


async def test_token_show_and_refresh_never_print_a_secret(setup: Setup) -> None:
    """token show/refresh print expiry, orgkey, endpoint, scopes and fingerprint but no secret."""
    token = await setup.store_token()
    shown = await setup.run("token", "show")
    assert shown.status == 0, shown.stderr
    for fact in (token.fingerprint, setup.fake.orgkey, token.api_endpoint, "all", "expires"):
        assert fact in shown.stdout
    as_json = await setup.run("token", "show", "--json")
    document = json.loads(as_json.stdout)
    assert document["fingerprint"] == token.fingerprint
    assert document["scopes"] == ["all"]
    refreshed = await setup.run("token", "refresh")
    assert refreshed.status == 0, refreshed.stderr
    assert setup.fake.counters.token_calls_by_grant["refresh_token"] == 1
    new = await FileTokenStore(setup.token_dir).load(KEY)
    assert new is not None
    assert new.fingerprint in refreshed.stdout
    assert new.fingerprint != token.fingerprint
    secrets = (
        CLIENT_SECRET,
        token.access_token,
        token.refresh_token,
        new.access_token,
        new.refresh_token,
    )
    for result in (shown, as_json, refreshed):
        for secret in secrets:
            assert secret not in result.output


async def test_token_keep_alive_refreshes_old_keys_and_reports_json(setup: Setup) -> None:
    """token keep-alive refreshes a key older than --max-idle-days and prints what it did."""
    token = await setup.store_token()
    young = await setup.run("token", "keep-alive")
    assert young.status == 0, young.stderr
    assert json.loads(young.stdout)["young"] == [KEY]
    refreshed = await setup.run("token", "keep-alive", "--max-idle-days", "0")
    assert refreshed.status == 0, refreshed.stderr
    assert json.loads(refreshed.stdout)["refreshed"] == [KEY]
    assert setup.fake.counters.token_calls_by_grant["refresh_token"] == 1
    new = await FileTokenStore(setup.token_dir).load(KEY)
    assert new is not None
    assert new.fingerprint != token.fingerprint
    for secret in (token.refresh_token, new.refresh_token, new.access_token):
        assert secret not in young.output + refreshed.output


async def test_get_with_filters_fields_ids_and_all(setup: Setup) -> None:
    """get applies --filter operators and --fields, fetches ids, and streams JSON Lines (--all)."""
    await setup.store_token()
    page = await setup.run("get", "actions", "--filter", "id_lt=4", "--fields", "id,name")
    assert page.status == 0, page.stderr
    document = json.loads(page.stdout)
    assert [record["id"] for record in document["actions"]] == [1, 2, 3]
    assert all(set(record) <= {"id", "name", "links"} for record in document["actions"])
    assert document["meta"]["paging"]["actions"]["recordCount"] == 3

    lines = await setup.run(
        "get", "actions", "--all", "--filter", "id_in=5,7,9", "--filter", "id_gt=5"
    )
    assert lines.status == 0, lines.stderr
    assert [json.loads(line)["id"] for line in lines.stdout.splitlines()] == [7, 9]

    everything = await setup.run("get", "participants", "--all", "--page-size", "30")
    assert [json.loads(line)["id"] for line in everything.stdout.splitlines()] == list(
        range(1, 101)
    )

    one = await setup.run("get", "actions", "5")
    assert json.loads(one.stdout)["id"] == 5
    several = await setup.run("get", "actions", "5,6")
    assert [record["id"] for record in json.loads(several.stdout)] == [5, 6]
    included = json.loads(
        (await setup.run("get", "actions", "5,6", "--include", "assignedTo")).stdout
    )
    assert [record["id"] for record in included["actions"]] == [5, 6]
    assigned = {str(record["links"]["assignedTo"]) for record in included["actions"]}
    assert {str(record["id"]) for record in included["linked"]["participants"]} == assigned


async def test_settings_come_from_the_toml_file_and_the_environment_wins(setup: Setup) -> None:
    """The TOML file in ACTIONSTEP_CONFIG supplies settings; an environment variable overrides."""
    await setup.store_token()
    config = Path(setup.env["ACTIONSTEP_CONFIG"])
    config.write_text(
        f'client_id = "{setup.fake.client_id}"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        f'redirect_uri = "{setup.redirect_uri}"\n'
        f'environment = "{setup.fake.base_url}"\n'
        'token_store = "/nonexistent/overridden"\n'
    )
    config.chmod(0o600)
    env = {k: v for k, v in setup.env.items() if k != "ACTIONSTEP_CLIENT_SECRET"}
    env.pop("ACTIONSTEP_CLIENT_ID")
    result = await run_cli("token", "refresh", env=env, cwd=setup.cwd)
    assert result.status == 0, result.stderr
    assert "warning" not in result.stderr
    config.write_text('client_id = "x"\nclient_sekret = "typo"\n')
    typo = await run_cli("token", "refresh", env=env, cwd=setup.cwd)
    assert typo.status == 2
    assert "unknown setting(s) client_sekret" in typo.stderr


async def test_get_rejects_a_bad_filter_with_status_2(setup: Setup) -> None:
    """An unknown filter operator is a usage error (exit 2), named, and no request is sent."""
    await setup.store_token()
    result = await setup.run("get", "actions", "--filter", "name_sortof=x")
    assert result.status == 2
    assert "unknown filter operator 'sortof'" in result.stderr
    assert sum(setup.fake.counters.requests.values()) == 0


async def test_missing_configuration_names_the_variable_and_exits_2(tmp_path: Path) -> None:
    """Without ACTIONSTEP_CLIENT_ID the command says which variable to set and exits 2."""
    result = await run_cli("get", "actions", env=base_env(tmp_path), cwd=tmp_path)
    assert result.status == 2
    assert "ACTIONSTEP_CLIENT_ID is not set" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_client_secret_is_not_an_argument(tmp_path: Path) -> None:
    """No option accepts the client secret: argparse refuses it with exit 2."""
    result = await run_cli(
        "get", "actions", "--client-secret", "x", env=base_env(tmp_path), cwd=tmp_path
    )
    assert result.status == 2
    assert "unrecognized arguments" in result.stderr


async def test_no_stored_token_asks_for_login_and_exits_3(setup: Setup) -> None:
    """With nothing stored, get says to run 'actionstep-async login' and exits 3."""
    result = await setup.run("get", "actions")
    assert result.status == 3
    assert "actionstep-async login" in result.stderr


async def test_dead_refresh_token_asks_for_login_and_exits_3(setup: Setup) -> None:
    """An expired token whose refresh token the server revoked ends in exit 3 and a login hint."""
    token = await setup.store_token(expires_at=time.time() - 60)
    setup.fake.revoke_token_family(token.refresh_token)
    result = await setup.run("export", "actions", "--out", "out", "--no-progress")
    assert result.status == 3
    assert "run 'actionstep-async login'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line per failure
    assert token.refresh_token not in result.output


async def test_unreachable_host_is_named_and_exits_4(setup: Setup) -> None:
    """When the data host refuses connections the message names host:port and the exit is 4."""
    dead = f"http://127.0.0.1:{free_port()}/api/"
    await setup.store_token(api_endpoint=dead)
    result = await setup.run("get", "actions", timeout=90)
    assert result.status == 4
    assert dead.removeprefix("http://").removesuffix("/api/") in result.stderr
    assert "Traceback" not in result.stderr
