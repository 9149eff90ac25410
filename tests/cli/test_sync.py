"""``actionstep-async sync``: the real command in subprocesses, killed, raced and rerun."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from actionstep_async.mirror import Mirror
from actionstep_async.mirror._columns import REVISION_COLUMN

from ..mirror.conftest import assert_mirror_equals_fake
from ..mirror.databases import database_url as database_url  # the shared fixture
from .helpers import Setup, start_cli

pytestmark = pytest.mark.slow


async def _check(setup: Setup, url: str, *resources: str) -> None:
    async with await setup.fake.connect(scopes=["all"]) as client, Mirror(client, url) as mirror:
        for resource in resources:
            await assert_mirror_equals_fake(mirror, setup.fake, resource)


@pytest.mark.records(actions=800, participants=100, filenotes=50)
async def test_sync_loads_then_fetches_deltas(setup: Setup, tmp_path: Path) -> None:
    await setup.store_token()
    url = f"sqlite:///{tmp_path / 'actionstep.db'}"
    first = await setup.run(
        "sync", "--to", url, "actions", "participants", "filenotes", "--no-progress"
    )
    assert first.status == 0, first.output
    # Fetched counts include the delta that closes each load (it re-reads the newest record).
    assert re.search(r"^actions: full, [\d,]+ fetched, 800 written", first.stdout, re.M)
    assert re.search(r"^participants: full, [\d,]+ fetched, 100 written", first.stdout, re.M)
    assert "filenotes: reload, 50 fetched, 50 written" in first.stdout
    setup.fake.rest.table("actions").update(3, {"name": "Changed"})
    setup.fake.rest.table("actions").delete(4)
    second = await setup.run("sync", "--to", url, "actions", "--scan", "--no-progress")
    assert second.status == 0, second.output
    assert ", 1 deleted, ids scanned" in second.stdout
    assert "actions: delta" in second.stdout
    await _check(setup, url, "actions", "participants", "filenotes")


async def test_sync_refuses_a_bad_url(setup: Setup) -> None:
    await setup.store_token()
    result = await setup.run("sync", "--to", "mysql://x@y/z", "actions")
    assert result.status != 0
    assert "unsupported database" in result.stderr


def _change_some(setup: Setup, rng: random.Random) -> None:
    """Updates, creates and hard deletes between two interrupted runs."""
    table = setup.fake.rest.table("actions")
    keys = list(table.keys())
    for key in rng.sample(keys, 40):
        table.update(key, {"name": f"Edited {rng.random():.6f}"})
    for key in rng.sample(keys, 5):
        table.delete(key)
    for n in range(10):
        table.create({"name": f"Created {n} {rng.random():.6f}"})


@pytest.mark.records(actions=8000, participants=50, filenotes=10)
async def test_sigkill_at_random_points_then_a_rerun_leaves_an_exact_mirror(
    setup: Setup, database_url: str
) -> None:
    await setup.store_token()
    rng = random.Random(1818)
    # How long one whole run takes on this machine now (it also warms the fake's records).
    started = time.monotonic()
    calibration = await setup.run("sync", "--to", f"sqlite:///{setup.cwd / 'c.db'}", "actions")
    assert calibration.status == 0, calibration.output
    whole = time.monotonic() - started
    args = ("sync", "--to", database_url, "actions", "--no-progress")
    killed = attempts = 0
    while killed < 10 and attempts < 40:
        attempts += 1
        started = time.monotonic()
        process = await start_cli(*args, env=setup.env, cwd=setup.cwd)
        try:
            # A random point of a run as long as the last one: first loads, then deltas.
            await asyncio.wait_for(process.wait(), rng.uniform(0.1, 0.95) * whole)
            whole = time.monotonic() - started
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            killed += 1
        await asyncio.wait_for(process.communicate(), 120)
        _change_some(setup, rng)
    assert killed == 10
    final = await start_cli(*args, "--scan", env=setup.env, cwd=setup.cwd)
    stdout, stderr = await asyncio.wait_for(final.communicate(), 120)
    assert final.returncode == 0, (stdout + stderr).decode()
    await _check(setup, database_url, "actions")


@pytest.mark.records(actions=6000, participants=10, filenotes=10)
async def test_two_worker_processes_one_waits_and_no_row_is_written_twice(
    setup: Setup, database_url: str
) -> None:
    await setup.store_token()
    args = ("sync", "--to", database_url, "actions", "--no-scan", "--no-progress")
    workers = [await start_cli(*args, env=setup.env, cwd=setup.cwd) for _ in range(2)]
    outputs = [await asyncio.wait_for(w.communicate(), 120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    lines = sorted(out.decode().strip() for out, _ in outputs)
    assert lines[0].startswith("actions: delta, ")
    assert ", 0 written," in lines[0]
    assert "(waited " in lines[0]
    assert re.match(r"actions: full, [\d,]+ fetched, 6,000 written", lines[1])
    async with (
        await setup.fake.connect(scopes=["all"]) as client,
        Mirror(client, database_url) as m,
    ):
        table = await m._prepare(m.spec("actions"))
        async with m.engine.connect() as conn:
            revisions = (await conn.execute(select(table.table.c[REVISION_COLUMN]))).scalars().all()
    assert len(revisions) == 6000
    assert set(revisions) == {1}


@pytest.mark.records(actions=300, participants=10, filenotes=10)
async def test_watch_keeps_syncing_until_interrupted(setup: Setup, tmp_path: Path) -> None:
    await setup.store_token()
    url = f"sqlite:///{tmp_path / 'watched.db'}"
    args = ("sync", "--to", url, "actions", "--watch", "--interval", "0.2", "--no-progress")
    process = await start_cli(*args, env=setup.env, cwd=setup.cwd)
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 60)
    assert first.startswith(b"actions: full, ")
    setup.fake.rest.table("actions").update(9, {"name": "Seen by the watcher"})
    for _ in range(50):  # bounded: each line is one more delta
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"actions: delta, ")
        if b", 1 written" in line:
            break
    else:
        pytest.fail("the watcher never picked up the change")
    process.send_signal(signal.SIGKILL)  # a watcher may die at any moment: nothing is lost
    await asyncio.wait_for(process.communicate(), 60)
    await _check(setup, url, "actions")
