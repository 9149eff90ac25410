"""Scenario 4: several processes share one persisted token, expired, and all start at once.

Each process builds its client from the shared persistence (a token file for the peers, a
FileTokenStore directory or a RedisTokenStore prefix for ours), waits at a barrier, then fires
its requests together with every other process. The fake runs with refresh-token reuse
detection on, as Actionstep-like providers with rotation do: presenting a spent refresh token
revokes the whole token family, so every duplicate refresh is visible as a spent-token reuse.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fake_process import FakeServerProcess
from ..peers import Setup, open_peer, write_token_file
from ._child import encode_setup, spawn
from ._common import Section, mint, table, token_calls

CLIENTS = ("authlib", "aiohttp-oauth2-client", "ours-file", "ours-redis")
PERSISTENCE = {
    "authlib": "`update_token` callback writes one shared JSON file",
    "aiohttp-oauth2-client": "none: token loaded from the shared file at start, saved at exit",
    "ours-file": "FileTokenStore (shared directory)",
    "ours-redis": "RedisTokenStore (127.0.0.1:6379)",
}


@dataclass(frozen=True)
class Sizes:
    processes: int = 8
    requests: int = 200  # per process


QUICK = Sizes(processes=3, requests=20)


async def run(fake: FakeServerProcess, sizes: Sizes, charts: Path) -> Section:
    rows = []
    ours: dict[str, int | None] = {}
    notes: list[str] = []
    await fake.control("POST", "config", {"reuse_detection": True})
    try:
        with tempfile.TemporaryDirectory(prefix="bench-xproc-") as scratch:
            for name in CLIENTS:
                try:
                    results, calls, reuses = await _one_client(fake, name, sizes, Path(scratch))
                except Exception as exc:  # reported in the table; the other clients still run
                    rows.append([name, PERSISTENCE[name], "-", "-", "-", f"error: `{exc!r}`"])
                    if name.startswith("ours"):
                        ours[name] = None
                    continue
                if name.startswith("ours"):
                    ours[name] = calls
                elif calls > sizes.processes:
                    notes.append(
                        f"{name}: {calls} token calls from {sizes.processes} processes. Every"
                        " process refreshed with the refresh token it loaded at start; after"
                        " the first rotation those are spent, the server revoked the token family,"
                        " and each later request tried to refresh again (no backoff or negative"
                        " caching)."
                    )
                rows.append(_row(name, sizes, results, calls, reuses))
    finally:
        await fake.control("POST", "config", {"reuse_detection": False})
    section = Section(
        title="4. Cross-process refresh",
        intro=(
            f"{sizes.processes} processes share one persisted token that has expired; each"
            f" fires {sizes.requests} GETs at once, all processes released together. The fake"
            " detects refresh-token reuse and then revokes the token family."
        ),
    )
    section.tables.append(
        table(
            [
                "client",
                "persistence",
                "processes x requests",
                "token calls",
                "spent-token reuses",
                "failed requests",
            ],
            rows,
            text=2,
        )
    )
    section.notes.extend(notes)
    section.data["ours_token_calls"] = ours
    return section


async def _one_client(
    fake: FakeServerProcess, name: str, sizes: Sizes, scratch: Path
) -> tuple[list[dict[str, Any]], int, int]:
    """Seed the shared token, run the processes; their results, token calls and reuses."""
    await fake.control("POST", "reset", {})
    setup = await _seed(fake, name, scratch / name)
    try:
        config = {
            "mode": "requests",
            "peer": name,
            "setup": encode_setup(setup),
            "requests": sizes.requests,
        }
        results = await spawn([config] * sizes.processes)
    finally:
        if setup.redis_prefix is not None:
            await _delete_redis_keys(setup.redis_prefix)
    calls, reuses = await token_calls(fake)
    return results, calls, reuses


async def _seed(fake: FakeServerProcess, name: str, where: Path) -> Setup:
    """Persist an expired token where ``name`` will look for it; the Setup the children use."""
    token = await mint(fake, expired=True)
    _private_dir(where)
    if name.startswith("ours"):
        prefix = f"actionstep-bench-{uuid.uuid4().hex}:" if name == "ours-redis" else None
        setup = Setup(fake.base_url, store_dir=where, redis_prefix=prefix)
        seeding = await open_peer(name, Setup(**{**setup.__dict__, "token": token}))
        await seeding.aclose()
        return setup
    token_file = where / "token.json"
    write_token_file(token_file, token)
    return Setup(fake.base_url, token_file=token_file)


def _private_dir(where: Path) -> None:
    where.mkdir(mode=0o700)


async def _delete_redis_keys(prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis(host="127.0.0.1", port=6379)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def _row(
    name: str, sizes: Sizes, results: list[dict[str, Any]], calls: int, reuses: int
) -> list[str]:
    failed = sum(result["failed"] for result in results)
    total = sum(result["requests"] for result in results)
    return [
        name,
        PERSISTENCE[name],
        f"{sizes.processes} x {sizes.requests}",
        str(calls),
        str(reuses),
        f"{failed:,} / {total:,}",
    ]
