"""TokenManager costs: token() on the hot path (ns per call) and a 10,000-coroutine refresh storm.

Run: python -m benchmarks.token_manager

The storm runs against FakeActionstep in a separate process, so server CPU does not count
against the client's latency figures.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from actionstep_async import OAuthClient, Token, TokenManager

from ._fake_process import FakeServerProcess

HOT_CALLS = 1_000_000
STORM = 10_000


class _NeverRefresh:
    async def refresh(self, token: Token) -> Token:
        raise AssertionError("the hot path must not refresh")


async def hot_path() -> tuple[float, float]:
    """ns per `await manager.token(key)` on a fresh token, and per a bare coroutine await."""
    manager = TokenManager(_NeverRefresh())
    now = time.time()
    token = Token("a", "r", expires_at=now + 3600, issued_at=now, api_endpoint="https://x/api/")
    await manager.save("k", token)

    async def bare() -> Token:
        return token

    results = {}
    for name, call in (("bare", bare), ("token", lambda: manager.token("k"))):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter_ns()
            for _ in range(HOT_CALLS):
                await call()
            best = min(best, (time.perf_counter_ns() - start) / HOT_CALLS)
        results[name] = best
    return results["token"], results["bare"]


async def storm(base_url: str, fake: FakeServerProcess) -> dict[str, float]:
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=fake.environment,
    )
    manager = TokenManager(oauth)
    await manager.save("k", await fake.mint_token(expires_in=1))
    await asyncio.sleep(1.1)
    calls_before = (await fake.counters())["token_calls"]
    latencies: list[float] = []

    async def one() -> None:
        start = time.perf_counter()
        await manager.token("k")
        latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one() for _ in range(STORM)))
    calls = (await fake.counters())["token_calls"] - calls_before
    latencies.sort()
    return {
        "token_calls": calls,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def main() -> None:
    token_ns, bare_ns = await hot_path()
    print(f"python {sys.version.split()[0]}")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| token() hot path | {token_ns:.0f} ns |")
    print(f"| bare coroutine await (reference) | {bare_ns:.0f} ns |")
    async with FakeServerProcess(records=10) as fake:
        figures = await storm(fake.base_url, fake)
    print(f"| refresh storm: coroutines | {STORM} |")
    print(f"| refresh storm: token-endpoint calls | {figures['token_calls']:.0f} |")
    print(f"| refresh storm: p50 latency | {figures['p50_ms']:.1f} ms |")
    print(f"| refresh storm: p99 latency | {figures['p99_ms']:.1f} ms |")


if __name__ == "__main__":
    asyncio.run(main())
