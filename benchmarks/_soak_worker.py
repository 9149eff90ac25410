"""One soak worker process: continuous GETs through AsyncResourceClient for a fixed time.

Started by ``benchmarks/soak.py``; prints one JSON report line on stdout when done::

    python -m benchmarks._soak_worker --store redis --target PREFIX --key soak \
        --base-url http://127.0.0.1:PORT --seconds 240 --concurrency 16 --start-at EPOCH
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from actionstep_async import (
    ActionstepError,
    AsyncResourceClient,
    Environment,
    FileTokenStore,
    OAuthClient,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TokenManager,
    TokenStore,
    TransportError,
)

GENEROUS = RetryPolicy(max_attempts=12, max_elapsed=90.0, backoff_base=0.1, backoff_cap=2.0)
"""Generous enough that 5% 429s, 2% 503s and 1% drops never exhaust it in practice."""

BUDGET_ERRORS = (RateLimitedError, ServerError, TransportError)
"""What a legitimately exhausted retry budget raises; anything else should have succeeded."""


def rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size of this process in KiB, from /proc (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    redis_client: Any = None
    store: TokenStore
    if args.store == "file":
        store = FileTokenStore(args.target)
    else:
        import redis.asyncio as aioredis

        from actionstep_async.stores.redis import RedisTokenStore

        redis_client = aioredis.Redis(host="127.0.0.1", port=6379)
        store = RedisTokenStore(redis_client, prefix=args.target)
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=Environment.local(args.base_url),
    )
    manager = TokenManager(oauth, store)
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    # A compact array (8 bytes a sample): a list of float objects would itself grow RSS by
    # megabytes over a soak and hide what the client does.
    latencies = array.array("d")
    rng = random.Random()
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    deadline = time.monotonic() + args.seconds
    warm_at = time.monotonic() + min(10.0, args.seconds / 10)
    rss_start: int | None = None

    async def caller(client: AsyncResourceClient) -> None:
        nonlocal rss_start
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                await client.get("actions", rng.randint(1, args.records))
            except BUDGET_ERRORS as exc:
                outcomes[f"budget:{type(exc).__name__}"] += 1
            except ActionstepError as exc:
                outcomes[f"unexpected:{type(exc).__name__}"] += 1
                if len(unexpected) < 5:
                    unexpected.append(f"{type(exc).__name__}: {exc}")
            else:
                outcomes["ok"] += 1  # get() raises NotFoundError rather than returning None
                latencies.append(time.perf_counter() - started)
            if rss_start is None and time.monotonic() >= warm_at:
                rss_start = rss_kib()[0]  # after warm-up: imports, pools, caches are settled

    async with AsyncResourceClient(
        manager, args.key, retry=GENEROUS, concurrency=args.concurrency
    ) as client:
        await asyncio.gather(*(caller(client) for _ in range(args.concurrency)))
    await manager.aclose()
    if redis_client is not None:
        await redis_client.aclose()
    rss_end, rss_peak = rss_kib()
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0

    return {
        "requests": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "unexpected_examples": unexpected,
        "refreshes": manager.refresh_count,
        "rss_start_kib": rss_start or rss_end,
        "rss_end_kib": rss_end,
        "rss_peak_kib": rss_peak,
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["redis", "file"], default="redis")
    parser.add_argument("--target", required=True, help="Redis key prefix or token directory")
    parser.add_argument("--key", default="soak")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--start-at", type=float, default=0.0)
    args = parser.parse_args()
    report = asyncio.run(soak(args))
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
