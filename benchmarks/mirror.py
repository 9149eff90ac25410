"""``actionstep-async sync`` into SQLite and PostgreSQL at 100,000 actions, beside the export.

One fake server process; every run is the real command in its own child process, reaped with
``os.wait4`` for its own peak RSS (see ``export_scale``). In the same run: the JSON Lines export
of the same data (the reference rate), the initial sync into a fresh SQLite file and a fresh
PostgreSQL database, then 1,000 changes and an incremental sync of each (its cost must follow
the changes, not the table: records served and requests are read from the fake's counters),
and finally the export and the SQLite load again under a rate limit of ``--rate`` requests/s.

Run: ``python -m benchmarks.mirror [--records 100000] [--rate 50]``
(PostgreSQL: 127.0.0.1:5432, user postgres, trust auth; a scratch database is made and dropped.)
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
import uuid
from pathlib import Path

import attrs
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from actionstep_async import (
    AsyncResourceClient,
    FileTokenStore,
    MemoryTokenStore,
    OAuthClient,
    TokenManager,
)

from ._fake_process import FakeServerProcess

KEY = "bench"
PAGE = 200
POSTGRES_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@attrs.frozen
class Run:
    label: str
    records: int
    elapsed: float
    wall: float
    cpu: float
    peak_rss_mib: float
    served: int
    requests: int


def _run_and_reap(command: list[str], env: dict[str, str]) -> tuple[int, float, float, float, str]:
    """Exit status, wall seconds, CPU seconds, peak RSS in MiB and stdout of one child."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors)
        assert child.stdout is not None
        stdout = child.stdout.read()
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read().decode(errors="replace"))
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    return child.returncode, wall, cpu, usage.ru_maxrss / 1024, stdout.decode()


async def _admin(statement: str) -> None:
    engine = create_async_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _env(fake: FakeServerProcess, workdir: Path) -> dict[str, str]:
    config = workdir / "empty.toml"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONSTEP_")}
    env.update(
        ACTIONSTEP_CLIENT_ID="test-client-id",
        ACTIONSTEP_CLIENT_SECRET="test-client-secret",
        ACTIONSTEP_REDIRECT_URI="http://127.0.0.1/callback",
        ACTIONSTEP_ENVIRONMENT=fake.base_url,
        ACTIONSTEP_TOKEN_STORE=str(workdir / "tokens"),
        ACTIONSTEP_TOKEN_KEY=KEY,
        ACTIONSTEP_CONFIG=str(workdir / "empty.toml"),
        COLUMNS="160",
    )
    return env


def _seconds(stdout: str, pattern: str) -> float:
    match = re.search(pattern, stdout)
    if match is None:
        raise SystemExit(f"cannot read the elapsed time from:\n{stdout}")
    return float(match.group(1))


async def _command(
    fake: FakeServerProcess, env: dict[str, str], label: str, records: int, *args: str
) -> Run:
    before = await fake.counters()
    command = [sys.executable, "-m", "actionstep_async", *args, "--no-progress"]
    status, wall, cpu, rss, stdout = await asyncio.to_thread(_run_and_reap, command, env)
    if status != 0:
        raise SystemExit(f"{label} failed with status {status}:\n{stdout}")
    if args[0] == "export":
        elapsed = _seconds(stdout, r"total.*?([\d.]+)s")
    else:
        elapsed = _seconds(stdout, r" in ([\d.]+)s")
    after = await fake.counters()
    served = _total(after["records_served"]) - _total(before["records_served"])
    requests = _total(after["requests"], "GET actions") - _total(before["requests"], "GET actions")
    return Run(label, records, elapsed, wall, cpu, rss, served, requests)


def _total(counts: dict[str, int], prefix: str = "") -> int:
    return sum(n for key, n in counts.items() if key.startswith(prefix))


