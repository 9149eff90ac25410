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
from ._watch import (
    check_public_url,
    events_for_resources,
    hook_receiver,
    receiver_path,
    watch_interval,
)

if TYPE_CHECKING:
    from .._hook_model import EventName
    from .._hook_tokens import HookSecret
    from ..mirror import Mirror, SyncResult

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


def _add_hook_options(parser: argparse.ArgumentParser) -> None:
    hooks = parser.add_argument_group(
        "REST hooks (with --watch)",
        "Changes arrive as they happen: a receiver listens on --host/--port, and the synced"
        " resources' events are subscribed to --public-url (the address Actionstep reaches it"
        " at, e.g. through a reverse proxy). Needs ACTIONSTEP_HOOK_SECRET. Hooks stay"
        " subscribed on exit; the next start re-registers any Actionstep disabled meanwhile.",
    )
    hooks.add_argument("--public-url", metavar="URL", help="https://mirror.example.com/hooks")
    hooks.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    hooks.add_argument("--port", type=int, metavar="PORT", help="port to listen on")
    hooks.add_argument("--path", help="path to serve (default: the public URL's path)")


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
    sync_parser.add_argument("--watch", action="store_true", help="keep the mirror current")
    sync_parser.add_argument(
        "--interval",
        type=float,
        help="seconds between --watch deltas (60; with --public-url a catch-up every 900)",
    )
    _add_hook_options(sync_parser)
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


async def _once(mirror: Mirror, resources: Sequence[str], scan: bool | None) -> None:
    for result in await mirror.sync(resources or None, scan=scan):
        sys.stdout.write(describe(result) + "\n")
    sys.stdout.flush()


def _check_options(args: argparse.Namespace) -> None:
    if (args.interval is not None and args.interval <= 0) or args.overlap < 0:
        raise CommandError("--interval must be positive, --overlap not negative", USAGE)
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1", USAGE)
    if args.public_url is None:
        return
    if not args.watch:
        raise CommandError("--public-url needs --watch", USAGE)
    if args.port is None or not 0 < args.port < 65536:
        raise CommandError("--public-url needs --port (1-65535) to listen on", USAGE)
    check_public_url(args.public_url)


async def _ensure(
    mirror: Mirror, events: Sequence[EventName], url: str, secret: HookSecret
) -> None:
    result = await mirror.client.hooks.ensure(events, url, secret=secret)
    if result.changed:
        sys.stderr.write(
            f"REST hooks: {len(result.active)} active ({len(result.created)} created,"
            f" {len(result.recreated)} re-registered, {len(result.retargeted)} re-pointed,"
            f" {len(result.removed)} removed)\n"
        )
        sys.stderr.flush()


async def _watch_hooks(mirror: Mirror, args: argparse.Namespace, secret: HookSecret) -> None:
    resources = list(args.resources) or [
        name for name, spec in mirror.catalogue.items() if "GET" in spec.methods
    ]
    events, unhooked = events_for_resources(resources)
    interval = watch_interval(args.interval, hooks=True)
    if unhooked:
        sys.stderr.write(
            f"no REST hook events for {', '.join(unhooked)}: they follow the deltas"
            f" every {interval:g}s\n"
        )
    path = receiver_path(args.public_url, args.path)
    async with hook_receiver(mirror, set(resources), secret, args.host, args.port, path):
        while True:
            # Before the delta, so that changes made while it runs are delivered too; again at
            # every catch-up, which re-registers hooks Actionstep disabled.
            if events:
                await _ensure(mirror, events, args.public_url, secret)
            await _once(mirror, resources, args.scan)
            await asyncio.sleep(interval)


async def _watch_deltas(mirror: Mirror, args: argparse.Namespace) -> None:
    await _once(mirror, args.resources, args.scan)
    interval = watch_interval(args.interval, hooks=False)
    while args.watch:
        await asyncio.sleep(interval)
        await _once(mirror, args.resources, args.scan)


async def sync(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from ..mirror import Mirror
    except ImportError as exc:
        raise CommandError(
            f"sync needs the mirror extra: pip install 'actionstep-async[mirror]' ({exc.name})",
            USAGE,
        ) from None
    from ._commands import EXPORT_RETRY, connect
    from ._hooks import hook_secret

    _check_options(args)
    secret = hook_secret(settings) if args.public_url else None
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
                if secret is not None:
                    await _watch_hooks(mirror, args, secret)
                else:
                    await _watch_deltas(mirror, args)
    return OK
