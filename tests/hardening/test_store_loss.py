"""Issue 12 section 1: a store that loses or rolls back a token never costs a login.

Real FakeActionstep over loopback, a private redis-server (restarted without persistence,
FLUSHALL) or a real token directory, and real worker processes for the fleet run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actionstep_async import RefreshPolicy, TokenManager, TokenStore
from actionstep_async.stores import FileTokenStore
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FakeActionstep

from ._private_redis import PrivateRedis, private_redis_server

KEY = "org"
POLICY = RefreshPolicy(store_check_interval=0.2, restore_quarantine=0.6, claim_poll=0.02)
WORKER = Path(__file__).with_name("_loss_worker.py")


async def keep_using(manager: TokenManager, seconds: float) -> None:
    """A process that keeps the key in use (so its background check runs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await manager.token(KEY)
        await asyncio.sleep(0.02)


async def lose_after_refresh(fake: FakeActionstep, store: TokenStore, lose: object) -> None:
    """Two managers; A refreshes; the store loses the record; both go on with 0 spent tokens."""
    oauth = fake.oauth_client()
    a = TokenManager(oauth, store, policy=POLICY)
    b = TokenManager(oauth, store, policy=POLICY)
    first = await a.save(KEY, fake.issue_token(expires_in=3600))
    assert (await b.token(KEY)).access_token == first.access_token
    fresh = await a.refresh(KEY)
    await lose()  # type: ignore[operator]
    # B still holds the spent first token; it must never present it, and A's copy must win.
    await asyncio.gather(keep_using(a, 1.0), keep_using(b, 1.0))
    stored = await store.load(KEY)
    assert stored is not None
    assert stored.access_token == fresh.access_token
    assert stored.restored_at is not None
    assert (await b.token(KEY)).access_token == fresh.access_token
    again = await b.refresh(KEY)  # after the quarantine the restored refresh token is live
    assert again.access_token not in {first.access_token, fresh.access_token}
    assert fake.counters.spent_token_reuses == 0
    assert fake.counters.token_calls == 2
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("how", ["flushall", "restart"])
@pytest.mark.slow
async def test_redis_losing_the_record_after_a_refresh_costs_nothing(
    tmp_path: Path, how: str
) -> None:
    """FLUSHALL, or a restart without persistence, right after a refresh: 0 spent, 0 logins."""
    with private_redis_server(tmp_path) as server:
        client = aioredis.Redis(host="127.0.0.1", port=server.port)
        store = RedisTokenStore(client, lock_timeout=5)

        async def lose() -> None:
            if how == "flushall":
                await client.flushall()
            else:
                server.restart()

        try:
            async with FakeActionstep() as fake:
                await lose_after_refresh(fake, store, lose)
        finally:
            await client.aclose()


async def test_deleted_token_file_after_a_refresh_costs_nothing(tmp_path: Path) -> None:
    """The token file deleted right after a refresh: 0 spent, 0 logins."""
    store = FileTokenStore(tmp_path / "tokens")

    async def lose() -> None:
        await store.delete(KEY)

    async with FakeActionstep() as fake:
        await lose_after_refresh(fake, store, lose)


async def test_a_stale_copy_is_never_written_over_a_newer_one(tmp_path: Path) -> None:
    """After a loss, the process with the older copy restores first; the newer copy still wins
    within the quarantine and the older refresh token is never presented."""
    store = FileTokenStore(tmp_path / "tokens")
    async with FakeActionstep() as fake:
        oauth = fake.oauth_client()
        a = TokenManager(oauth, store, policy=POLICY)
        b = TokenManager(oauth, store, policy=POLICY)
        first = await a.save(KEY, fake.issue_token(expires_in=3600))
        await b.token(KEY)
        fresh = await a.refresh(KEY)
        await store.delete(KEY)
        # B needs a refresh now (a 401 to its stale token): it restores its old copy and waits.
        waiter = asyncio.create_task(b.token_rejected(KEY, first))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await keep_using(a, 0.5)  # A's background check writes its newer copy over B's
        token = await asyncio.wait_for(waiter, timeout=5)
        assert token.access_token == fresh.access_token
        assert fake.counters.refresh_presented[first.refresh_token] == 1
        assert fake.counters.spent_token_reuses == 0
        await a.aclose()
        await b.aclose()


async def rollback_scenario(
    fake: FakeActionstep, store: TokenStore, snapshot: object, roll_back: object
) -> None:
    """One-version rollback: at most one spent presentation and recovery without a login."""
    oauth = fake.oauth_client()
    a = TokenManager(oauth, store, policy=POLICY)
    b = TokenManager(oauth, store, policy=POLICY)
    first = await a.save(KEY, fake.issue_token(expires_in=3600))
    assert (await b.token(KEY)).access_token == first.access_token
    saved = await snapshot()  # type: ignore[operator]
    fresh = await a.refresh(KEY)
    await roll_back(saved)  # type: ignore[operator]
    # B's copy equals the rolled-back record, so nothing tells it the record is old: it spends
    # the stale refresh token (the one presentation the bound allows), gets invalid_grant, and
    # re-reads the store while A's background check writes the newer token back.
    user = asyncio.create_task(keep_using(a, 1.5))
    recovered = await b.refresh(KEY)
    await user
    assert recovered.access_token == fresh.access_token
    assert fake.counters.spent_token_reuses <= 1
    assert fake.counters.refresh_presented[first.refresh_token] <= 2
    latest = await b.refresh(KEY)  # the live chain goes on: no login needed
    assert latest.access_token != fresh.access_token
    assert fake.counters.spent_token_reuses <= 1
    await a.aclose()
    await b.aclose()


@pytest.mark.slow
async def test_one_version_rollback_of_redis_costs_at_most_one_spent_presentation(
    tmp_path: Path,
) -> None:
    """A lagging replica or restored backup hands back the previous version (Redis)."""
    with private_redis_server(tmp_path) as server:
        client = aioredis.Redis(host="127.0.0.1", port=server.port)
        store = RedisTokenStore(client, lock_timeout=5)
        name = store.token_key(KEY)

        async def snapshot() -> bytes:
            dumped = await client.dump(name)
            assert dumped is not None
            return dumped

        async def roll_back(saved: bytes) -> None:
            await client.restore(name, 0, saved, replace=True)

        try:
            async with FakeActionstep() as fake:
                await rollback_scenario(fake, store, snapshot, roll_back)
        finally:
            await client.aclose()


async def test_one_version_rollback_of_a_token_file_costs_at_most_one_spent_presentation(
    tmp_path: Path,
) -> None:
    """A backup restore hands back the previous version (file store)."""
    store = FileTokenStore(tmp_path / "tokens")

    def path() -> Path:
        (found,) = (tmp_path / "tokens").glob("*.json")
        return found

    async def snapshot() -> bytes:
        return path().read_bytes()

    async def roll_back(saved: bytes) -> None:
        target = path()
        target.with_suffix(".rollback").write_bytes(saved)
        os.replace(target.with_suffix(".rollback"), target)

    async with FakeActionstep() as fake:
        await rollback_scenario(fake, store, snapshot, roll_back)


def spawn_worker(
    fake: FakeActionstep, where: str, mode: str, end_at: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), fake.base_url, where, mode, repr(end_at), KEY],
        stdout=subprocess.PIPE,
        text=True,
    )