async def _change(fake: FakeServerProcess, count: int) -> None:
    """``count`` updates through the API, spread over the table."""
    oauth = OAuthClient(
        client_id="test-client-id",
        client_secret="test-client-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=fake.environment,
    )
    manager = TokenManager(oauth, MemoryTokenStore())
    await manager.save(KEY, await fake.mint_token())
    async with AsyncResourceClient(manager, KEY, concurrency=8) as client:
        step = max(1, fake.records // count)
        await asyncio.gather(
            *(
                client.update("actions", 1 + i * step, {"name": f"Changed {i}"})
                for i in range(count)
            )
        )
    await manager.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s of the limited runs")
    args = parser.parse_args()
    n = args.records
    database = f"mirror_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{database}"')
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    runs: list[Run] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="mirror-bench-") as tmp:
            work = Path(tmp)
            extra = ("--resources", "actions")
            async with FakeServerProcess(records=n, extra_args=extra) as fake:
                assert await FileTokenStore(work / "tokens").compare_and_set(
                    KEY, await fake.mint_token(expires_in=7200), expected_version=0
                )
                env = _env(fake, work)
                sqlite_url = f"sqlite:///{work / 'actionstep.db'}"
                sync = ("sync", "actions", "--no-scan", "--to")
                # The first export also warms the fake's record cache for everyone after it.
                await _command(
                    fake, env, "warm-up", n, "export", "actions", "--out", str(work / "w")
                )
                runs.append(
                    await _command(
                        fake,
                        env,
                        "JSON Lines export",
                        n,
                        "export",
                        "actions",
                        "--out",
                        str(work / "e"),
                    )
                )
                runs.append(
                    await _command(fake, env, "sync -> SQLite, initial", n, *sync, sqlite_url)
                )
                runs.append(
                    await _command(fake, env, "sync -> PostgreSQL, initial", n, *sync, pg_url)
                )
                await _change(fake, args.changes)
                changed = args.changes
                runs.append(
                    await _command(
                        fake,
                        env,
                        f"sync -> SQLite, after {changed:,} changes",
                        changed,
                        *sync,
                        sqlite_url,
                    )
                )
                runs.append(
                    await _command(
                        fake,
                        env,
                        f"sync -> PostgreSQL, after {changed:,} changes",
                        changed,
                        *sync,
                        pg_url,
                    )
                )
                runs.append(
                    await _command(
                        fake,
                        env,
                        "sync -> SQLite, nothing changed (--overlap 0)",
                        0,
                        *sync,
                        sqlite_url,
                        "--overlap",
                        "0",
                    )
                )
                await fake.control("POST", "rate_limit", {"rate": args.rate, "burst": 10})
                limited = f" (limit {args.rate:g} req/s)"
                runs.append(
                    await _command(
                        fake,
                        env,
                        "JSON Lines export" + limited,
                        n,
                        "export",
                        "actions",
                        "--out",
                        str(work / "l"),
                    )
                )
                fresh = f"sqlite:///{work / 'limited.db'}"
                runs.append(
                    await _command(fake, env, "sync -> SQLite, initial" + limited, n, *sync, fresh)
                )
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _report(runs, n, args.rate, time.perf_counter() - started)


def _report(runs: list[Run], n: int, rate: float, wall: float) -> None:
    export = runs[0]
    print(
        "| run | records | seconds | records/s | vs export | process s | process CPU s"
        " | records served | GET requests | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        per_second = run.records / run.elapsed if run.records and run.elapsed else 0.0
        base = export if "limit" not in run.label else runs[-2]
        ratio = per_second / (base.records / base.elapsed) if per_second else 0.0
        print(
            f"| {run.label} | {run.records:,} | {run.elapsed:.1f} | {per_second:,.0f} |"
            f" {ratio:.2f} | {run.wall:.1f} | {run.cpu:.1f} | {run.served:,} | {run.requests:,} |"
            f" {run.peak_rss_mib:.1f} |"
        )
    ceiling = rate * PAGE
    limited = runs[-1]
    print(
        f"\nThe limit allows {ceiling:,.0f} records/s ({rate:g} requests/s x {PAGE} records);"
        f" the limited SQLite sync reached {limited.records / limited.elapsed / ceiling:.0%} of it."
    )
    print(f"\n_Benchmark wall time: {wall:.0f} s; {n:,} actions._")


if __name__ == "__main__":
    asyncio.run(main())
