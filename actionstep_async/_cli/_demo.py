"""``demo``: the whole product in one command, with no account and no configuration.

It starts FakeActionstep in this process, authorizes against it exactly as ``login`` does (the
consent page is followed by an HTTP client instead of a browser), then runs the real ``export``
code with injected 429s and access tokens that the server expires mid-run, and finally checks
the files record by record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import aiohttp
from rich.console import Console
from rich.table import Table

from .._client import AsyncResourceClient
from .._manager import TokenManager
from .._oauth import AuthorizationRequest, OAuthClient
from ..stores import FileTokenStore
from ..testing import FakeActionstep, FaultRule
from ._commands import EXPORT_RETRY
from ._exits import FAILED, OK
from ._export import ExportOptions, ResourceResult, export_resources
from ._login import LoopbackListener, authorize
from ._output import ExportProgress, err_console, out_console, print_summary, region_host
from ._retries import reporting_retries
from ._stats import RequestStats

__all__ = ["demo"]

KEY: Final = "demo"
SCOPES: Final = ("actions", "participants")


class _ExpiringReporter:
    """Forwards progress and, half-way through, has the server expire the current access token.

    One expiry only: a second one within the manager's reactive cooldown would be answered with
    the 401 instead of another refresh (that cooldown is what stops refresh storms).
    """

    def __init__(
        self, inner: ExportProgress, fake: FakeActionstep, manager: TokenManager, *, total: int
    ) -> None:
        self.inner = inner
        self.fake = fake
        self.manager = manager
        self.expire_at = total // 2
        self.seen = 0
        self.expired = 0
        self._task: asyncio.Task[None] | None = None

    def begin(self, resource: str, *, total: int, done: int) -> None:
        self.inner.begin(resource, total=total, done=done)

    def finish(self, resource: str) -> None:
        self.inner.finish(resource)

    def advance(self, resource: str, records: int) -> None:
        self.inner.advance(resource, records)
        self.seen += records
        if self._task is None and self.seen >= self.expire_at:
            self._task = asyncio.get_running_loop().create_task(self._expire())

    async def _expire(self) -> None:
        token = await self.manager.token(KEY)
        if self.fake.expire_access_token(token.access_token):
            self.expired += 1


def _check_file(path: Path, expected: int) -> tuple[int, int, bool]:
    """Lines, distinct ids, and whether ids come in ascending (page) order."""
    ids: list[int] = []
    with open(path, "rb") as handle:
        for line in handle:
            ids.append(int(json.loads(line)["id"]))
    ordered = all(a < b for a, b in itertools.pairwise(ids))
    return len(ids), len(set(ids)), ordered and len(ids) == expected


def _checks_table(
    results: Sequence[ResourceResult],
    seeded: dict[str, int],
    *,
    expiries: int,
    refreshes: int,
    refresh_calls: int,
    rate_limited: int,
) -> tuple[Table, bool]:
    table = Table(title="Demo checks", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("", justify="center")
    passed = True
    for result in results:
        lines, distinct, ordered = _check_file(result.path, seeded[result.resource])
        ok = lines == distinct == seeded[result.resource] and ordered
        passed &= ok
        table.add_row(
            f"{result.resource}: every record exported once, in order",
            f"{lines:,} lines, {distinct:,} distinct ids, {seeded[result.resource]:,} seeded",
            "✓" if ok else "✗",
        )
    ok = expiries == refreshes == refresh_calls and expiries > 0
    passed &= ok
    table.add_row(
        "exactly one refresh per expiry",
        f"expiries {expiries}, refreshes {refreshes}, refresh grants at the server {refresh_calls}",
        "✓" if ok else "✗",
    )
    table.add_row("429s answered and retried", f"{rate_limited:,}", "✓")
    return table, passed


async def _authorize(
    fake: FakeActionstep, oauth: OAuthClient, listener: LoopbackListener, console: Console
) -> str:
    async with aiohttp.ClientSession() as browser:

        async def follow(request: AuthorizationRequest) -> None:
            console.print(f"  consent page: {request.url.split('?')[0]}", highlight=False)
            # What a browser would do: the fake approves and redirects to our listener.
            async with browser.get(request.url, allow_redirects=True) as response:
                response.raise_for_status()

        async with asyncio.timeout(30):
            return await authorize(oauth, listener, SCOPES, show=follow, open_browser=False)


@contextlib.contextmanager
def _export_dir(args: argparse.Namespace, console: Console) -> Iterator[Path]:
    """``--out`` as given, or a temporary directory removed afterwards unless ``--keep``."""
    if args.out:
        yield Path(args.out)
        return
    path = Path(tempfile.mkdtemp(prefix="actionstep-demo-"))
    try:
        yield path
    finally:
        if args.keep:
            console.print(f"exported files kept in {path}", highlight=False)
        else:
            shutil.rmtree(path, ignore_errors=True)
            console.print(
                "exported files removed (--keep or --out DIR keeps them)", highlight=False
            )


async def _connect(
    fake: FakeActionstep, listener: LoopbackListener, token_dir: str, out: Console
) -> TokenManager:
    """Step 2: the authorization-code flow, headless; returns a manager holding the token."""
    oauth = OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=listener.redirect_uri,
        environment=fake.environment,
    )
    out.print("2. Authorization-code flow, headless:", highlight=False)
    code = await _authorize(fake, oauth, listener, out)
    token = await oauth.exchange_code(code, scopes=SCOPES)
    manager = TokenManager(oauth, FileTokenStore(token_dir))
    await manager.save(KEY, token)
    out.print(
        f"  redirect received on {listener.redirect_uri}, state checked, code"
        f" exchanged: organisation {token.orgkey}, region host {region_host(token)}",
        highlight=False,
    )
    return manager


async def _export(
    fake: FakeActionstep,
    manager: TokenManager,
    args: argparse.Namespace,
    out_dir: Path,
    seeded: dict[str, int],
) -> tuple[list[ResourceResult], RequestStats, int]:
    """Step 3: the real export code under 429s and one mid-run expiry; returns its results,
    the request counts and how many tokens the server expired."""
    err = err_console()
    stats = RequestStats()
    async with aiohttp.ClientSession(trace_configs=[stats.trace_config()]) as session:
        client = AsyncResourceClient(
            manager,
            KEY,
            session=session,
            concurrency=args.concurrency,
            adaptive=True,
            retry=EXPORT_RETRY,
        )
        with (
            ExportProgress(err, enabled=not args.no_progress) as progress,
            reporting_retries(lambda text: err.print(text, markup=False, highlight=False)),
        ):
            reporter = _ExpiringReporter(progress, fake, manager, total=sum(seeded.values()))
            results = await export_resources(
                client,
                list(seeded),
                ExportOptions(out=out_dir, concurrency=args.concurrency),
                reporter,
                warn=lambda text: err.print(f"warning: {text}", markup=False),
            )
        await client.aclose()
    return list(results), stats, reporter.expired


async def demo(args: argparse.Namespace) -> int:
    out = out_console()
    seeded = {"actions": args.actions, "participants": args.participants}
    started = time.monotonic()
    with (
        _export_dir(args, out) as out_dir,
        tempfile.TemporaryDirectory(prefix="actionstep-demo-tokens-") as token_dir,
    ):
        async with LoopbackListener("http://127.0.0.1:0/callback") as listener:
            fake = FakeActionstep(seeded, redirect_uri=listener.redirect_uri, expires_in=3600)
            async with fake:
                out.print(
                    f"1. FakeActionstep at {fake.base_url}: {args.actions:,} actions,"
                    f" {args.participants:,} participants",
                    highlight=False,
                )
                manager = await _connect(fake, listener, token_dir, out)
                fake.add_fault(
                    FaultRule(kind="rate_limit", probability=args.rate_limit_share, retry_after=0.5)
                )
                out.print(
                    f"3. Export to {out_dir}: {args.rate_limit_share:.0%} of requests answered"
                    " 429, and the server expires the access token half-way through",
                    highlight=False,
                )
                try:
                    results, stats, expired = await _export(fake, manager, args, out_dir, seeded)
                finally:
                    await manager.aclose()
                refresh_calls = fake.counters.token_calls_by_grant["refresh_token"]
        elapsed = time.monotonic() - started
        kept = bool(args.out or args.keep)
        print_summary(
            out, results, stats, refreshes=manager.refresh_count, elapsed=elapsed, show_paths=kept
        )
        table, passed = _checks_table(
            results,
            seeded,
            expiries=expired,
            refreshes=manager.refresh_count,
            refresh_calls=refresh_calls,
            rate_limited=stats.total().rate_limited,
        )
        out.print(table)
    return OK if passed else FAILED
