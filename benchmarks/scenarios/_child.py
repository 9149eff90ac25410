"""A benchmark client in its own process: ``python -m benchmarks.scenarios._child``.

The parent starts the child and writes its JSON config as the first line of the child's stdin
(never on the command line: it can hold a token). The child builds its client and prints
``{"ready": true}``; once every
child is ready the parent writes ``go`` on each child's stdin, so all of them start at the same
instant. The child prints one JSON line with its results and exits. Modes:

``requests``
    Build peer ``peer`` (its token comes from the shared file or store) and fire ``requests``
    GETs at once.
``bulk``
    Read every action with our ``iterate(page_size, concurrency, adaptive)``; report records,
    seconds, CPU and peak RSS of this process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..peers import Setup, open_peer
from ._common import fire_all_at_once

__all__ = ["encode_setup", "spawn"]

ROOT = Path(__file__).resolve().parents[2]


def encode_setup(setup: Setup) -> dict[str, Any]:
    return {
        "base_url": setup.base_url,
        "token": setup.token,
        "token_file": str(setup.token_file) if setup.token_file else None,
        "concurrency": setup.concurrency,
        "store_dir": str(setup.store_dir) if setup.store_dir else None,
        "redis_prefix": setup.redis_prefix,
        "key": setup.key,
    }


def _decode_setup(document: Mapping[str, Any]) -> Setup:
    def path(name: str) -> Path | None:
        return Path(document[name]) if document[name] else None

    return Setup(
        base_url=document["base_url"],
        token=document["token"],
        token_file=path("token_file"),
        concurrency=document["concurrency"],
        store_dir=path("store_dir"),
        redis_prefix=document["redis_prefix"],
        key=document["key"],
    )


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, since Linux carries ``ru_maxrss`` over from the parent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


async def _go() -> None:
    print(json.dumps({"ready": True, "rss_mb": _peak_rss_mb()}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit("parent went away")


async def _requests(config: Mapping[str, Any]) -> dict[str, Any]:
    peer = await open_peer(config["peer"], _decode_setup(config["setup"]))
    try:
        await _go()
        fired = await fire_all_at_once(peer, config["requests"], records=1000)
    finally:
        await peer.aclose()
    return {
        "requests": fired.requests,
        "failed": fired.failed,
        "statuses": {str(k): v for k, v in fired.statuses.items()},
        "errors": dict(fired.errors),
        "wall": fired.wall,
    }


async def _bulk(config: Mapping[str, Any]) -> dict[str, Any]:
    peer = await open_peer("ours-plain", _decode_setup(config["setup"]))
    client = peer.client  # type: ignore[attr-defined]
    try:
        await _go()
        before_mb = _peak_rss_mb()
        records = 0
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            async for _ in client.iterate(
                "actions",
                page_size=config["page_size"],
                concurrency=config["concurrency"],
                adaptive=config["adaptive"],
            ):
                records += 1
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    finally:
        await peer.aclose()
    return {
        "records": records,
        "wall": wall,
        "cpu": cpu,
        "rss_before_mb": before_mb,
        "peak_rss_mb": _peak_rss_mb(),
        "error": error,
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    config = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    run = _requests if config["mode"] == "requests" else _bulk
    result = await run(config)
    print(json.dumps(result), flush=True)


async def spawn(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start one child per config, release them together, return their results in order."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.scenarios._child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in configs
    ]
    try:
        for child, config in zip(children, configs, strict=True):
            assert child.stdin is not None
            child.stdin.write(json.dumps(config).encode() + b"\n")
            await child.stdin.drain()
        for child in children:
            assert child.stdout is not None
            ready = await asyncio.wait_for(child.stdout.readline(), timeout=120)
            if not ready:
                raise RuntimeError("a benchmark child exited before it was ready")
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        results = []
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), timeout=300)
            if not line:
                raise RuntimeError("a benchmark child exited without a result")
            results.append(json.loads(line))
        for child in children:
            await child.wait()
        return results
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()


if __name__ == "__main__":
    asyncio.run(main())
