"""``actionstep-async sync --to URL [RESOURCE...] [--watch]``: keep a database mirror current."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._config import Settings
from ._exits import OK, USAGE, CommandError
from ._output import ExportProgress, err_console

if TYPE_CHECKING:
    from ..mirror import SyncResult

__all__ = ["add_sync_parser", "describe", "sync"]


def describe(result: SyncResult) -> str:
    """One line per resource and run, for people and for logs."""
    parts = [
        f"{result.resource}: {result.step}",
        f"{result.fetched:,} fetched",
        f"{result.written:,} written",
        f"{result.deleted:,} deleted",
    ]
    if result.scanned:
        parts.append("ids scanned")
    line = ", ".join(parts) + f" in {result.elapsed:.1f}s"
    if result.waited >= 0.5:
        line += f" (waited {result.waited:.1f}s for another worker)"
    return line


def add_sync_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync_parser = commands.add_parser(
        "sync",
        help="mirror resources into SQLite or PostgreSQL, incrementally (extra: mirror)",
        description="First run loads everything; later runs fetch only what changed since the"
        " last one. Safe to kill and rerun; a second worker on the same database waits.",
    )
    sync_parser.add_argument(
        "resources", nargs="*", metavar="RESOURCE", help="default: every readable resource"
    )
    sync_parser.add_argument(
        "--to", required=True, metavar="URL", help="sqlite:///actionstep.db or postgresql://..."
    )
    sync_parser.add_argument("--watch", action="store_true", help="keep syncing deltas")
    sync_parser.add_argument(
        "--interval", type=float, default=60.0, help="seconds between --watch runs (60)"
    )
    scan = sync_parser.add_mutually_exclusive_group()
    scan.add_argument("--scan", action="store_true", default=None, help="list ids for deletes now")
    scan.add_argument("--no-scan", dest="scan", action="store_false", help="skip the id scan")
    sync_parser.add_argument(
        "--overlap",
        type=float,
        default=120.0,
        help="seconds before the checkpoint each delta re-reads, for clock skew (120)",
    )
    sync_parser.add_argument("--concurrency", type=int, default=4, help="pages in flight (4)")
    sync_parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sync_parser.set_defaults(handler=sync)


async def _once(mirror: object, resources: Sequence[str], scan: bool | None) -> None:
    from ..mirror import Mirror

    assert isinstance(mirror, Mirror)
    for result in await mirror.sync(resources or None, scan=scan):
        sys.stdout.write(describe(result) + "\n")
    sys.stdout.flush()


async def sync(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from ..mirror import Mirror
    except ImportError as exc:
        raise CommandError(
            f"sync needs the mirror extra: pip install 'actionstep-async[mirror]' ({exc.name})",
            USAGE,
        ) from None
    from ._commands import EXPORT_RETRY, connect

    if args.interval <= 0 or args.concurrency < 1 or args.overlap < 0:
        raise CommandError(
            "--interval must be positive, --overlap not negative, --concurrency at least 1", USAGE
        )
    err = err_console()
    async with connect(settings, adaptive=True, retry=EXPORT_RETRY) as (manager, client):
        await manager.token(settings.token_key)
        with ExportProgress(err, enabled=not args.no_progress) as progress:
            mirror = Mirror(
                client,
                args.to,
                overlap=args.overlap,
                concurrency=args.concurrency,
                reporter=progress,
            )
            async with mirror:
                await _once(mirror, args.resources, args.scan)
                while args.watch:
                    await asyncio.sleep(args.interval)
                    await _once(mirror, args.resources, args.scan)
    return OK
