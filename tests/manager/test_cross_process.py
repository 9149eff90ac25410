"""Several processes sharing one token store refresh exactly once (real FakeActionstep, Redis)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actionstep_async import FileTokenStore, OAuthClient, TokenManager, TokenStore
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FakeActionstep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def run_workers(
    kind: str, target: str, key: str, base_url: str, processes: int, calls: int
) -> list[dict[str, object]]:
    start_at = time.time() + 2.0
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.manager._worker",
            kind,
            target,
            key,
            base_url,
            str(calls),
            str(start_at),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    reports = []
    for worker in workers:
        out, err = await asyncio.wait_for(worker.communicate(), timeout=60)
        assert worker.returncode == 0, err.decode()
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_eight_processes_with_an_expired_token_refresh_once(
    kind: str, tmp_path: Path, redis_prefix: str
) -> None:
    """8 processes x 200 concurrent calls on an expired shared token: one token call in total."""
    async with FakeActionstep(reuse_detection=True) as fake:
        store: TokenStore
        redis_client = None
        if kind == "file":
            target = str(tmp_path / "tokens")
            store = FileTokenStore(target)
        else:
            target = redis_prefix
            redis_client = aioredis.Redis(host="127.0.0.1", port=6379)
            store = RedisTokenStore(redis_client, prefix=target)
        oauth = OAuthClient(
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            redirect_uri=fake.redirect_uri,
            environment=fake.environment,
        )
        seed = TokenManager(oauth, store)
        first = await seed.save("org-1", fake.issue_token(expires_in=1))
        await asyncio.sleep(1.2)  # expired for everyone at once
        reports = await run_workers(kind, target, "org-1", fake.base_url, processes=8, calls=200)
        if redis_client is not None:
            await redis_client.aclose()

    assert fake.counters.token_calls == 1
    assert fake.counters.spent_token_reuses == 0
    assert fake.counters.refresh_presented[first.refresh_token] == 1
    fingerprints = {fp for report in reports for fp in report["fingerprints"]}  # type: ignore[attr-defined]
    assert len(fingerprints) == 1
    assert first.fingerprint not in fingerprints
    assert sum(report["refreshes"] for report in reports) == 1  # type: ignore[misc]
