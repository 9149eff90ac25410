"""How fast does the standalone FakeActionstep answer a 200-record page of 100,000 actions?

Starts ``python -m actionstep_async.testing`` in a subprocess, mints a token through
``/_fake/token``, then times sequential GETs of ``/api/rest/actions?pageSize=200&page=N`` over one
keep-alive aiohttp session, pages spread over the whole table. Reports the first ("cold") fetch
of each page, which generates its records, and the repeated ("warm") fetches separately, as
p50/p90/p99 in milliseconds.

    python benchmarks/fake_server_latency.py [--records 100000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp


def start_server(records: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "actionstep_async.testing", "--records", str(records)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(base_url: str, records: int, requests: int) -> tuple[list[float], list[float]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/_fake/token", json={"scopes": ["actions"]}) as resp:
            token = await resp.json()
        headers = {
            "Authorization": f"Bearer {token['access_token']}",
            "Accept": "application/vnd.api+json",
        }
        pages = max(1, records // 200)
        wanted = [1 + (i * 7919) % pages for i in range(requests)]
        url = f"{token['api_endpoint']}rest/actions"

        async def fetch(page: int) -> float:
            started = time.perf_counter()
            async with session.get(
                url, params={"pageSize": "200", "page": str(page)}, headers=headers
            ) as response:
                body = await response.read()
                assert response.status == 200, response.status
                assert len(body) > 50_000
            return (time.perf_counter() - started) * 1000.0

        # The first fetch of a page generates its 200 records; later fetches hit the cache.
        cold = [await fetch(page) for page in sorted(set(wanted))]
        return cold, [await fetch(page) for page in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    process, base_url = start_server(args.records)
    try:
        cold, samples = asyncio.run(measure(base_url, args.records, args.requests))
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"FakeActionstep, {args.records:,} actions, GETs of 200-record pages")
    for label, data in (("cold (first fetch of a page)", cold), ("warm", samples)):
        print(
            f"  {label}: n={len(data)}  p50 {percentile(data, 0.50):.2f} ms"
            f"  p90 {percentile(data, 0.90):.2f} ms  p99 {percentile(data, 0.99):.2f} ms"
            f"  mean {statistics.fmean(data):.2f} ms  max {max(data):.2f} ms"
        )


if __name__ == "__main__":
    main()
