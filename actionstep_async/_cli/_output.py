"""Everything the command shows: rich progress bars, tables and JSON.

Progress and messages go to stderr so that stdout stays clean for JSON and summaries that scripts
read. Nothing here ever receives an access token, refresh token or client secret: tokens are
shown through :func:`token_table`, which reads only their non-secret fields.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .._client_stats import ClientStats
from .._tokens import Token
from ._export import ResourceResult
from ._stats import RequestStats

__all__ = [
    "ExportProgress",
    "err_console",
    "out_console",
    "print_summary",
    "summary_table",
    "token_table",
    "write_json",
]


def out_console() -> Console:
    # soft_wrap: long JSON-ish lines are never broken by rich.
    return Console(soft_wrap=True)


def err_console() -> Console:
    return Console(stderr=True, soft_wrap=True)


def region_host(token: Token) -> str:
    """The data host a token talks to (it names the organisation's region)."""
    return urlsplit(token.api_endpoint).netloc


def _when(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    remaining = timestamp - time.time()
    if remaining <= 0:
        return f"{moment} (expired {-remaining:.0f}s ago)"
    return f"{moment} (in {remaining:.0f}s)"


def token_table(token: Token, *, key: str, title: str = "Token") -> Table:
    """The non-secret facts about a token: never its access or refresh token."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("key", key)
    table.add_row("organisation", token.orgkey or "(not sent)")
    table.add_row("api_endpoint", token.api_endpoint)
    table.add_row("region host", region_host(token))
    table.add_row("scopes", " ".join(token.scopes) or "(not sent)")
    table.add_row("expires", _when(token.expires_at))
    table.add_row("issued", _when(token.issued_at).split(" (")[0])
    table.add_row("fingerprint", token.fingerprint)
    table.add_row("store version", str(token.version))
    return table


class _RateColumn(ProgressColumn):
    """Records per second, from rich's own moving speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("  -- rec/s" if speed is None else f"{speed:>7,.0f} rec/s", style="cyan")


class ExportProgress:
    """One live progress bar per resource (records, rate, ETA), drawn on stderr."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            speed_estimate_period=10.0,
        )
        self._tasks: dict[str, TaskID] = {}
        self.records: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def __enter__(self) -> ExportProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def begin(self, resource: str, *, total: int, done: int) -> None:
        self.records[resource] = done
        self.totals[resource] = total
        task = self._tasks.get(resource)
        if task is None:
            self._tasks[resource] = self._progress.add_task(
                resource, total=max(total, 1), completed=done
            )
        else:
            self._progress.update(task, total=max(total, 1), completed=done)

    def advance(self, resource: str, records: int) -> None:
        self.records[resource] = self.records.get(resource, 0) + records
        task = self._tasks.get(resource)
        if task is not None:
            self._progress.update(task, advance=records)

    def finish(self, resource: str) -> None:
        task = self._tasks.get(resource)
        if task is not None:
            # A result set that shrank while we read it must still end at 100%.
            self._progress.update(task, total=self.records[resource] or 1)
            self._progress.update(task, completed=self.records[resource] or 1)


def summary_table(
    results: Sequence[ResourceResult],
    stats: RequestStats,
    *,
    refreshes: int,
    elapsed: float,
    title: str = "Export summary",
) -> Table:
    """Records, pages, retries, 429s and elapsed time per resource and in total; refreshes below.

    Narrow on purpose: cron mails and CI logs are 80 columns wide. Paths are listed below it.
    """
    table = Table(
        title=title,
        title_justify="left",
        caption=(
            "retries: requests sent again after a 429, 401, 5xx or dropped connection;"
            f" 429s: those rate limited. Token refreshes: {refreshes:,} (one token serves"
            " every resource)."
        ),
        caption_justify="left",
    )
    table.add_column("resource")
    for name in ("records", "pages", "retries", "429s", "elapsed"):
        table.add_column(name, justify="right")
    for result in results:
        counts = stats.by_resource[result.resource]
        pages = f"{result.pages:,}"
        if result.resumed_pages:
            pages += f" ({result.resumed_pages:,} resumed)"
        table.add_row(
            result.resource,
            f"{result.records:,}",
            pages,
            f"{counts.retries:,}",
            f"{counts.rate_limited:,}",
            f"{result.elapsed:.1f}s",
        )
    total = stats.total()
    table.add_section()
    table.add_row(
        "total",
        f"{sum(r.records for r in results):,}",
        f"{sum(r.pages for r in results):,}",
        f"{total.retries:,}",
        f"{total.rate_limited:,}",
        f"{elapsed:.1f}s",
        style="bold",
    )
    return table


def print_summary(
    console: Console,
    results: Sequence[ResourceResult],
    stats: RequestStats,
    *,
    refreshes: int,
    elapsed: float,
    show_paths: bool = True,
) -> None:
    """The summary table, then where each file is (unless the files do not outlive the run)."""
    console.print(summary_table(results, stats, refreshes=refreshes, elapsed=elapsed))
    if not show_paths:
        return
    for result in results:
        console.print(f"{result.resource}: {result.path}", highlight=False, soft_wrap=True)


def _default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_json(document: object, stream: TextIO | None = None) -> None:
    """One pretty JSON document on stdout."""
    target = stream or sys.stdout
    json.dump(document, target, indent=2, ensure_ascii=False, default=_default)
    target.write("\n")


def write_json_lines(records: Iterable[Mapping[str, Any]], stream: TextIO | None = None) -> int:
    """One compact JSON document per line; returns how many were written."""
    target = stream or sys.stdout
    count = 0
    for record in records:
        target.write(json.dumps(dict(record), ensure_ascii=False, default=_default))
        target.write("\n")
        count += 1
    return count


def explain_stats(stats: ClientStats) -> str:
    """The client's counters, each with what it means, for the end of an export."""
    retries = stats.retries
    return "\n".join(
        [
            f"requests sent: {stats.requests:,} (every HTTP exchange, retries included)",
            f"answered 429: {stats.rate_limited:,} (the server's rate limit; each one paused"
            " every request until its Retry-After passed)",
            f"retries: {retries['rate_limited']:,} after a 429, {retries['server_error']:,} after"
            f" a 5xx, {retries['connection']:,} after no answer, {retries['unauthorized']:,} with"
            " a refreshed token after a 401",
            f"waited: {stats.waited:,.1f} s (summed over concurrent requests: pacing to the"
            " learned rate, 429 pauses and retry back-off)",
            f"token refreshes after a 401: {stats.refreshes:,}",
        ]
    )
