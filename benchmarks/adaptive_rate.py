"""How close a bulk job gets to an unpublished server rate limit, and how many 429s it costs.

FakeActionstep enforces a token bucket of R requests/s (burst B) and, optionally, a fixed
per-request latency like a real API's. C concurrent callers each loop over GETs until N have
succeeded; the adaptive client halves its concurrency on 429 and grows it back slowly::

    python benchmarks/adaptive_rate.py [--rate 50] [--requests 1000] [--callers 64]
                                       [--latency 0.05] [--fixed]

Throughput is reported against R after discounting the initial burst (B requests the bucket
holds at the start would otherwise flatter short runs).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from actionstep_async._client import AsyncResourceClient
from actionstep_async._manager import TokenManager
from actionstep_async._oauth import OAuthClient
from actionstep_async._retry import RetryPolicy
from actionstep_async.testing import FakeActionstep, FaultRule


async def main(args: argparse.Namespace) -> None:
    burst = args.burst if args.burst is not None else max(1, round(args.rate))
    async with FakeActionstep(records={"actions": 1000}) as fake:
        oauth = OAuthClient(
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            redirect_uri=fake.redirect_uri,
            environment=fake.environment,
        )
        manager = TokenManager(oauth)
        await manager.save("bench", fake.issue_token(scopes=("all",)))
        if args.latency:
            fake.add_fault(FaultRule(kind="latency", latency=args.latency))
        fake.rate_limit(rate=args.rate, burst=burst)
        retry = RetryPolicy(max_attempts=100, max_elapsed=600)
        remaining = iter(range(args.requests))
        failures: list[BaseException] = []
        async with AsyncResourceClient(
            manager, "bench", concurrency=args.callers, adaptive=not args.fixed, retry=retry
        ) as client:

            async def caller() -> None:
                for i in remaining:
                    try:
                        await client.get("actions", i % 1000 + 1)
                    except Exception as exc:
                        failures.append(exc)

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(args.callers)))
            elapsed = time.perf_counter() - started
        ok = fake.counters.requests[("GET", "actions", 200)]
        limited = fake.counters.requests[("GET", "actions", 429)]
        throughput = max(ok - burst, 0) / elapsed
        mode = "fixed" if args.fixed else "adaptive"
        print(
            f"{mode} limiter, R={args.rate:g}/s burst={burst}, {args.callers} callers,"
            f" {args.requests} requests, latency {args.latency * 1000:.0f} ms"
        )
        print(f"  succeeded        {ok}/{args.requests} (failures: {len(failures)})")
        print(f"  elapsed          {elapsed:.2f} s")
        ratio = throughput / args.rate
        print(f"  throughput       {throughput:.1f} req/s beyond the burst = {ratio:.2f} R")
        print(f"  raw throughput   {ok / elapsed:.1f} req/s = {ok / elapsed / args.rate:.2f} R")
        print(f"  429 answers      {limited} ({limited / max(ok, 1):.2f} per success)")
        print(f"  final limit      {client.limiter.limit}, decreases {client.limiter.decreases}")
        await manager.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--fixed", action="store_true", help="no adaptive limiter (baseline)")
    asyncio.run(main(parser.parse_args()))
