"""REST hook receiver: events handled per second, and time to the 200 under a slow handler.

The receiver (``WebhookReceiver.app()`` behind aiohttp, no access log) runs in a child process
so the load generator does not share its event loop. The parent POSTs real delivery bodies (the
fake's payload shape, distinct hook trigger counts so nothing is a duplicate) over keep-alive
connections and reads the receiver's counters from a ``/stats`` route.

- throughput: ``--events`` deliveries at ``--concurrency``, no-op handler; events/s from the
  first POST until the handler has run for every one, in rounds alternating with a bare aiohttp
  route that only reads the body and answers 200 (the floor), reported as the median of the
  per-round ratios;
- answer latency: ``--paced-events`` deliveries sent open-loop at ``--rate`` per second to a
  handler that sleeps ``--slow-ms`` per event on 4 workers (80 events/s at 50 ms, so the queue
  grows; the answers must not wait for it); p50/p99 of the time to the 200 answer, next to the
  same figure with the no-op handler.

    python -m benchmarks.webhooks [--events 5000] [--concurrency 64] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from actionstep_async import HookSecret
from actionstep_async.testing._hooks import payload
from actionstep_async.webhooks import WebhookEvent, WebhookReceiver

SECRET = HookSecret.generate()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bare_app() -> tuple[web.Application, list[int]]:
    """The floor: an aiohttp route that reads the body and answers 200, nothing else."""
    count = [0]

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        count[0] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks", bare)
    return app, count


async def _serve(port: int, slow_ms: float, workers: int, bare: bool) -> None:
    async def handler(event: WebhookEvent) -> None:
        if slow_ms:
            await asyncio.sleep(slow_ms / 1000)

    receiver = WebhookReceiver(handler, secret=SECRET, workers=workers, queue_size=100_000)
    app, count = _bare_app() if bare else (receiver.app("/hooks"), [0])

    async def stats(_: web.Request) -> web.Response:
        handled = count[0] if bare else receiver.stats.handled
        return web.json_response({"handled": handled})

    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def _cpu() -> tuple[float, float]:
    """(CPU seconds of the whole machine, of this process and its waited-for children)."""
    import psutil  # type: ignore[import-untyped,unused-ignore]

    total = psutil.cpu_times()
    own = psutil.Process().cpu_times()
    mine = own.user + own.system + own.children_user + own.children_system
    return total.user + total.nice + total.system, mine


def _bodies(count: int, offset: int) -> list[bytes]:
    links = {"actionType": "actiontypes", "assignedTo": "participants"}
    bodies = []
    for n in range(count):
        record = {
            "id": 1 + n % 5000,
            "name": f"Matter {n}",
            "isDeleted": "F",
            "modifiedTimestamp": "2024-05-01T10:00:00+10:00",
            "links": {"actionType": "3", "assignedTo": "9"},
        }
        hook = {"id": 7, "targetUrl": "http://x/hooks", "triggeredCount": offset + n + 1}
        document = payload("actions", record, links, hook=hook, event="ActionUpdated")
        bodies.append(json.dumps(document).encode())
    return bodies


def _start(slow_ms: float, workers: int, bare: bool = False) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    env = {**os.environ, "BENCH_HOOK_SECRET": SECRET.reveal()}
    args = [sys.executable, "-m", "benchmarks.webhooks", "--serve", str(port)]
    args += ["--slow-ms", str(slow_ms), "--workers", str(workers)] + (["--bare"] if bare else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise SystemExit("the receiver did not start")
    return process, port


async def _round(port: int, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    url = SECRET.sign(f"http://127.0.0.1:{port}/hooks")
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://127.0.0.1:{port}/stats") as response:
            before = (await response.json())["handled"]
        queue = iter(bodies)

        async def sender() -> None:
            for body in queue:
                started = time.perf_counter()
                async with session.post(url, data=body) as response:
                    await response.read()
                    assert response.status == 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        while True:
            async with session.get(f"http://127.0.0.1:{port}/stats") as response:
                handled = (await response.json())["handled"] - before
            if handled >= len(bodies):
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed, latencies


async def _paced(port: int, bodies: list[bytes], rate: float) -> list[float]:
    """Open loop: one POST every ``1/rate`` s whatever the answers do; latency of each."""
    url = SECRET.sign(f"http://127.0.0.1:{port}/hooks")
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def send(body: bytes) -> None:
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
                assert response.status == 200
            latencies.append(time.perf_counter() - started)

        tasks = []
        begin = time.perf_counter()
        for n, body in enumerate(bodies):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(body)))
        await asyncio.gather(*tasks)
    return latencies


def _pct(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def _row(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": max(latencies) * 1000,
    }


async def _throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds alternate between the bare route and the receiver; ratios are paired per round."""
    servers = [_start(0.0, 4, bare=True), _start(0.0, 4)]
    try:
        for _, port in servers:
            await _round(port, _bodies(500, 2 * 10**9), args.concurrency)  # warm-up
        bare, ours = [], []
        for round_number in range(args.rounds):
            bodies = _bodies(args.events, round_number * args.events)
            bare.append((await _round(servers[0][1], bodies, args.concurrency))[0])
            ours.append((await _round(servers[1][1], bodies, args.concurrency))[0])
        ratios = [b / o for b, o in zip(bare, ours, strict=True)]
        results: dict[str, Any] = {"bare": bare, "ours": ours, "ratio": statistics.median(ratios)}
        for name, (_, port) in zip(("bare", "noop"), servers, strict=True):
            results[f"{name}_paced"] = _row(
                await _paced(port, _bodies(args.paced_events, 0), args.rate)
            )
        return results
    finally:
        for process, _ in servers:
            process.kill()
            process.wait()


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    results = await _throughput(args)
    process, port = _start(args.slow_ms, 4)
    try:
        results["slow_paced"] = _row(await _paced(port, _bodies(args.paced_events, 0), args.rate))
    finally:
        process.kill()
        process.wait()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--slow-ms", type=float, default=50.0)
    parser.add_argument("--paced-events", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=200.0, help="paced deliveries per s")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        global SECRET
        SECRET = HookSecret(os.environ["BENCH_HOOK_SECRET"])
        asyncio.run(_serve(args.serve, args.slow_ms, args.workers, args.bare))
        return
    cpu_before, wall_before = _cpu(), time.perf_counter()
    results = asyncio.run(_measure(args))
    cpu_after, wall = _cpu(), time.perf_counter() - wall_before
    others = max(0.0, (cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1])) / wall
    print(
        f"events={args.events} concurrency={args.concurrency} cpus={os.cpu_count()};"
        f" {wall:.0f} s, other processes used {others:.2f} cores meanwhile"
    )
    for name, label in (("bare", "bare aiohttp route"), ("ours", "WebhookReceiver, no-op")):
        rates = ", ".join(f"{r:,.0f}" for r in results[name])
        print(f"{label}: median {statistics.median(results[name]):,.0f} events/s ({rates})")
    print(f"bare route events/s over ours: {results['ratio']:.2f}x (median of per-round ratios)")
    rows = (
        ("bare_paced", "bare aiohttp route"),
        ("noop_paced", "WebhookReceiver, no-op handler"),
        ("slow_paced", f"WebhookReceiver, {args.slow_ms:g} ms handler"),
    )
    for name, label in rows:
        row = results[name]
        print(
            f"time to 200 at {args.rate:g}/s, {label}: p50 {row['p50_ms']:.2f} ms,"
            f" p99 {row['p99_ms']:.2f} ms, max {row['max_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
