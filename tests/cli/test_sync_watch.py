"""``actionstep-async sync --watch``: interrupted cleanly, and kept current by REST hooks."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from actionstep_async import HookSecret
from actionstep_async.mirror import Mirror
from actionstep_async.mirror._plan import State
from actionstep_async.mirror._store import load_state

from ..mirror.conftest import assert_mirror_equals_fake
from .helpers import Completed, Setup, finish, free_port, run_cli, start_cli

pytestmark = pytest.mark.slow

HOOK_SECRET = "sentinel-mirror-hook-secret-5c0f2e8a"


async def _read_until(
    process: asyncio.subprocess.Process, done: Callable[[list[str]], bool], limit: int = 200
) -> list[str]:
    """Lines of stdout until ``done(lines)`` holds (each line bounded, never a fixed sleep)."""
    assert process.stdout is not None
    lines: list[str] = []
    while not done(lines):
        raw = await asyncio.wait_for(process.stdout.readline(), 120)
        if not raw:
            stderr = await process.stderr.read() if process.stderr else b""
            pytest.fail(f"the command ended early: {lines} {stderr.decode()}")
        lines.append(raw.decode().rstrip("\n"))
        assert len(lines) <= limit, lines
    return lines


def _deltas_seen(count: int) -> Callable[[list[str]], bool]:
    return lambda seen: sum("actions: delta" in line for line in seen) >= count


def _interrupted_cleanly(result: Completed) -> None:
    assert result.status == 130, result.output
    assert "Traceback" not in result.stderr, result.stderr
    assert "CancelledError" not in result.output, result.output
    assert "interrupted" in result.stderr


async def _state(url: str, resource: str) -> State | None:
    engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://"))
    try:
        async with engine.connect() as conn:
            return await load_state(conn, resource)
    finally:
        await engine.dispose()


async def _check(setup: Setup, url: str, *resources: str) -> None:
    async with await setup.fake.connect(scopes=["all"]) as client, Mirror(client, url) as mirror:
        for resource in resources:
            await assert_mirror_equals_fake(mirror, setup.fake, resource)


@pytest.mark.records(actions=400, participants=10, filenotes=10)
async def test_sigint_ends_a_watch_with_130_and_keeps_the_last_checkpoint(
    setup: Setup, tmp_path: Path
) -> None:
    """Ctrl-C at three different points of the loop: exit 130, no traceback, a sound mirror."""
    await setup.store_token()
    url = f"sqlite:///{tmp_path / 'watched.db'}"
    args = ("sync", "--to", url, "actions", "--watch", "--interval", "0.05", "--no-progress")
    for deltas in (1, 2, 5):  # the signal lands in a sleep or in a delta, whichever is running
        process = await start_cli(*args, env=setup.env, cwd=setup.cwd)
        lines = await _read_until(process, _deltas_seen(deltas))
        process.send_signal(signal.SIGINT)
        _interrupted_cleanly(await finish(process, 120))
        state = await _state(url, "actions")
        assert state is not None, lines
        assert state.phase == "delta", lines
        assert state.checkpoint, lines
        setup.fake.rest.table("actions").update(deltas, {"name": f"Edited {deltas}"})
    rerun = await setup.run("sync", "--to", url, "actions", "--no-progress", timeout=120)
    assert rerun.status == 0, rerun.output
    assert rerun.stdout.startswith("actions: delta, ")
    await _check(setup, url, "actions")


def _ours(setup: Setup) -> list[dict[str, Any]]:
    """The fake's subscriptions minted under our secret (it seeds others of its own)."""
    secret = HookSecret(HOOK_SECRET)
    return [h for h in setup.fake.hooks.subscriptions() if secret.owns(str(h["targetUrl"]))]


def _hooked(lines: list[str], *wanted: str) -> bool:
    return all(any(line == want for line in lines) for want in wanted)


@pytest.mark.records(actions=30, participants=40, actionparticipants=30)
async def test_watch_with_a_public_url_applies_hook_events_without_waiting_for_a_delta(
    setup: Setup, tmp_path: Path
) -> None:
    """Create, update, delete in the fake: in the mirror via hooks (the delta is an hour off)."""
    await setup.store_token()
    env = {**setup.env, "ACTIONSTEP_HOOK_SECRET": HOOK_SECRET}
    port = free_port()
    url = f"sqlite:///{tmp_path / 'hooked.db'}"
    public = f"http://127.0.0.1:{port}/mirror-hooks"
    args = ("sync", "--to", url, "participants", "actionparticipants", "--watch")
    options = ("--public-url", public, "--port", str(port), "--interval", "3600", "--no-progress")
    process = await start_cli(*args, *options, env=env, cwd=setup.cwd)
    await _read_until(process, lambda seen: any("actionparticipants: reload" in s for s in seen))
    events = {hook["eventName"] for hook in _ours(setup) if hook["status"] == "Active"}
    assert events == {
        "ParticipantCreated",
        "ParticipantUpdated",
        "ActionParticipantAdded",
        "ActionParticipantDeleted",
    }
    victim = str(setup.fake.rest.table("actionparticipants").keys()[0])
    async with await setup.fake.connect(scopes=["all"]) as client:
        created = await client.create(
            "participants", {"displayName": "Hopper, Grace", "firstName": "Grace"}
        )
        await client.update("participants", 5, {"firstName": "Hooked"})
        await client.delete("actionparticipants", victim)
    lines = await _read_until(
        process,
        lambda seen: _hooked(
            seen,
            f"participants {created['id']}: written (ParticipantCreated)",
            "participants 5: written (ParticipantUpdated)",
            f"actionparticipants {victim}: deleted (ActionParticipantDeleted)",
        ),
    )
    assert not any(": delta," in line for line in lines), lines  # no periodic delta ran
    process.send_signal(signal.SIGINT)
    _interrupted_cleanly(await finish(process, 120))
    await _check(setup, url, "participants", "actionparticipants")
    assert setup.fake.hooks.counters.delivered() >= 3
    # Left subscribed on exit: the next start finds them (and re-registers disabled ones).
    assert len(_ours(setup)) == 4


async def test_public_url_needs_watch_a_port_the_secret_and_a_free_port(setup: Setup) -> None:
    await setup.store_token()
    base = ("sync", "--to", "sqlite:///m.db", "actions", "--public-url", "https://x.example/h")
    no_watch = await setup.run(*base, "--port", "8080")
    assert no_watch.status == 2
    assert "--public-url needs --watch" in no_watch.stderr
    no_port = await setup.run(*base, "--watch")
    assert no_port.status == 2
    assert "--port" in no_port.stderr
    no_secret = await setup.run(*base, "--watch", "--port", "8080")
    assert no_secret.status == 2
    assert "ACTIONSTEP_HOOK_SECRET" in no_secret.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = {**setup.env, "ACTIONSTEP_HOOK_SECRET": HOOK_SECRET}
        busy = await run_cli(*base, "--watch", "--port", port, env=env, cwd=setup.cwd)
    assert busy.status == 1
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    bad = await setup.run("sync", "--to", "sqlite:///m.db", "--watch", "--public-url", "ftp://x")
    assert bad.status == 2
    assert "--public-url" in bad.stderr
