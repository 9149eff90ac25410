"""Scenario 6: one rate budget per organisation (issue 15), inside ``python -m benchmarks``.

Runs :mod:`benchmarks.governor` (8 worker processes against a limit of R requests/s, with and
without the shared Redis governor, and one process alone) on the suite's fake server and
writes its table and chart; ``python -m benchmarks.governor`` runs the same on its own.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._fake_process import FakeServerProcess
from ..governor import MODES, PAGE_SIZE, _parse, chart, run_mode, summarise
from ._common import Section, table

TITLE = "6. One rate budget per organisation (issue 15)"
LABELS = {
    "shared": "shared ({n} processes, Redis)",
    "alone": "alone ({n} processes, no sharing)",
    "single": "single process",
}


@dataclass(frozen=True)
class Sizes:
    rate: float = 20.0
    burst: int = 5
    processes: int = 8
    pages: int = 150


QUICK = Sizes(processes=2, pages=10)


async def run(fake: FakeServerProcess, sizes: Sizes, charts: Path) -> Section:
    args = _parse(
        [
            f"--rate={sizes.rate:g}",
            f"--burst={sizes.burst}",
            f"--processes={sizes.processes}",
            f"--pages={sizes.pages}",
        ]
    )
    before = os.getloadavg()[0]
    series: dict[str, list[tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-governor-") as scratch:
        for mode in MODES:
            series[mode] = await run_mode(fake, args, mode, Path(scratch))
    after = os.getloadavg()[0]
    rows, figures = [], {}
    for mode, events in series.items():
        ratio, steady, share, total = summarise(events, sizes.rate)
        figures[mode] = (ratio, share)
        label = LABELS[mode].format(n=sizes.processes)
        rows.append((label, total, f"{ratio:.2f}", f"{steady:.2f}", f"{share:.2%}"))
    path = charts / "governor.png"
    chart(path, {mode: series[mode] for mode in ("shared", "alone")}, sizes.rate)
    headers = ("run", "requests", "throughput / R", "from the first 429 on", "429 share")
    section = Section(TITLE, _intro(sizes), tables=[table(headers, rows)], charts=[path])
    section.notes = _verdicts(figures, before, after)
    section.data = {"figures": figures, "processes": sizes.processes}
    return section


def _intro(sizes: Sizes) -> str:
    return (
        f"One fake limits the organisation to R = {sizes.rate:g} requests/s (burst"
        f" {sizes.burst}); {sizes.processes} worker processes start together (once all have"
        f" started up) and each reads {sizes.pages} pages of {PAGE_SIZE} `actions` with"
        " `iterate(concurrency=4)`. `shared`: every worker's governor uses one"
        " `RedisRateBudget`; `alone`: each has only its per-process governor; `single`: one"
        f" process reads all {sizes.pages * sizes.processes:,} pages. Throughput is successful"
        " requests per second from the common start to the last success, against R."
        " Produced by `python -m benchmarks --only 6` (or the whole suite); standalone:"
        " `python -m benchmarks.governor --rate 20 --pages 150 --chart"
        " benchmarks/charts/governor.png`."
    )


def _verdicts(figures: dict[str, tuple[float, float]], before: float, after: float) -> list[str]:
    shared_ratio, shared_share = figures["shared"]
    single_ratio, _ = figures["single"]
    alone_ratio, alone_share = figures["alone"]
    shared_ok = shared_ratio >= 0.90 and shared_share < 0.02
    return [
        f"{'**PASS**' if shared_ok else '**FAIL**'} shared: {shared_ratio:.2f} R with"
        f" {shared_share:.2%} 429s (target: >= 0.90 R with < 2%).",
        f"{'**PASS**' if single_ratio >= 0.90 else '**FAIL**'} single process:"
        f" {single_ratio:.2f} R (target: >= 0.90 R).",
        f"Without sharing: {alone_ratio:.2f} R with {alone_share:.2%} 429s. Each process"
        " learns its own share of the limit and the others' overshoots cost it 429s; when the"
        " first ones finish, the rest regain the freed budget only after 30 s without a 429"
        " (the tail in the chart).",
        f"Load average (1 min) {before:.1f} before the scenario, {after:.1f} after.",
    ]
