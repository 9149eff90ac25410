"""Client-side CPU cost of one GET: bare aiohttp vs AsyncResourceClient (plain and typed records).

The fake server runs in another process so only the client's own work is measured
(``time.process_time`` of this process). Each variant sends the same N GETs of single actions
with C concurrent callers; the trio runs interleaved R times after a warm-up and the medians are
compared::

    python benchmarks/request_path.py [--requests 5000] [--concurrency 64] [--repeats 3]

"bare" is what a careful user would write by hand: one ClientSession, a fixed bearer header, a
pre-built header dict, ``read()`` and the same JSON parser the client uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp

from actionstep_async._client import AsyncResourceClient
from actionstep_async._environment import Environment
from actionstep_async._manager import TokenManager
from actionstep_async._oauth import OAuthClient
from actionstep_async._tokens import Token

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover
    loads = json.loads


@contextlib.contextmanager
def fake_server(records: int) -> Iterator[str]:
    """Start ``python -m actionstep_async.testing`` on a free port; yield its base URL."""
    command = [sys.executable, "-m", "actionstep_async.testing", "--port", "0"]
    command += ["--records", str(records), "--resources", "actions,participants,actiontypes"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


async def issue_token(session: aiohttp.ClientSession, base_url: str) -> Token:
    async with session.post(f"{base_url}/_fake/token", json={"scopes": ["all"]}) as response:
        document = await response.json()
    return Token(
        access_token=document["access_token"],
        refresh_token=document["refresh_token"],
        expires_at=document["expires_at"],
        issued_at=document["issued_at"],
        api_endpoint=document["api_endpoint"],
        scopes=tuple(document["scopes"]),
    )


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
        oauth = OAuthClient(
            client_id="test-client-id",
            client_secret="test-client-secret",
            redirect_uri="http://127.0.0.1/callback",
            environment=Environment.local(base_url),
        )
        manager = TokenManager(oauth)
        await manager.save("bench", token)
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
            AsyncResourceClient(manager, "bench", concurrency=64) as plain,
            AsyncResourceClient(manager, "bench", concurrency=64, typed=True) as typed,
        ):

            async def plain_get(i: int) -> Any:
                return await plain.get("actions", i)

            async def typed_get(i: int) -> Any:
                return await typed.get("actions", i)

            yield {"a bare aiohttp": bare, "b client plain": plain_get, "c client typed": typed_get}


async def main(args: argparse.Namespace) -> None:
    with fake_server(5000) as base_url:
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
