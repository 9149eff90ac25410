"""What a new user meets first, through the real command in a subprocess (issue 13).

The fake-server banner and login with its settings, refused logins, typos in resource names,
``--sort -id``, reads that create nothing, one line per failure, and every exit code README lists.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from actionstep_async.testing import FaultRule

from .helpers import Setup, base_env, finish, free_port, run_cli, start_cli

pytestmark = pytest.mark.slow  # each test runs the real command in a subprocess

ROOT = Path(__file__).resolve().parents[2]


async def _banner(process: asyncio.subprocess.Process) -> dict[str, str]:
    """Read the fake-server banner up to its last export line; the exported settings."""
    assert process.stdout is not None
    exports: dict[str, str] = {}
    lines: list[str] = []
    async with asyncio.timeout(20):
        while "ACTIONSTEP_REDIRECT_URI" not in exports:
            line = (await process.stdout.readline()).decode()
            assert line, "fake-server exited: " + "".join(lines)
            lines.append(line)
            if match := re.match(r"\s*export (ACTIONSTEP_\w+)=(\S+)", line):
                exports[match[1]] = match[2]
    text = "".join(lines)
    assert text.startswith("FakeActionstep listening on http://127.0.0.1:")
    for label in ("base URL:", "client id:", "client secret:", "redirect URI:"):
        assert label in text
    return exports


async def _url_from(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(20):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "login exited before printing the URL"
            if line.startswith("http"):
                return line.strip()


async def _fake_server(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actionstep_async",
        "fake-server",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await asyncio.wait_for(process.communicate(), 10)


async def test_login_with_the_banners_settings_and_any_loopback_redirect(tmp_path: Path) -> None:
    """The banner's export lines are all login needs; a redirect on another port is accepted."""
    server = await _fake_server()
    try:
        exports = await _banner(server)
        env = base_env(tmp_path)
        env.update(exports)
        env["ACTIONSTEP_REDIRECT_URI"] = f"http://127.0.0.1:{free_port()}/callback"
        login = await start_cli("login", env=env, cwd=tmp_path)
        url = await _url_from(login)
        async with aiohttp.ClientSession() as browser, browser.get(url) as response:
            assert "Authorization received" in await response.text()
        result = await finish(login)
    finally:
        await _stop(server)
    assert result.status == 0, result.stderr
    assert "Logged in" in result.stdout


async def test_a_refused_redirect_uri_fails_login_at_once_with_status_3(tmp_path: Path) -> None:
    """With a strict fake, an unregistered redirect URI is reported within seconds, exit 3."""
    server = await _fake_server("--strict-redirect-uri")
    try:
        exports = await _banner(server)
        env = base_env(tmp_path)
        env.update(exports)
        env["ACTIONSTEP_REDIRECT_URI"] = f"http://127.0.0.1:{free_port()}/callback"
        started = time.monotonic()
        result = await run_cli("login", "--timeout", "120", env=env, cwd=tmp_path)
        elapsed = time.monotonic() - started
    finally:
        await _stop(server)
    assert result.status == 3, result.output
    assert "redirect_uri is not registered" in result.stderr
    assert elapsed < 60  # not the 120 s login timeout


async def test_fake_server_help_names_the_command(tmp_path: Path) -> None:
    result = await run_cli("fake-server", "--help", env=base_env(tmp_path), cwd=tmp_path)
    assert result.status == 0
    assert result.stdout.startswith("usage: actionstep-async fake-server")


@pytest.mark.parametrize("args", [("get", "acitons"), ("get", "acitons", "1")])
async def test_a_misspelt_resource_is_named_with_a_suggestion(
    setup: Setup, args: tuple[str, ...]
) -> None:
    """A 404 for a resource nobody knows says so and suggests the near name; exit 2."""
    await setup.store_token()
    setup.fake.add_fault(FaultRule(kind="status", status=404, resource="acitons"))
    result = await setup.run(*args)
    assert result.status == 2, result.output
    assert "unknown resource 'acitons' (did you mean 'actions'?)" in result.stderr


async def test_sort_with_a_dash_value_as_help_documents(setup: Setup) -> None:
    await setup.store_token()
    result = await setup.run("get", "actions", "--sort", "-id", "--page-size", "3")
    assert result.status == 0, result.stderr
    assert '"id": 500' in result.stdout


