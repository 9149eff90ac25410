"""Issue 15: N processes bulk-reading one organisation, with and without the shared governor.

One standalone fake enforces R requests/s (burst B) for the organisation. ``--processes``
workers start together and each reads ``--pages`` pages of ``actions`` with ``iterate()``:

* ``shared``: every worker's governor shares a ``RedisRateBudget`` (Redis on 127.0.0.1:6379,
  keys under a random prefix, deleted afterwards);
* ``alone``: each worker has only its own per-process governor;
* ``single``: one process reads the same total, adaptive as usual.

Each worker records the time and status of every response; the table gives the aggregate
throughput of successful requests (against R) and the share of responses that were 429, and
``--chart`` draws both over time::

    python -m benchmarks.governor [--rate 40] [--burst 5] [--processes 8] [--pages 60]
                                  [--chart benchmarks/charts/governor.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._fake_process import FakeServerProcess

PAGE_SIZE = 10
MODES = ("shared", "alone", "single")


async def run_mode(
    fake: FakeServerProcess, args: argparse.Namespace, mode: str, scratch: Path
) -> list[tuple[float, int]]:
    await fake.control("POST", "reset", {})
    await fake.control("POST", "rate_limit", {"rate": args.rate, "burst": args.burst})
    token = await fake.control("POST", "token", {"expires_in": 3600})
    processes = 1 if mode == "single" else args.processes
    pages = args.pages * args.processes // processes
    prefix = f"actionstep-bench-{uuid.uuid4().hex}:" if mode == "shared" else ""
    children = []
    for number in range(processes):
        out = scratch / f"{mode}-{number}.json"
        spec = {"token": token, "pages": pages, "prefix": prefix, "out": str(out)}
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks._governor_child",
                json.dumps(spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    go = await _start_together(children)
    codes = [await child.wait() for child in children]
    if any(codes):
        raise RuntimeError(f"{mode}: workers exited with {codes}")
    events: list[tuple[float, int]] = []
    for number in range(processes):
        document = json.loads((scratch / f"{mode}-{number}.json").read_text())
        events.extend((stamp - go, status) for stamp, status in document["events"])
        if args.verbose:
            _describe(mode, number, document, go)
    if prefix:
        await _clean_redis(prefix)
    return sorted(events)


def _describe(mode: str, number: int, document: dict[str, Any], go: float) -> None:
    stamps = [stamp for stamp, _ in document["events"]]
    latencies = sorted(document["latencies"])
    print(
        f"{mode} {number}: first {stamps[0] - go:.2f} s, last {stamps[-1] - go:.2f} s,"
        f" median latency {latencies[len(latencies) // 2] * 1000:.0f} ms,"
        f" learned {document['base']} (generation {document['gen']}), shared {document['shared']}"
    )


async def _start_together(children: Sequence[asyncio.subprocess.Process]) -> float:
    """Wait until every worker has started up, then give them one start time.

    Starting eight interpreters on a loaded machine takes seconds; the clock starts when all
    are ready to send, so start-up is not counted as the governor's time.
    """
    for child in children:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"a worker did not start: {line!r}")
    go = time.time() + 0.5
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{go}\n".encode())
        await child.stdin.drain()
        child.stdin.close()
    return go


async def _clean_redis(prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis()
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def summarise(events: Sequence[tuple[float, int]], rate: float) -> tuple[float, float, float, int]:
    """(throughput / R overall, the same from the first 429 on, 429 share, requests)."""
    ok = [stamp for stamp, status in events if status == 200]
    limited = [stamp for stamp, status in events if status == 429]
    span = max(ok) if ok else 1.0
    first = limited[0] if limited else 0.0
    after = [stamp for stamp in ok if stamp > first]
    steady = len(after) / max(span - first, 1e-9) / rate
    return len(ok) / span / rate, steady, len(limited) / max(len(events), 1), len(events)


def chart(path: Path, series: dict[str, list[tuple[float, int]]], rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(series), 1, figsize=(10, 3.2 * len(series)), sharex=True)
    for axis, (mode, events) in zip(axes, series.items(), strict=True):
        seconds = int(max(stamp for stamp, _ in events)) + 1
        ok = [0] * seconds
        limited = [0] * seconds
        for stamp, status in events:
            second = max(0, int(stamp))
            if status == 200:
                ok[second] += 1
            elif status == 429:
                limited[second] += 1
        axis.plot(range(seconds), ok, label="200 per second", color="#1f77b4")
        axis.bar(range(seconds), limited, label="429 per second", color="#d62728", alpha=0.7)
        axis.axhline(rate, color="#555555", linestyle="--", label=f"limit R={rate:g}/s")
        axis.set_title(mode)
        axis.set_ylabel("responses")
        axis.legend(loc="upper right")
    axes[-1].set_xlabel("seconds since start")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


async def main(args: argparse.Namespace) -> None:
    records = args.pages * args.processes * PAGE_SIZE
    series: dict[str, list[tuple[float, int]]] = {}
    async with FakeServerProcess(records=records) as fake:
        with tempfile.TemporaryDirectory(prefix="bench-governor-") as scratch:
            for mode in args.modes.split(","):
                series[mode] = await run_mode(fake, args, mode, Path(scratch))
    print(
        f"R={args.rate:g}/s burst={args.burst}, {args.processes} processes x {args.pages} pages"
        f" of {PAGE_SIZE} (single: 1 process x {args.pages * args.processes})"
    )
    print("| run | requests | throughput / R | from the first 429 on | 429 share |")
    print("|---|---:|---:|---:|---:|")
    for mode, events in series.items():
        ratio, steady, share, total = summarise(events, args.rate)
        print(f"| {mode} | {total} | {ratio:.2f} | {steady:.2f} | {share:.2%} |")
    if args.chart:
        chart(
            Path(args.chart), {m: series[m] for m in ("shared", "alone") if m in series}, args.rate
        )


def _parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--chart", default="")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES))
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(_parse()))
