"""REST hook receiver: events handled per second, and time to the 200 under a slow handler.

The receiver (``WebhookReceiver.app()`` behind aiohttp, no access log) runs in a child process
so the load generator does not share its event loop. The parent POSTs real delivery bodies (the
fake's payload shape, distinct hook trigger counts so nothing is a duplicate) over keep-alive
connections and reads the receiver's counters from a ``/stats`` route.

- throughput: ``--events`` deliveries at ``--concurrency``, no-op handler; events/s from the
  first POST until the handler has run for every one (median of ``--rounds`` rounds);
- answer latency: ``--paced-events`` deliveries sent open-loop at ``--rate`` per second to a
  handler that sleeps ``--slow-ms`` per event on 4 workers (80 events/s at 50 ms, so the queue
  grows; the answers must not wait for it); p50/p99 of the time to the 200 answer, next to the
  same figure with the no-op handler.

    python -m benchmarks.webhooks [--events 20000] [--concurrency 64] [--rounds 3]
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


async def _serve(port: int, slow_ms: float, workers: int) -> None:
    async def handler(event: WebhookEvent) -> None:
        if slow_ms:
            await asyncio.sleep(slow_ms / 1000)

    receiver = WebhookReceiver(handler, secret=SECRET, workers=workers, queue_size=100_000)
    app = receiver.app("/hooks")

    async def stats(_: web.Request) -> web.Response:
        s = receiver.stats
        return web.json_response({"received": s.received, "handled": s.handled})

    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


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


def _start(slow_ms: float, workers: int) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    env = {**os.environ, "BENCH_HOOK_SECRET": SECRET.reveal()}
    args = [sys.executable, "-m", "benchmarks.webhooks", "--serve", str(port)]
    args += ["--slow-ms", str(slow_ms), "--workers", str(workers)]
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


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, slow in (("noop", 0.0), ("slow", args.slow_ms)):
        process, port = _start(slow, 4)
        try:
            if name == "noop":
                await _round(port, _bodies(500, 2 * 10**9), args.concurrency)  # warm-up
                rates = []
                for round_number in range(args.rounds):
                    bodies = _bodies(args.events, round_number * args.events)
                    rates.append((await _round(port, bodies, args.concurrency))[0])
                results["throughput"] = {"median": statistics.median(rates), "rates": rates}
            bodies = _bodies(args.paced_events, 10**9)
            results[name] = _row(await _paced(port, bodies, args.rate))
        finally:
            process.kill()
            process.wait()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow-ms", type=float, default=50.0)
    parser.add_argument("--paced-events", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=200.0, help="paced deliveries per s")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        global SECRET
        SECRET = HookSecret(os.environ["BENCH_HOOK_SECRET"])
        asyncio.run(_serve(args.serve, args.slow_ms, args.workers))
        return
    results = asyncio.run(_measure(args))
    throughput = results["throughput"]
    print(f"events={args.events} concurrency={args.concurrency} cpus={os.cpu_count()}")
    rates = ", ".join(f"{r:,.0f}" for r in throughput["rates"])
    print(f"no-op handler: {throughput['median']:,.0f} events/s handled (rounds: {rates})")
    for name, label in (("noop", "no-op handler"), ("slow", f"{args.slow_ms:g} ms handler")):
        row = results[name]
        print(
            f"time to 200 at {args.rate:g}/s, {label}: p50 {row['p50_ms']:.2f} ms,"
            f" p99 {row['p99_ms']:.2f} ms, max {row['max_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
