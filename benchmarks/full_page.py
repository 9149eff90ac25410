"""Client CPU for a page of 20 actions carrying every documented field: plain and typed records.

The fake server runs in another process, so only this process's work is measured
(``time.process_time``). Four variants list the same pages (``/actions?page=N&pageSize=20``,
every record with all 18 documented attributes and 7 links):

* ``bare-json``: bare aiohttp, a fixed bearer header, ``response.json()`` (the stdlib parser);
* ``bare-orjson``: the same, parsing ``read()`` with orjson (the parser the client uses);
* ``plain``: ``client.list("actions", page_size=20)``, read-only Records;
* ``typed``: ``client.actions.list(page_size=20)``, ``Action`` models.

Each comparison runs as pairs inside every round (the two sides adjacent, alternating which goes
first), so load from other processes hits both sides alike; the figure is the median over rounds
of the paired CPU ratios::

    python -m benchmarks.full_page [--requests 1000] [--concurrency 16] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from actionstep_async import AsyncResourceClient

from ._client_setup import KEY, bench_manager, fake_server, issue_token

PAGES = 50  # 1,000 actions: the pages cycle, so the fake serves them from its cache
PAIRS = (("plain", "bare-orjson"), ("typed", "bare-json"), ("typed", "bare-orjson"))
TARGETS = {("plain", "bare-orjson"): 1.10, ("typed", "bare-json"): 1.30}

Call = Callable[[int], Awaitable[Any]]


async def measure(count: int, concurrency: int, call: Call) -> float:
    """CPU microseconds of this process per request."""
    pages = iter(range(count))

    async def caller() -> None:
        for i in pages:
            await call(i % PAGES + 1)

    cpu = time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return (time.process_time() - cpu) / count * 1e6


@contextlib.asynccontextmanager
async def variants(base_url: str) -> AsyncIterator[dict[str, Call]]:
    async with aiohttp.ClientSession() as session:
        token = await issue_token(session, base_url)
        manager = await bench_manager(base_url, token)
        headers = {
            "Authorization": f"Bearer {token.access_token}",
            "Accept": "application/vnd.api+json",
        }
        prefix = f"{token.api_endpoint}rest/actions?pageSize=20&page="

        async def bare_json(page: int) -> Any:
            async with session.get(prefix + str(page), headers=headers) as response:
                response.raise_for_status()
                return (await response.json(content_type=None))["actions"]

        async def bare_orjson(page: int) -> Any:
            async with session.get(prefix + str(page), headers=headers) as response:
                response.raise_for_status()
                return orjson.loads(await response.read())["actions"]

        async with AsyncResourceClient(manager, KEY, concurrency=64) as client:

            async def plain(page: int) -> Any:
                return await client.list("actions", page=page, page_size=20)

            async def typed(page: int) -> Any:
                return await client.actions.list(page=page, page_size=20)

            yield {
                "bare-json": bare_json,
                "bare-orjson": bare_orjson,
                "plain": plain,
                "typed": typed,
            }
        await manager.aclose()


async def main(args: argparse.Namespace) -> None:
    with fake_server(PAGES * 20, "actions") as base_url:
        async with variants(base_url) as calls:
            for call in calls.values():  # warm-up: connections, the fake's cache, code paths
                await measure(min(args.requests, 500), args.concurrency, call)
            cpu: dict[str, list[float]] = {name: [] for name in calls}
            ratios: dict[tuple[str, str], list[float]] = {pair: [] for pair in PAIRS}
            for round_ in range(args.rounds):
                for index, (mine, base) in enumerate(PAIRS):
                    order = (mine, base) if (round_ + index) % 2 else (base, mine)
                    got = {name: await measure(args.requests, args.concurrency, calls[name])
                           for name in order}  # fmt: skip
                    for name, value in got.items():
                        cpu[name].append(value)
                    ratios[(mine, base)].append(got[mine] / got[base])
    print(
        f"{args.requests} list requests (20 full-field actions each), {args.concurrency}"
        f" concurrent, {args.rounds} rounds; CPU of the client process"
    )
    print("\n| variant | CPU µs/request (median) |\n|---|---|")
    for name, values in cpu.items():
        print(f"| {name} | {statistics.median(values):.0f} |")
    print("\n| comparison | median paired ratio | range | target |\n|---|---|---|---|")
    for (mine, base), values in ratios.items():
        target = TARGETS.get((mine, base))
        shown = f"<= {target:.2f}x" if target else "(for reference)"
        print(
            f"| {mine} / {base} | {statistics.median(values):.2f}x |"
            f" {min(values):.2f}-{max(values):.2f} | {shown} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9)
    asyncio.run(main(parser.parse_args()))
