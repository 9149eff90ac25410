"""RedisRateBudget: the governor shared across real processes through real Redis."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from actionstep_async import AsyncResourceClient, OAuthClient, TokenManager
from actionstep_async._governor import Governor
from actionstep_async._rate import GovernorPolicy
from actionstep_async.stores.redis_budget import RedisRateBudget
from actionstep_async.testing import FakeActionstep

from .conftest import REDIS_HOST, REDIS_PORT

# A child process: one permit from the shared governor, then either a 429 or a hang (holding
# its lease until it is killed).
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from redis.asyncio import Redis
    from actionstep_async._governor import Governor
    from actionstep_async._rate import GovernorPolicy
    from actionstep_async.stores.redis_budget import RedisRateBudget

    async def main(host, port, prefix, action):
        redis = Redis(host=host, port=int(port))
        policy = GovernorPolicy(shared_concurrency=1, lease_ttl=5.0)
        governor = Governor("org", policy=policy, shared=RedisRateBudget(redis, prefix=prefix))
        permit = await governor.acquire()
        print("held", flush=True)
        if action == "429":
            await governor.release(permit, 429, 3.0)
        else:
            await asyncio.sleep(3600)
        await redis.aclose()

    asyncio.run(main(*sys.argv[1:]))
    """
)


def _child(prefix: str, action: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", CHILD, REDIS_HOST, str(REDIS_PORT), prefix, action]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def _reap(child: subprocess.Popen[str]) -> int:
    if child.poll() is None:
        child.kill()
    code = child.wait(timeout=30)
    assert child.stdout is not None
    child.stdout.close()
    return code


def _governor(redis: Redis, prefix: str, **policy: float) -> Governor:
    shared = RedisRateBudget(redis, prefix=prefix, poll_interval=0.01)
    return Governor("org", policy=GovernorPolicy(**policy), shared=shared)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_a_429_in_one_process_pauses_the_others(
    redis_client: Redis, redis_prefix: str
) -> None:
    child = _child(redis_prefix, "429")
    child.wait(timeout=30)
    assert _reap(child) == 0
    governor = _governor(redis_client, redis_prefix)
    assert governor.paused_until == 0.0  # nothing local: the pause comes from Redis
    started = time.monotonic()
    permit = await governor.acquire()
    waited = time.monotonic() - started
    await governor.release(permit, 200, None)
    assert waited > 1.5, waited  # Retry-After was 3 s, minus the child's exit


@pytest.mark.slow
async def test_a_killed_workers_lease_is_reclaimed(redis_client: Redis, redis_prefix: str) -> None:
    child = _child(redis_prefix, "hang")
    try:
        shared = RedisRateBudget(redis_client, prefix=redis_prefix, poll_interval=0.01)
        policy = GovernorPolicy(shared_concurrency=1, lease_ttl=5.0)
        leases = await redis_client.zrange(shared.rate_key("org") + ":leases", 0, -1)
        # One ask, no clock involved: the child's lease (5 s from its "held") fills the cap.
        refused = await shared.acquire("org", "probe", policy)
        assert refused.lease is None, leases
        child.kill()
        governor = Governor("org", policy=policy, shared=shared)
        permit = await asyncio.wait_for(governor.acquire(), 30)
        assert permit.lease is not None
        await governor.release(permit, 200, None)
    finally:
        _reap(child)


async def test_rate_limited_sets_a_shared_rate_on_redis_time(
    redis_client: Redis, redis_prefix: str
) -> None:
    budget = RedisRateBudget(redis_client, prefix=redis_prefix)
    policy = GovernorPolicy()
    grant = await budget.acquire("org", "lease-1", policy)
    assert grant.lease == "lease-1"
    await budget.release("org", "lease-1", ok=False)
    await budget.rate_limited("org", 0.5, grant.generation, policy)
    assert 0 < await budget.paused_for("org") <= 0.5
    again = await budget.acquire("org", "lease-2", policy)
    assert again.lease is None  # paused: no lease, come back later
    assert again.wait > 0
    # A 429 for a request sent before the decrease does not decrease again.
    await budget.rate_limited("org", None, grant.generation, policy)
    state = await redis_client.hgetall(budget.rate_key("org"))
    assert int(state[b"gen"]) == grant.generation + 1


async def test_a_slot_given_back_closes_up_the_schedule(
    redis_client: Redis, redis_prefix: str
) -> None:
    budget = RedisRateBudget(redis_client, prefix=redis_prefix)
    policy = GovernorPolicy(initial_rate=2.0)  # slow start at 2/s: slots 0.5 s apart
    first = await budget.acquire("org", "lease-1", policy, bulk=True)
    second = await budget.acquire("org", "lease-2", policy, bulk=True)
    assert second.lease == "lease-2"
    assert second.rate is not None
    assert second.wait > 0
    key = budget.rate_key("org")
    before = float(await redis_client.hget(key, "tat") or 0)
    await budget.give_back("org", "lease-2", 1 / second.rate)
    after = float(await redis_client.hget(key, "tat") or 0)
    assert after == pytest.approx(before - 1 / second.rate, abs=1e-3)  # Lua's tostring: 14 digits
    assert await redis_client.zrange(key + ":leases", 0, -1) == [b"lease-1"]
    await budget.release("org", "lease-1", ok=True)
    assert first.lease == "lease-1"


async def test_token_cooldown_is_shared(redis_client: Redis, redis_prefix: str) -> None:
    budget = RedisRateBudget(redis_client, prefix=redis_prefix)
    assert await budget.cooling_for("org") == 0.0
    await budget.cool_down("org", 2.0)
    await budget.cool_down("org", 0.5)  # a shorter one never shortens it
    assert 1.0 < await budget.cooling_for("org") <= 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def private_redis() -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is needed for the outage test"
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            await client.ping()
            break
        except Exception:
            await asyncio.sleep(0.05)
    await client.aclose()
    yield server, port
    server.kill()
    server.wait(timeout=30)


@pytest.mark.slow
async def test_a_redis_outage_degrades_to_the_local_governor(
    private_redis: tuple[subprocess.Popen[bytes], int], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped mid-run: a warning, then per-process pacing; every request succeeds."""
    server, port = private_redis
    redis = Redis(host="127.0.0.1", port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
    async with FakeActionstep(records={"actions": 400}) as fake:
        fake.rate_limit(rate=100, burst=10)
        oauth = OAuthClient(
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            redirect_uri=fake.redirect_uri,
            environment=fake.environment,
        )
        governor = Governor("org", shared=RedisRateBudget(redis, prefix="outage:"))
        async with TokenManager(oauth) as manager:
            await manager.save("org", fake.issue_token(scopes=("all",)))
            async with AsyncResourceClient(manager, "org", governor=governor) as client:
                caplog.set_level(logging.WARNING, logger="actionstep_async.governor")
                first = [r async for r in client.iterate("actions", page_size=20, concurrency=4)]
                server.kill()
                server.wait(timeout=30)
                second = [r async for r in client.iterate("actions", page_size=20, concurrency=4)]
    await redis.aclose()
    assert len(first) == len(second) == 400
    assert any("shared rate budget" in record.getMessage() for record in caplog.records)


@pytest.mark.slow
def test_the_readme_rate_limits_example_runs_as_printed() -> None:
    """The README's "Rate limits" block, executed exactly as printed (real Redis, real fake)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Rate limits", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "read 400 records" in result.stderr


def _oauth(fake: FakeActionstep) -> OAuthClient:
    return OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=fake.environment,
    )


@pytest.mark.slow
async def test_after_a_redis_outage_the_fallback_starts_from_its_share_and_learns(
    private_redis: tuple[subprocess.Popen[bytes], int], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis made unreachable: the per-process governor paces at what this process was getting
    from the shared budget (not unpaced, not from scratch) and learns from the 429s of a
    tighter limit while Redis stays down."""
    server, port = private_redis
    redis = Redis(host="127.0.0.1", port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
    async with FakeActionstep(records={"actions": 400}) as fake:
        fake.rate_limit(rate=100, burst=5)
        shared = RedisRateBudget(redis, prefix="fallback:")
        governor = Governor("org", policy=GovernorPolicy(initial_rate=50.0), shared=shared)
        async with TokenManager(_oauth(fake)) as manager:
            await manager.save("org", fake.issue_token(scopes=("all",)))
            async with AsyncResourceClient(manager, "org", governor=governor) as client:
                caplog.set_level(logging.WARNING, logger="actionstep_async.governor")
                first = [r async for r in client.iterate("actions", page_size=20)]
                server.kill()
                server.wait(timeout=30)
                fake.rate_limit(rate=5, burst=1)  # the limit drops while Redis is down
                limited_before = governor.rate_limited
                second = [r async for r in client.iterate("actions", page_size=20)]
                carried = governor.state
    await redis.aclose()
    assert len(first) == len(second) == 400
    assert any("shared rate budget" in record.getMessage() for record in caplog.records)
    state = governor.state
    assert state.generation >= 1  # paced, from what it had learned
    assert state.base is not None
    # The carried share overshot the new limit; its 429s taught the local governor a ceiling.
    assert governor.rate_limited > limited_before
    assert state.ceiling is not None
    assert carried.base is not None
    assert carried.base < 100  # never above what the server accepted
