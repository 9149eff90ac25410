"""Latency of one token-store operation, per store: load, compare-and-set, lock+unlock.

    python benchmarks/store_ops.py [--iterations 500] [--redis redis://127.0.0.1:6379/0]

Sequential calls on one event loop, so the figures are per-call latency, not throughput. The file
store's compare-and-set includes two fsyncs (file and directory), so it measures the disk.
Redis keys use a random prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from actionstep_async import Token
from actionstep_async.stores import FileTokenStore, MemoryTokenStore, TokenStore
from actionstep_async.stores.redis import RedisTokenStore

TOKEN = Token(
    access_token="bench-access",
    refresh_token="bench-refresh",
    expires_at=2e9,
    issued_at=2e9 - 3600,
    api_endpoint="https://ap-southeast-2.actionstep.com/api/",
)


async def timed(operation: Callable[[], Awaitable[object]], iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        await operation()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


async def measure(store: TokenStore, iterations: int) -> dict[str, list[float]]:
    await store.compare_and_set("bench", TOKEN, expected_version=0)
    version = 1

    async def save() -> None:
        nonlocal version
        assert await store.compare_and_set("bench", TOKEN, expected_version=version)
        version += 1

    async def lock_unlock() -> None:
        async with store.lock("bench"):
            pass

    return {
        "load": await timed(lambda: store.load("bench"), iterations),
        "compare_and_set": await timed(save, iterations),
        "lock+unlock": await timed(lock_unlock, iterations),
    }


def report(name: str, results: dict[str, list[float]]) -> None:
    for operation, samples in results.items():
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"{name:<7} {operation:<16} p50 {statistics.median(ordered):9.1f} us"
            f"   p99 {p99:9.1f} us"
        )


async def main(iterations: int, redis_url: str) -> None:
    print(f"{iterations} sequential calls each")
    report("memory", await measure(MemoryTokenStore(), iterations))
    with tempfile.TemporaryDirectory() as directory:
        report("file", await measure(FileTokenStore(directory), iterations))
    client = Redis.from_url(redis_url)
    prefix = f"actionstep-bench-{uuid.uuid4().hex}:"
    try:
        report("redis", await measure(RedisTokenStore(client, prefix=prefix), iterations))
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.iterations, arguments.redis))
