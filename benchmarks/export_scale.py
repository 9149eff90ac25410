"""``actionstep-async export`` at 10,000 and 100,000 records: throughput and peak memory.

The fake server runs in its own process (``FakeServerProcess``); the export is the real command
in another process, reaped with ``os.wait4`` so its own peak RSS is read exactly
(``RUSAGE_CHILDREN`` would also count the fake server). Peak RSS must not grow with the record
count: the export streams pages to disk and never holds the result set.

Run: ``python -m benchmarks.export_scale [--counts 10000 100000] [--concurrency 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
from rich.console import Console
from rich.table import Table

from actionstep_async import FileTokenStore

from ._fake_process import FakeServerProcess

KEY = "bench"


@attrs.frozen
class Run:
    label: str
    records: int
    wall: float
    export_elapsed: float | None
    peak_rss_mib: float
    lines: int


def _run_and_reap(command: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Exit status, wall seconds, peak RSS in MiB and stdout of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors)
        assert child.stdout is not None
        stdout = child.stdout.read()  # until the pipe closes; Popen must not reap the child
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read().decode(errors="replace"))
    return child.returncode, wall, usage.ru_maxrss / 1024, stdout.decode()


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _export_elapsed(summary: str) -> float | None:
    for line in summary.splitlines():
        if "total" in line:
            match = re.search(r"([\d.]+)s", line)
            if match:
                return float(match.group(1))
    return None


async def _one(count: int, concurrency: int, workdir: Path) -> Run:
    extra = ("--resources", "actions")
    async with FakeServerProcess(records=count, extra_args=extra) as fake:
        token = await fake.mint_token()
        tokens = workdir / f"tokens-{count}"
        assert await FileTokenStore(tokens).compare_and_set(KEY, token, expected_version=0)
        config = workdir / "empty.toml"
        config.touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONSTEP_")}
        env.update(
            ACTIONSTEP_CLIENT_ID="test-client-id",
            ACTIONSTEP_CLIENT_SECRET="test-client-secret",
            ACTIONSTEP_REDIRECT_URI="http://127.0.0.1/callback",
            ACTIONSTEP_ENVIRONMENT=fake.base_url,
            ACTIONSTEP_TOKEN_STORE=str(tokens),
            ACTIONSTEP_TOKEN_KEY=KEY,
            ACTIONSTEP_CONFIG=str(config),
            COLUMNS="120",
        )
        out = workdir / f"out-{count}"
        command = [
            sys.executable,
            "-m",
            "actionstep_async",
            "export",
            "actions",
            "--out",
            str(out),
            "--concurrency",
            str(concurrency),
            "--no-progress",
        ]
        status, wall, rss, stdout = await asyncio.to_thread(_run_and_reap, command, env)
        if status != 0:
            raise SystemExit(f"export of {count} records failed with status {status}")
    lines = await asyncio.to_thread(_count_lines, out / "actions.jsonl")
    return Run(f"export {count:,}", count, wall, _export_elapsed(stdout), rss, lines)


def _baseline() -> Run:
    """The same interpreter and imports with no work: what the RSS figures sit on."""
    status, wall, rss, _ = _run_and_reap(
        [sys.executable, "-m", "actionstep_async", "--help"], dict(os.environ)
    )
    assert status == 0
    return Run("baseline (--help)", 0, wall, None, rss, 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    runs = [_baseline()]
    with tempfile.TemporaryDirectory(prefix="export-scale-") as tmp:
        for count in args.counts:
            runs.append(await _one(count, args.concurrency, Path(tmp)))

    table = Table(title=f"actionstep-async export, concurrency {args.concurrency}")
    for name in ("run", "records", "wall s", "records/s (wall)", "records/s (export)"):
        table.add_column(name, justify="right")
    table.add_column("peak RSS MiB", justify="right")
    table.add_column("lines ok", justify="center")
    for run in runs:
        export_rate = (
            f"{run.records / run.export_elapsed:,.0f}" if run.export_elapsed and run.records else ""
        )
        table.add_row(
            run.label,
            f"{run.records:,}",
            f"{run.wall:.2f}",
            f"{run.records / run.wall:,.0f}" if run.records else "",
            export_rate,
            f"{run.peak_rss_mib:.1f}",
            "" if not run.records else ("✓" if run.lines == run.records else "✗"),
        )
    console = Console(width=max(Console().width, 110))
    console.print(table)
    exports = [run for run in runs if run.records]
    if len(exports) >= 2:
        small, large = exports[0], exports[-1]
        growth = large.peak_rss_mib / small.peak_rss_mib
        verdict = "flat" if growth < 1.15 else "GROWS"
        console.print(
            f"peak RSS {small.records:,} -> {large.records:,} records: x{growth:.2f} ({verdict})"
        )


if __name__ == "__main__":
    asyncio.run(main())
