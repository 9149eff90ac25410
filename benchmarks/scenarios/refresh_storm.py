"""Scenario 2: a refresh storm. N requests start together on an expired token.

Each client gets a token that expired an hour ago (locally and at the server) and fires N GETs
at once. We count token-endpoint calls at the fake and time every request from its own start.
Peers are configured as their users would: Authlib persists through ``update_token`` to a file.
Every client has 100 connections (aiohttp's default pool), ours a limiter of 100 as well.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._fake_process import FakeServerProcess
from ..peers import Setup, open_peer
from . import _charts
from ._common import Fired, Section, fire_all_at_once, fmt, mint, percentile, table, token_calls

PEERS = ("authlib", "aiohttp-oauth2-client", "ours-plain")
AUTHCODE = "aiohttp-oauth2-client-authcode"  # run at the smallest size only: it cannot refresh
POOL = 100
RECORDS = 1000


@dataclass(frozen=True)
class Sizes:
    storms: tuple[int, ...] = (1000, 10_000)


QUICK = Sizes(storms=(200, 1000))


COLUMNS = (
    "concurrent",
    "client",
    "token calls",
    "spent-token reuses",
    "failed",
    "p50 ms",
    "p99 ms",
    "p99 since storm ms",
    "wall s",
)
NOTES: tuple[str, ...] = (
    (
        "Per-request latency starts when the request's coroutine first runs, and the loop runs"
        " them one after another: a client that does much of its work before it first waits"
        " (aiohttp builds the whole request before aiohttp-oauth2-client's middleware waits for"
        " the token) starts its later requests late, so their clocks skip the work done for those"
        " ahead. Ours waits for the refresh at once, so every request's clock starts within a"
        " fraction of a second and includes the whole queue ahead of it (served in arrival order)."
        " *p99 since storm* counts the same time for every client."
    ),
    (
        f"`{AUTHCODE}` is aiohttp-oauth2-client's `AuthorizationCodeGrant` configured as its"
        " README shows (`client_secret` as an extra argument). Its refresh request omits"
        " `client_id`, which the token endpoint refuses, and with no backoff every request"
        " tries again. The `aiohttp-oauth2-client` rows use a 5-line `OAuth2Grant` subclass"
        " that sends `client_id` and `client_secret` with the refresh."
    ),
)


def since_storm(fired: Fired) -> list[float]:
    """Each request's end, in seconds since the storm began."""
    return [ended - fired.began for ended in fired.finished]


def _row(size: int, name: str, calls: int, reuses: int, fired: Fired) -> list[str]:
    return [
        f"{size:,}",
        name,
        str(calls),
        str(reuses),
        str(fired.failed),
        fmt(percentile(fired.latencies, 0.5) * 1000),
        fmt(percentile(fired.latencies, 0.99) * 1000),
        fmt(percentile(since_storm(fired), 0.99) * 1000),
        fmt(fired.wall, 2),
    ]


async def run(fake: FakeServerProcess, sizes: Sizes, charts: Path) -> Section:
    rows = []
    ours: dict[str, int] = {}
    p99: dict[str, tuple[float, float]] = {}
    latencies: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as scratch:
        for size in sizes.storms:
            latencies[size] = {}
            extra = (AUTHCODE,) if size == min(sizes.storms) else ()
            for name in PEERS + extra:
                await fake.control("POST", "reset", {})
                token = await mint(fake, expired=True)
                token_file = Path(scratch) / f"{name}-{size}.json"
                setup = Setup(fake.base_url, token=token, token_file=token_file, concurrency=POOL)
                peer = await open_peer(name, setup)
                try:
                    fired = await fire_all_at_once(peer, size, records=RECORDS)
                finally:
                    await peer.aclose()
                calls, reuses = await token_calls(fake)
                if name.startswith("ours"):
                    ours[f"{size:,} requests"] = calls
                if name != AUTHCODE:
                    latencies[size][name] = fired.latencies
                    if size == max(sizes.storms):
                        own = percentile(fired.latencies, 0.99)
                        p99[name] = (own, percentile(since_storm(fired), 0.99))
                rows.append(_row(size, name, calls, reuses, fired))
    section = Section(
        title="2. Refresh storm",
        intro=(
            "N GETs start at once on a token that expired an hour ago (expired at the server"
            " too). Token calls and spent-token reuses come from the fake's counters; latency is"
            " per request from its own start, so it includes waiting for the refresh and for a"
            f" connection (every client has {POOL} connections). *p99 since storm* is the"
            " 99th percentile of the time from the storm's start to each request's end."
        ),
    )
    section.notes.extend(NOTES)
    section.tables.append(table(list(COLUMNS), rows))
    biggest = max(sizes.storms)
    path = charts / "refresh_storm_latency.png"
    _charts.latency_cdf(
        path, f"Refresh storm: {biggest:,} concurrent requests, expired token", latencies[biggest]
    )
    section.charts.append(path)
    section.data["ours_token_calls"] = ours
    section.data["p99"] = {"size": biggest, "by_client": p99}
    return section