async def fleet_run(fake: FakeActionstep, store: TokenStore, where: str, mode: str) -> None:
    seconds = 8.0
    await TokenManager(fake.oauth_client(), store).save(KEY, fake.issue_token(expires_in=2))
    # One end for all (see the worker): start-up times differ by up to a second under coverage.
    end_at = time.time() + seconds
    workers = [spawn_worker(fake, where, mode, end_at) for _ in range(4)]
    outputs = []
    for worker in workers:
        out, _ = await asyncio.to_thread(worker.communicate, timeout=seconds + 60)
        assert worker.returncode == 0
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    refreshes = sum(output["refreshes"] for output in outputs)
    assert refreshes >= 3, outputs  # the record really was lost several times
    assert all(output["tokens"] > 0 for output in outputs), outputs
    assert sum(output["reauthorization"] for output in outputs) == 0, outputs
    assert sum(output["other_errors"] for output in outputs) == 0, outputs
    assert fake.counters.spent_token_reuses == 0, outputs
    assert fake.counters.token_calls == refreshes


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["redis-del", "redis-flushall", "file-delete"])
async def test_four_processes_with_the_record_lost_after_every_refresh(
    tmp_path: Path, mode: str
) -> None:
    """4 processes, 2-second tokens, the store loses the record right after every refresh:
    0 spent-token presentations and 0 ReauthorizationRequired."""
    async with FakeActionstep(expires_in=2) as fake:
        if mode == "file-delete":
            directory = tmp_path / "tokens"
            await fleet_run(fake, FileTokenStore(directory), str(directory), mode)
            return
        with private_redis_server(tmp_path) as server:
            client = aioredis.Redis(host="127.0.0.1", port=server.port)
            try:
                store = RedisTokenStore(client, prefix="loss:")
                await fleet_run(fake, store, str(server.port), mode)
            finally:
                await client.aclose()


@pytest.mark.slow
def test_private_redis_helper_restarts_empty(tmp_path: Path) -> None:
    """The restart used above really forgets (no persistence)."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        subprocess.run(
            ["redis-cli", "-p", str(server.port), "set", "k", "v"], check=True, capture_output=True
        )
        server.restart()
        got = subprocess.run(
            ["redis-cli", "-p", str(server.port), "get", "k"], check=True, capture_output=True
        )
        assert got.stdout.strip() == b""
    finally:
        server.stop()
