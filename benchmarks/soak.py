"""Soak: 4 processes, one shared token, 60-second lifetimes and injected faults for minutes.

Not a test: it takes a few minutes and prints a table (issue 8, part 3)::

    python -m benchmarks.soak [--seconds 240] [--workers 4] [--store redis|file]
                              [--lifetime 60] [--concurrency 16]

FakeActionstep runs in its own process with reuse detection on (a spent refresh token presented
again revokes the whole family, as a strict provider would) and these faults on the data API:
429 with Retry-After on 5% of requests, 503 on 2%, dropped connections on 1% and 1-second
latency spikes on 1%; the token endpoint gets 0.5-second latency spikes on 20% of refreshes.
The workers share one RedisTokenStore (or FileTokenStore) and one key, and send continuous GETs
through AsyncResourceClient with a generous RetryPolicy.

Targets: no failures that should have succeeded; refreshes <= ceil(T / lifetime) + 1 counted by
the server; no spent refresh token presented again; each worker's RSS flat from warm-up to end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from actionstep_async import FileTokenStore, OAuthClient, TokenManager, TokenStore

from ._fake_process import FakeServerProcess

ROOT = Path(__file__).resolve().parents[1]
FAULTS = [
    {"kind": "latency", "probability": 0.01, "latency": 1.0},
    {"kind": "rate_limit", "probability": 0.05, "retry_after": 1},
    {"kind": "status", "status": 503, "probability": 0.02},
    {"kind": "drop", "probability": 0.01},
    {"kind": "latency", "probability": 0.2, "latency": 0.5, "resource": "oauth/token"},
]


async def seed(fake: FakeServerProcess, store: TokenStore, key: str, lifetime: float) -> None:
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=fake.environment,
    )
    manager = TokenManager(oauth, store)
    await manager.save(key, await fake.mint_token(expires_in=lifetime))
    await manager.aclose()


async def run_workers(args: argparse.Namespace, target: str, base_url: str) -> list[dict[str, Any]]:
    start_at = time.time() + 3.0
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks._soak_worker",
            "--store",
            args.store,
            "--target",
            target,
            "--key",
            args.key,
            "--base-url",
            base_url,
            "--seconds",
            str(args.seconds),
            "--concurrency",
            str(args.concurrency),
            "--start-at",
            str(start_at),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(args.workers)
    ]
    reports = []
    for index, worker in enumerate(workers):
        out, err = await worker.communicate()
        if worker.returncode != 0:
            raise RuntimeError(f"worker {index} failed:\n{err.decode()[-2000:]}")
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


async def main(args: argparse.Namespace) -> int:
    redis_client: Any = None
    with tempfile.TemporaryDirectory() as scratch:
        store: TokenStore
        if args.store == "file":
            target = str(Path(scratch) / "tokens")
            store = FileTokenStore(target)
        else:
            import redis.asyncio as aioredis

            from actionstep_async.stores.redis import RedisTokenStore

            target = f"soak-{uuid.uuid4().hex}:"
            redis_client = aioredis.Redis(host="127.0.0.1", port=6379)
            store = RedisTokenStore(redis_client, prefix=target)
        try:
            async with FakeServerProcess(records=1000) as fake:
                await fake.control(
                    "POST", "config", {"expires_in": args.lifetime, "reuse_detection": True}
                )
                await fake.control("POST", "faults", FAULTS)
                await seed(fake, store, args.key, args.lifetime)
                started = time.monotonic()
                reports = await run_workers(args, target, fake.base_url)
                elapsed = time.monotonic() - started
                counters = await fake.counters()
        finally:
            if redis_client is not None:
                keys = [k async for k in redis_client.scan_iter(match=f"{target}*")]
                if keys:
                    await redis_client.delete(*keys)
                await redis_client.aclose()
    return report(args, reports, counters, elapsed)


def report(
    args: argparse.Namespace,
    reports: list[dict[str, Any]],
    counters: dict[str, Any],
    elapsed: float,
) -> int:
    outcomes: Counter[str] = Counter()
    for item in reports:
        outcomes.update(item["outcomes"])
    requests = sum(item["requests"] for item in reports)
    unexpected = sum(n for name, n in outcomes.items() if name.startswith("unexpected:"))
    exhausted = sum(n for name, n in outcomes.items() if name.startswith("budget:"))
    refreshes = counters["token_calls_by_grant"].get("refresh_token", 0)
    bound = math.ceil(args.seconds / args.lifetime) + 1
    reuses = counters["spent_token_reuses"]
    statuses: Counter[str] = Counter()
    for name, n in counters["requests"].items():
        _method, route, status = name.split(" ")
        if route != "oauth/token":
            statuses[status] += n
    rss_growth = [item["rss_end_kib"] - item["rss_start_kib"] for item in reports]

    print(
        f"soak: {args.workers} workers x {args.concurrency} callers, {args.seconds:g} s"
        f" ({elapsed:.0f} s wall), {args.lifetime:g} s tokens, {args.store} store,"
        f" python {sys.version.split()[0]}"
    )
    print("| measurement | value | target |")
    print("|---|---|---|")
    print(f"| requests (client calls) | {requests} ({requests / args.seconds:.0f}/s) | |")
    print(f"| succeeded | {outcomes['ok']} | |")
    print(f"| failures that should have succeeded | {unexpected} | 0 |")
    print(f"| retry budget exhausted (429/5xx/transport) | {exhausted} | ~0 |")
    served = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
    print(f"| server answers by status (0 = dropped) | {served} | |")
    print(f"| faults fired | {counters['faults_fired']} | |")
    print(f"| refreshes (server-counted refresh_token grants) | {refreshes} | <= {bound} |")
    print(f"| refreshes reported by the workers | {sum(i['refreshes'] for i in reports)} | |")
    print(f"| spent-token reuses | {reuses} | 0 |")
    print(f"| max presentations of one refresh token | {counters['max_refresh_presented']} | 1 |")
    for index, item in enumerate(reports):
        print(
            f"| worker {index}: RSS warm / end / peak (MiB) |"
            f" {item['rss_start_kib'] / 1024:.1f} / {item['rss_end_kib'] / 1024:.1f} /"
            f" {item['rss_peak_kib'] / 1024:.1f} | stable |"
        )
        print(
            f"| worker {index}: requests, p50 / p99 latency | {item['requests']},"
            f" {item['p50_ms']:.1f} / {item['p99_ms']:.1f} ms | |"
        )
    for item in reports:
        for example in item["unexpected_examples"]:
            print(f"unexpected: {example}")
    ok = (
        unexpected == 0
        and refreshes <= bound
        and reuses == 0
        and all(growth < 20 * 1024 for growth in rss_growth)
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Multi-process soak with faults (issue 8).")
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--store", choices=["redis", "file"], default="redis")
    parser.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16, help="callers per worker")
    parser.add_argument("--key", default="soak")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
