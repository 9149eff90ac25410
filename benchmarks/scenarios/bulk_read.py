"""Scenario 5: read every one of the 100,000 seeded actions under a server rate limit.

Our ``iterate("actions", page_size=200, ...)`` runs in a child process of its own (so its peak
RSS is its own) in three modes: sequential pages (one at a time), page-parallel (a fixed window
of pages in flight) and adaptive (the same window, halved on every 429 and grown back on
success). The fake adds a fixed latency to every data request, standing in for the network and
Actionstep's own page time, and rate-limits the data API with a token bucket that answers 429
with a whole-second ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .._fake_process import FakeServerProcess
from ..peers import JSON_API, Setup
from ._child import encode_setup, spawn
from ._common import Section, fmt, mint, table


@dataclass(frozen=True)
class Mode:
    name: str
    concurrency: int
    adaptive: bool
    limited: bool = True


@dataclass(frozen=True)
class Sizes:
    page_size: int = 200
    latency: float = 0.02  # seconds added to every data request
    rate: float = 100.0  # requests per second allowed by the token bucket
    burst: int = 20
    window: int = 8
    expected: int = 100_000

    @property
    def modes(self) -> tuple[Mode, ...]:
        return (
            Mode("page-parallel, no rate limit (reference)", self.window, False, limited=False),
            Mode("sequential pages", 1, False),
            Mode("page-parallel", self.window, False),
            Mode("adaptive", self.window, True),
            Mode("page-parallel, hand-tuned to this limit", 2, False),
        )


QUICK = Sizes(latency=0.0, rate=400.0, burst=40)


async def _warm_pages(fake: FakeServerProcess, sizes: Sizes) -> None:
    """Fetch every page once, untimed: the fake builds records on first use, then caches them."""
    token = await mint(fake)
    headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": JSON_API}
    pages = iter(range(1, sizes.expected // sizes.page_size + 1))
    url = f"{fake.base_url}/api/rest/actions"
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            for page in pages:
                query = {"pageSize": str(sizes.page_size), "page": str(page)}
                async with session.get(url, params=query) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(4)))


@dataclass(frozen=True)
class Outcome:
    row: list[str]
    records_per_second: float
    complete: bool
    rate_limited: int


async def _read_all(fake: FakeServerProcess, sizes: Sizes, mode: Mode) -> Outcome:
    """One full read in a fresh child process, with the fake configured for ``mode``."""
    await fake.control("POST", "reset", {})
    token = await mint(fake)
    await fake.control(
        "POST", "faults", {"kind": "latency", "latency": sizes.latency, "resource": "actions"}
    )
    if mode.limited:
        limit = {"rate": sizes.rate, "burst": sizes.burst, "retry_after": True}
        await fake.control("POST", "rate_limit", limit)
    config = {
        "mode": "bulk",
        "setup": encode_setup(Setup(fake.base_url, token=token, concurrency=sizes.window)),
        "page_size": sizes.page_size,
        "concurrency": mode.concurrency,
        "adaptive": mode.adaptive,
    }
    (result,) = await spawn([config])
    requests = (await fake.counters())["requests"]
    limited = int(requests.get("GET actions 429", 0))
    complete = result["records"] == sizes.expected and result["error"] is None
    speed = result["records"] / result["wall"]
    row = [
        mode.name,
        str(mode.concurrency),
        f"{result['records']:,}",
        fmt(speed),
        fmt(result["wall"], 1),
        f"{int(requests.get('GET actions 200', 0)):,}",
        f"{limited:,}",
        fmt(result["rss_before_mb"], 1),
        fmt(result["peak_rss_mb"], 1),
        "yes" if complete else f"no: {result['error']}",
    ]
    return Outcome(row, speed, complete, limited)


async def run(fake: FakeServerProcess, sizes: Sizes, charts: Path) -> Section:
    await _warm_pages(fake, sizes)
    outcomes = {mode.name: await _read_all(fake, sizes, mode) for mode in sizes.modes}
    rows = [outcome.row for outcome in outcomes.values()]
    speed = {name: outcome.records_per_second for name, outcome in outcomes.items()}
    adaptive = outcomes["adaptive"]
    await fake.control("POST", "reset", {})
    section = Section(
        title="5. Bulk read",
        intro=(
            f"`iterate('actions', page_size={sizes.page_size})` over {sizes.expected:,} records"
            f" with {sizes.latency * 1000:g} ms added to each data request and a rate limit of"
            f" {sizes.rate:g} requests/s (bursts of {sizes.burst}); 429s carry a whole-second"
            " Retry-After. Every page is fetched once beforehand (the fake builds records on"
            ' first use). Each mode runs in a fresh child process; "RSS before" is its'
            ' peak RSS (VmHWM) once the client is built, "peak RSS" at the end of the read. Records'
            " are counted and dropped, as a streaming export would. The first row runs without"
            " the rate limit, for reference."
        ),
    )
    section.tables.append(
        table(
            [
                "mode",
                "pages in flight",
                "records",
                "records/s",
                "seconds",
                "pages served",
                "429 answers",
                "RSS before MB",
                "peak RSS MB",
                "complete",
            ],
            rows,
        )
    )
    capacity = sizes.rate * sizes.page_size
    fast_enough = speed["adaptive"] >= speed["sequential pages"]
    section.data["adaptive_ok"] = adaptive.complete and fast_enough
    section.data["adaptive_summary"] = (
        f"{speed['adaptive']:,.0f} records/s with {adaptive.rate_limited:,} 429s, against"
        f" {speed['sequential pages']:,.0f} for sequential pages and a limit of"
        f" {capacity:,.0f} records/s ({sizes.rate:g} pages/s)"
    )
    section.notes.append(
        f"The rate limit allows {capacity:,.0f} records/s ({sizes.rate:g} requests/s x"
        f" {sizes.page_size} records). Adaptive reached {speed['adaptive'] / capacity:.0%} of"
        f" it, sequential pages {speed['sequential pages'] / capacity:.0%}."
    )
    return section