async def test_token_show_creates_no_token_directory(setup: Setup) -> None:
    result = await setup.run("token", "show")
    assert result.status == 3
    assert not setup.token_dir.exists()


async def test_demo_removes_its_temp_dir_unless_kept(tmp_path: Path) -> None:
    """The demo's export goes to a temporary directory that is gone afterwards, or kept."""
    env = base_env(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    small = ("demo", "--actions", "4000", "--participants", "1000", "--no-progress")
    result = await run_cli(*small, env=env, cwd=tmp_path, timeout=90)
    assert result.status == 0, result.stderr
    assert list(temp.iterdir()) == []
    assert "exported files removed" in result.stdout
    assert "actions.jsonl" not in result.stdout  # no path to a file that is gone
    kept = await run_cli(*small, "--keep", env=env, cwd=tmp_path, timeout=90)
    assert kept.status == 0, kept.stderr
    assert [p.name.startswith("actionstep-demo-") for p in temp.iterdir()] == [True]
    assert "kept in" in kept.stdout
    assert "actions.jsonl" in kept.stdout


def _readme_exit_codes() -> set[int]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("Exit codes:", 1)[1].split("\n\n", 2)[1]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}


async def _exit_status(code: int, setup: Setup) -> tuple[int, str]:
    """Drive the real command into the situation README gives for ``code``."""
    env = dict(setup.env)
    if code in (0, 1, 4):
        dead = f"http://127.0.0.1:{free_port()}/api/"
        await setup.store_token(**({"api_endpoint": dead} if code == 4 else {}))
        args = ["get", "actions", "1" if code == 0 else "999999"]
    elif code == 2:
        del env["ACTIONSTEP_CLIENT_ID"]
        args = ["get", "actions"]
    elif code == 3:
        args = ["get", "actions"]  # nothing stored yet: run login
    elif code == 5:
        env["ACTIONSTEP_TOKEN_STORE"] = f"redis://127.0.0.1:{free_port()}/0"
        args = ["token", "show"]
    else:
        assert code == 130
        process = await start_cli("login", env=env, cwd=setup.cwd)
        await _url_from(process)  # waiting for the browser's redirect
        process.send_signal(signal.SIGINT)
        result = await finish(process, timeout=60)
        return result.status, result.stderr
    result = await run_cli(*args, env=env, cwd=setup.cwd, timeout=90)
    return result.status, result.stderr


async def test_every_exit_code_in_the_readme_table(setup: Setup) -> None:
    """Each code README lists is what the command really returns in that situation."""
    codes = _readme_exit_codes()
    assert codes == {0, 1, 2, 3, 4, 5, 130}
    for code in sorted(codes):
        status, stderr = await _exit_status(code, setup)
        assert status == code, (code, stderr)
        if code not in (0, 130):
            # One clear line per failure: no duplicated log lines, no traceback.
            assert len(stderr.strip().splitlines()) == 1, (code, stderr)
        for path in setup.token_dir.glob("*.json"):
            os.unlink(path)


async def test_export_against_an_unreachable_server_fails_quickly_and_says_so(
    setup: Setup,
) -> None:
    """Connection refused: retries are shown as they happen and the export ends in seconds."""
    dead = f"http://127.0.0.1:{free_port()}/api/"
    await setup.store_token(api_endpoint=dead)
    started = time.monotonic()
    result = await setup.run("export", "actions", "--out", "out", "--no-progress", timeout=90)
    elapsed = time.monotonic() - started
    assert result.status == 4, result.output
    assert "connection refused (attempt 2 of 5)" in result.stderr
    assert dead.removeprefix("http://").removesuffix("/api/") in result.stderr
    assert elapsed < 40  # was 77 s of silence


async def test_export_shows_waits_for_429s_and_states_its_budget(setup: Setup) -> None:
    await setup.store_token()
    setup.fake.add_fault(FaultRule(kind="rate_limit", count=2, retry_after=0.2))
    result = await setup.run("export", "actions", "--out", "out", "--no-progress")
    assert result.status == 0, result.stderr
    assert "s: rate limited (attempt 2 of" in result.stderr
    helped = await setup.run("export", "--help")
    assert "within 300 s" in " ".join(helped.stdout.split())
