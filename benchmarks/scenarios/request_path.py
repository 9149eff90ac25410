"""Scenario 1: the request path. CPU per request and requests/s with a fresh token.

Every peer gets the same valid token and fires ``requests`` GETs of single actions through
``concurrency`` workers. Repetitions are interleaved: in every round each peer runs right
next to a bare-aiohttp run (alternating which goes first, the peer order rotating), so load
from other processes that comes and goes hits both sides of each ratio. The headline ratio is
the median over rounds of those paired CPU ratios; the other figures are medians of all runs.
A second sweep measures throughput at several concurrency levels for the chart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .._fake_process import FakeServerProcess
from ..peers import Peer, Setup, open_peer
from . import _charts
from ._common import Section, fire_bounded, fmt, median, mint, table

PEERS = ("bare-aiohttp", "authlib", "aiohttp-oauth2-client", "ours-plain", "ours-typed")
SWEEP_PEERS = ("bare-aiohttp", "authlib", "aiohttp-oauth2-client", "ours-plain")
BASELINE = "bare-aiohttp"
RECORDS = 1000  # ids cycle over the first 1,000 actions


@dataclass(frozen=True)
class Sizes:
    requests: int = 5000
    concurrency: int = 64
    rounds: int = 7
    warmup: int = 500
    levels: tuple[int, ...] = (8, 16, 32, 64)
    level_requests: int = 2000
    level_rounds: int = 3


QUICK = Sizes(requests=500, rounds=2, warmup=100, level_requests=300, level_rounds=1)


def _rotated(names: tuple[str, ...], shift: int) -> list[str]:
    shift %= len(names)
    return list(names[shift:] + names[:shift])


async def run(fake: FakeServerProcess, sizes: Sizes, charts: Path) -> Section:
    token = await mint(fake)
    setup = Setup(fake.base_url, token=token, concurrency=sizes.concurrency)
    peers: dict[str, Peer] = {}
    try:
        for name in PEERS:
            peers[name] = await open_peer(name, setup)
            await fire_bounded(peers[name], sizes.warmup, sizes.concurrency, records=RECORDS)
        section = await _headline(peers, sizes)
        sweep = await _sweep(peers, sizes)
    finally:
        for peer in peers.values():
            await peer.aclose()
    path = charts / "throughput_vs_concurrency.png"
    _charts.throughput(path, sizes.levels, sweep["rps"], sweep["cpu"])
    section.charts.append(path)
    section.tables.append(_sweep_table(sizes.levels, sweep["rps"]))
    section.data["sweep"] = sweep
    return section


async def _headline(peers: dict[str, Peer], sizes: Sizes) -> Section:
    cpu: dict[str, list[float]] = defaultdict(list)
    rps: dict[str, list[float]] = defaultdict(list)
    pair_ratios: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)

    async def measure(name: str) -> float:
        fired = await fire_bounded(peers[name], sizes.requests, sizes.concurrency, records=RECORDS)
        cpu[name].append(fired.cpu / fired.requests * 1e6)
        rps[name].append(fired.requests / fired.wall)
        failed[name] += fired.failed
        return cpu[name][-1]

    others = tuple(name for name in PEERS if name != BASELINE)
    for round_ in range(sizes.rounds):
        # Each peer runs right next to a baseline run (alternating which goes first), so load
        # from other processes that comes and goes hits both sides of every ratio alike.
        for index, name in enumerate(_rotated(others, round_)):
            if (round_ + index) % 2:
                mine, base = await measure(name), await measure(BASELINE)
            else:
                base, mine = await measure(BASELINE), await measure(name)
            pair_ratios[name].append(mine / base)
    pair_ratios[BASELINE] = [1.0]
    rows = []
    ratios: dict[str, float] = {}
    for name in PEERS:
        ratios[name] = median(pair_ratios[name])
        spread = f"{min(pair_ratios[name]):.2f}-{max(pair_ratios[name]):.2f}"
        rows.append(
            [
                name,
                fmt(median(cpu[name])),
                f"{ratios[name]:.2f}x",
                spread if name != BASELINE else "",
                fmt(median(rps[name])),
                f"{median(rps[name]) / median(rps[BASELINE]):.2f}x",
                str(failed[name]),
            ]
        )
    section = Section(
        title="1. Request path",
        intro=(
            f"{sizes.requests:,} GETs of `/api/rest/actions/{{id}}` at {sizes.concurrency}"
            f" concurrent, fresh token, {sizes.rounds} interleaved rounds after a"
            f" {sizes.warmup}-request warm-up per client. CPU is the client process's"
            " `time.process_time()` per request (the fake runs in another process). In every"
            " round each client runs right next to a bare-aiohttp run; the CPU ratio is the"
            " median over rounds of those paired ratios, the other figures are medians of all"
            " runs."
        ),
    )
    section.tables.append(
        table(
            [
                "client",
                "CPU µs/request",
                "CPU vs bare",
                "range over rounds",
                "requests/s",
                "throughput vs bare",
                "failed",
            ],
            rows,
        )
    )
    section.data.update(
        cpu_us=dict(cpu), rps=dict(rps), ratio=ratios, failed=dict(failed), sizes=sizes
    )
    return section


async def _sweep(peers: dict[str, Peer], sizes: Sizes) -> dict[str, dict[str, list[float]]]:
    rps: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    cpu: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for round_ in range(sizes.level_rounds):
        for level in sizes.levels:
            for name in _rotated(SWEEP_PEERS, round_ + level):
                fired = await fire_bounded(
                    peers[name], sizes.level_requests, level, records=RECORDS
                )
                rps[name][level].append(fired.requests / fired.wall)
                cpu[name][level].append(fired.cpu / fired.requests * 1e6)
    return {
        "rps": {n: [median(rps[n][lv]) for lv in sizes.levels] for n in SWEEP_PEERS},
        "cpu": {n: [median(cpu[n][lv]) for lv in sizes.levels] for n in SWEEP_PEERS},
    }


def _sweep_table(levels: tuple[int, ...], rps: dict[str, list[float]]) -> str:
    headers = ["client", *(f"{level} concurrent (req/s)" for level in levels)]
    rows = [[name, *(fmt(value) for value in values)] for name, values in rps.items()]
    return table(headers, rows)
