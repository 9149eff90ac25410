"""``actionstep-async hooks list | ensure | listen`` against the fake, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from actionstep_async import HookSecret, Subscription

from .._secrets import SENTINELS
from .helpers import Setup, free_port, start_cli

HOOK_SECRET = SENTINELS[-1]

# Each test runs the command in a subprocess.
pytestmark = pytest.mark.slow


async def test_ensure_then_list_shows_redacted_targets(setup: Setup) -> None:
    await setup.store_token()
    setup.env["ACTIONSTEP_HOOK_SECRET"] = HOOK_SECRET
    ensured = await setup.run(
        "hooks", "ensure", "ActionCreated", "TaskUpdated", "--target", "https://example.com/h"
    )
    assert ensured.status == 0, ensured.stderr
    result = json.loads(ensured.stdout)
    assert [h["event"] for h in result["created"]] == ["ActionCreated", "TaskUpdated"]
    again = await setup.run(
        "hooks", "ensure", "ActionCreated", "TaskUpdated", "--target", "https://example.com/h"
    )
    assert json.loads(again.stdout)["created"] == []

    listed = await setup.run("hooks", "list")
    assert listed.status == 0, listed.stderr
    hooks = [h for h in json.loads(listed.stdout) if h["ours"]]  # the fake may seed others
    assert len(hooks) == 2
    assert {h["target"] for h in hooks} == {"https://example.com/h?hook_token=..."}
    assert all(h["status"] == "Active" for h in hooks)
    assert "hook_token=" not in listed.stdout.replace("hook_token=...", "")
    for raw in setup.fake.hooks.subscriptions():
        _, _, token = Subscription.from_wire(raw).target_url.partition("hook_token=")
        assert not token or token not in listed.output + ensured.output


async def test_ensure_needs_the_secret_from_the_environment(setup: Setup) -> None:
    await setup.store_token()
    missing = await setup.run("hooks", "ensure", "ActionCreated", "--target", "https://x/h")
    assert missing.status == 2
    assert "ACTIONSTEP_HOOK_SECRET" in missing.stderr
    unknown = await setup.run("hooks", "ensure", "Nope", "--target", "https://x/h")
    assert unknown.status == 2
    assert sum(setup.fake.counters.requests.values()) == 0


async def test_listen_prints_events_the_fake_delivers(setup: Setup) -> None:
    setup.env["ACTIONSTEP_HOOK_SECRET"] = HOOK_SECRET
    port = free_port()
    process = await start_cli("hooks", "listen", "--port", str(port), env=setup.env, cwd=setup.cwd)
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stderr.readline(), 60)
        assert f"listening on http://127.0.0.1:{port}/" in banner.decode()
        await setup.store_token()
        async with await setup.fake.connect(scopes=("all",)) as client:
            await client.hooks.ensure(
                ["ActionUpdated"], f"http://127.0.0.1:{port}/", secret=HookSecret(HOOK_SECRET)
            )
            await client.update("actions", 2, {"name": "Printed"})
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        event = json.loads(line)
        assert (event["event"], event["resource"], event["id"]) == ("ActionUpdated", "actions", "2")
        assert event["record"]["name"] == "Printed"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)
    assert process.returncode == 128 + signal.SIGTERM
