"""Client-side CPU cost of one GET: bare aiohttp vs AsyncResourceClient (plain and typed records).

The fake server runs in another process so only the client's own work is measured
(``time.process_time`` of this process). Each variant sends the same N GETs of single actions
with C concurrent callers; the trio runs interleaved R times after a warm-up and the medians are
compared::

    python -m benchmarks.request_path [--requests 5000] [--concurrency 64] [--repeats 3]

"bare" is what a careful user would write by hand: one ClientSession, a fixed bearer header, a
pre-built header dict, ``read()`` and the same JSON parser the client uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from actionstep_async._client import AsyncResourceClient

from ._client_setup import KEY, bench_manager, fake_server, issue_token

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover
    loads = json.loads


async def run_callers(count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> None:
    ids = iter(range(count))

    async def caller() -> None:
        for i in ids:
            await call(i % 5000 + 1)

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def measure(count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> float:
    """CPU seconds of this process per request."""
    cpu = time.process_time()
    await run_callers(count, concurrency, call)
    return (time.process_time() - cpu) / count


@contextlib.asynccontextmanager
async def variants(base_url: str) -> AsyncIterator[dict[str, Callable[[int], Awaitable[Any]]]]:
    async with aiohttp.ClientSession() as bare_session:
        token = await issue_token(bare_session, base_url)
        manager = await bench_manager(base_url, token)
        headers = {
            "Authorization": f"Bearer {token.access_token}",
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
        }
        prefix = f"{token.api_endpoint}rest/actions/"

        async def bare(i: int) -> Any:
            async with bare_session.get(prefix + str(i), headers=headers) as response:
                response.raise_for_status()
                return loads(await response.read())["actions"]

        async with (
            AsyncResourceClient(manager, KEY, concurrency=64) as plain,
            AsyncResourceClient(manager, KEY, concurrency=64, typed=True) as typed,
        ):

            async def plain_get(i: int) -> Any:
                return await plain.get("actions", i)

            async def typed_get(i: int) -> Any:
                return await typed.get("actions", i)

            yield {"a bare aiohttp": bare, "b client plain": plain_get, "c client typed": typed_get}


async def main(args: argparse.Namespace) -> None:
    with fake_server(5000, "actions,participants,actiontypes") as base_url:
        async with variants(base_url) as calls:
            for call in calls.values():  # warm-up: connections, caches, code paths
                await measure(min(args.requests, 1000), args.concurrency, call)
            results: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.repeats):
                for name, call in calls.items():
                    results[name].append(await measure(args.requests, args.concurrency, call))
    medians = {name: statistics.median(values) for name, values in results.items()}
    bare = medians["a bare aiohttp"]
    print(f"{args.requests} GETs, {args.concurrency} concurrent, median of {args.repeats} runs")
    print(f"{'variant':<18}{'CPU us/request':>16}{'ratio to a':>12}   runs (us)")
    for name, value in medians.items():
        runs = ", ".join(f"{v * 1e6:.0f}" for v in results[name])
        print(f"{name:<18}{value * 1e6:>16.1f}{value / bare:>12.3f}   {runs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
