"""What every scenario shares: the fake's counters, request drivers, statistics and tables."""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._fake_process import FakeServerProcess
from ..peers import Peer

__all__ = [
    "Fired",
    "Section",
    "background_cores",
    "cpu_snapshot",
    "fire_all_at_once",
    "fire_bounded",
    "fmt",
    "median",
    "mint",
    "percentile",
    "table",
    "token_calls",
]


@dataclass
class Section:
    """One scenario's part of RESULTS.md: a heading, prose, markdown tables and charts."""

    title: str
    intro: str
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the scenario could not run to the end
    seconds: float = 0.0
    background: float = 0.0  # cores used by other processes meanwhile (a noise indicator)


@dataclass
class Fired:
    """The outcome of a batch of requests."""

    statuses: Counter[int]
    errors: Counter[str]
    latencies: list[float]
    wall: float
    cpu: float
    finished: list[float] = field(default_factory=list)
    """``perf_counter`` at each request's end; minus ``began``: its time since the batch began."""
    began: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failed(self) -> int:
        return self.requests - self.statuses.get(200, 0)


async def _timed_get(peer: Peer, action_id: int, fired: Fired) -> None:
    started = time.perf_counter()
    try:
        status = await peer.get(action_id)
    except Exception as exc:
        fired.errors[type(exc).__name__] += 1
    else:
        fired.statuses[status] += 1
    ended = time.perf_counter()
    fired.latencies.append(ended - started)
    fired.finished.append(ended)


def _ids(count: int, records: int) -> Iterator[int]:
    return (1 + (i * 7919) % records for i in range(count))


async def fire_bounded(peer: Peer, count: int, concurrency: int, *, records: int) -> Fired:
    """``count`` GETs through ``concurrency`` workers; CPU is this process's ``process_time``."""
    fired = Fired(Counter(), Counter(), [], 0.0, 0.0)
    ids = _ids(count, records)

    async def worker() -> None:
        for action_id in ids:
            await _timed_get(peer, action_id, fired)

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    fired.wall = time.perf_counter() - wall
    fired.cpu = time.process_time() - cpu
    return fired


async def fire_all_at_once(peer: Peer, count: int, *, records: int) -> Fired:
    """``count`` GETs started together (a storm); latency is per request, from its own start."""
    fired = Fired(Counter(), Counter(), [], 0.0, 0.0)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    fired.began = wall
    await asyncio.gather(*(_timed_get(peer, i, fired) for i in _ids(count, records)))
    fired.wall = time.perf_counter() - wall
    fired.cpu = time.process_time() - cpu
    return fired


def cpu_snapshot(server_pid: int) -> tuple[float, float]:
    """(CPU seconds used by the whole machine, by this process + its children + the fake)."""
    import psutil  # type: ignore[import-untyped,unused-ignore]

    total = psutil.cpu_times()
    busy = total.user + total.nice + total.system
    busy += getattr(total, "irq", 0.0) + getattr(total, "softirq", 0.0)
    own = psutil.Process().cpu_times()
    server = psutil.Process(server_pid).cpu_times()
    ours = own.user + own.system + own.children_user + own.children_system
    return busy, ours + server.user + server.system


def background_cores(before: tuple[float, float], after: tuple[float, float], wall: float) -> float:
    """Average cores used by processes outside the benchmark between two snapshots."""
    busy = after[0] - before[0]
    ours = after[1] - before[1]
    return max(0.0, busy - ours) / wall if wall > 0 else 0.0


async def token_calls(fake: FakeServerProcess) -> tuple[int, int]:
    """(token-endpoint calls, spent refresh-token reuses) since the last reset."""
    counters = await fake.counters()
    return int(counters["token_calls"]), int(counters["spent_token_reuses"])


async def mint(fake: FakeServerProcess, *, expired: bool = False) -> dict[str, Any]:
    """A fresh token family from the fake. ``expired``: already expired, here and at the server.

    Expired tokens get ``expires_at`` an hour back (so every library's leeway agrees) and the
    server is told to expire the access token too, so a request that used it would get 401.
    """
    token: dict[str, Any] = await fake.control("POST", "token", {"expires_in": 3600})
    if expired:
        await fake.control("POST", "expire", {"token": token["access_token"]})
        token["issued_at"] -= 7200
        token["expires_at"] = token["issued_at"] + 3600
    return token


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, text: int = 1) -> str:
    """A markdown table: the first ``text`` columns left-aligned, the figures right-aligned."""
    spec = ["---"] * text + ["---:"] * (len(headers) - text)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(spec) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
