"""Upload and download of a large file: ``client.documents`` against bare aiohttp.

The fake server runs in its own process (``FakeServerProcess``). Each transfer runs in a child
process of its own, reaped with ``os.wait4`` so its peak RSS is read exactly. ``bare`` is
aiohttp doing the same parts (5 MB multipart uploads, the attach, 2 parts in flight on download)
with no checks: no retry decisions, no token manager, no size check, no temp file and rename,
blocking file I/O. Rounds are paired: each runs both clients (alternating which goes first) and
the throughput ratio is the median of the per-round ratios.

Run: ``python -m benchmarks.documents [--size-mb 200] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp

from actionstep_async import AsyncResourceClient, Token
from actionstep_async._documents import PART_SIZE, multipart_body, part_count
from actionstep_async._tokens import dump_token, load_token

from ._client_setup import KEY, bench_manager
from ._fake_process import FakeServerProcess


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


# -- the children -------------------------------------------------------------------------


async def _ours(token: Token, base_url: str, source: Path, out: Path) -> dict[str, float]:
    manager = await bench_manager(base_url, token)
    async with AsyncResourceClient(manager, KEY) as client:
        started = time.perf_counter()
        record = await client.documents.upload(source, name="Bench", action=1)
        uploaded = time.perf_counter()
        await client.documents.download(record, out)
        downloaded = time.perf_counter()
    await manager.aclose()
    return {"upload": uploaded - started, "download": downloaded - uploaded}


async def _bare_upload(session: aiohttp.ClientSession, api: str, source: Path) -> str:
    # Blocking file I/O on purpose: the bare baseline does nothing it does not have to.
    size = source.stat().st_size  # noqa: ASYNC240
    count = part_count(size)
    file_id = ""
    with open(source, "rb") as handle:  # noqa: ASYNC230
        for number in range(1, count + 1):
            body, content_type = multipart_body(source.name, handle.read(PART_SIZE), "b" * 32)
            path = f"files/{file_id}" if file_id else "files"
            url = f"{api}{path}?part_count={count}&part_number={number}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                payload = aiohttp.BytesPayload(body)
            async with session.post(url, data=payload, headers={"Content-Type": content_type}) as r:
                file_id = (await r.json(content_type=None))["files"]["id"]
    fields: dict[str, Any] = {"name": "Bench", "file": f"{file_id};{source.name}"}
    attach = {"actiondocuments": {**fields, "links": {"action": 1}}}
    async with session.post(f"{api}actiondocuments", json=attach) as response:
        record = (await response.json(content_type=None))["actiondocuments"]
    return f"{record['file']}:{record['fileSize']}"


async def _bare(token: Token, base_url: str, source: Path, out: Path) -> dict[str, float]:
    api = token.api_endpoint + "rest/"
    headers = {"Authorization": token.authorization, "Accept": "application/vnd.api+json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        started = time.perf_counter()
        identifier, _, size = (await _bare_upload(session, api, source)).rpartition(":")
        uploaded = time.perf_counter()

        async def part(number: int) -> bytes:
            url = f"{api}files/{identifier}?part_number={number}"
            async with session.get(url, headers={"Accept": "*/*"}) as response:
                return await response.read()

        count, upcoming = part_count(int(size)), 1
        window: deque[asyncio.Task[bytes]] = deque()
        with open(out, "wb") as target:  # noqa: ASYNC230
            while upcoming <= count or window:
                while upcoming <= count and len(window) < 2:
                    window.append(asyncio.ensure_future(part(upcoming)))
                    upcoming += 1
                target.write(await window.popleft())
        downloaded = time.perf_counter()
    return {"upload": uploaded - started, "download": downloaded - uploaded}


def _child(args: argparse.Namespace) -> None:
    token = load_token(args.token)
    run = _ours if args.child == "ours" else _bare
    timings = asyncio.run(run(token, args.base_url, Path(args.file), Path(args.out)))
    sys.stdout.write(json.dumps(timings) + "\n")


# -- the parent ---------------------------------------------------------------------------


def _reaped(command: list[str]) -> tuple[dict[str, float], float]:
    """The child's timings and its peak RSS in MiB."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert child.stdout is not None
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command[4]} child failed with status {child.returncode}")
    return json.loads(stdout), usage.ru_maxrss / 1024


async def _run(size_mb: int, rounds: int) -> dict[str, Any]:
    results: dict[str, list[Any]] = {"ours": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as work:
        source = Path(work) / "bundle.bin"
        _make_file(source, size_mb * 1024 * 1024)
        async with FakeServerProcess(records=10) as fake:
            for number in range(rounds):
                order = ("ours", "bare") if number % 2 == 0 else ("bare", "ours")
                for name in order:
                    token = await fake.mint_token()
                    out = Path(work) / f"{name}.out"
                    command = [sys.executable, "-m", "benchmarks.documents", "--child", name]
                    command += ["--token", dump_token(token), "--base-url", fake.base_url]
                    command += ["--file", str(source), "--out", str(out)]
                    timings, rss = await asyncio.to_thread(_reaped, command)
                    if out.stat().st_size != source.stat().st_size:
                        raise RuntimeError(f"{name} wrote {out.stat().st_size} bytes")
                    out.unlink()
                    results[name].append((timings, rss))
    return {"size_mb": size_mb, "rounds": rounds, "results": results}


def _report(run: dict[str, Any]) -> str:
    size = run["size_mb"]
    lines = [
        f"| client | upload MB/s (median) | download MB/s (median) | peak RSS MiB ({size} MB) |",
        "|---|---:|---:|---:|",
    ]
    for name in ("bare", "ours"):
        rows = run["results"][name]
        up = statistics.median(size / timings["upload"] for timings, _ in rows)
        down = statistics.median(size / timings["download"] for timings, _ in rows)
        rss = max(rss for _, rss in rows)
        lines.append(f"| {name} | {up:,.0f} | {down:,.0f} | {rss:,.0f} |")
    pairs = zip(run["results"]["ours"], run["results"]["bare"], strict=True)
    ratios: dict[str, list[float]] = {"upload": [], "download": []}
    for (ours, _), (bare, _) in pairs:
        for direction in ratios:
            ratios[direction].append(bare[direction] / ours[direction])
    lines.append("")
    for direction, values in ratios.items():
        low, high = min(values), max(values)
        rounds = ", ".join(f"{value:.2f}" for value in values)
        lines.append(
            f"- {direction}: ours at {statistics.median(values):.2f}x bare aiohttp's throughput"
            f" (median of {len(values)} paired rounds, range {low:.2f}-{high:.2f}: {rounds})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    started = time.perf_counter()
    run = asyncio.run(_run(args.size_mb, args.rounds))
    print(_report(run))
    print(f"\n_wall time {time.perf_counter() - started:.0f} s_")


if __name__ == "__main__":
    main()
