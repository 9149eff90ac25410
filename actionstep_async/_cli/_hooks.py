"""``actionstep-async hooks list | ensure | listen``: REST hook subscriptions from the shell.

The hook secret comes from ``ACTIONSTEP_HOOK_SECRET`` (or ``hook_secret`` in the config file),
never from an argument; target URLs are printed with their token redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from .._errors import ConfigurationError
from .._hook_model import HOOK_EVENTS, Subscription
from .._hook_tokens import HookSecret
from ..webhooks import WebhookEvent, WebhookReceiver
from ._commands import connect
from ._config import VARIABLES, Settings
from ._exits import OK, USAGE, CommandError
from ._output import write_json, write_json_lines

__all__ = ["add_hooks_parser", "hook_secret", "hooks_ensure", "hooks_list", "hooks_listen"]


def hook_secret(settings: Settings) -> HookSecret:
    try:
        return HookSecret(settings.require("hook_secret"))
    except ConfigurationError as exc:
        raise CommandError(f"{VARIABLES['hook_secret']}: {exc}", USAGE) from None


def _shown(hook: Subscription, secret: HookSecret | None) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": hook.id,
        "event": hook.event_name,
        "status": hook.status,
        "target": hook.target,
        "triggered_count": hook.triggered_count,
        "triggered_last": hook.triggered_last.isoformat() if hook.triggered_last else None,
    }
    if secret is not None:
        shown["ours"] = secret.owns(hook.target_url)
    return shown


async def hooks_list(args: argparse.Namespace, settings: Settings) -> int:
    secret = hook_secret(settings) if settings.get("hook_secret") else None
    async with connect(settings) as (_, client):
        hooks = await client.hooks.list()
    write_json([_shown(hook, secret) for hook in hooks])
    return OK


async def hooks_ensure(args: argparse.Namespace, settings: Settings) -> int:
    secret = hook_secret(settings)
    async with connect(settings) as (_, client):
        result = await client.hooks.ensure(args.events, args.target, secret=secret)
    write_json(
        {
            name: [_shown(hook, None) for hook in getattr(result, name)]
            for name in ("created", "retargeted", "recreated", "removed", "unchanged")
        }
    )
    return OK


def _event_json(event: WebhookEvent) -> dict[str, Any]:
    return {
        "event": event.event_name,
        "resource": event.resource,
        "id": event.id,
        "hook": event.hook_id,
        "trigger_count": event.trigger_count,
        "received_at": event.received_at.isoformat(),
        "modified_at": event.modified_at.isoformat() if event.modified_at else None,
        "record": _record_json(event.record),
    }


def _record_json(record: object) -> dict[str, Any]:
    if attrs.has(type(record)):
        return attrs.asdict(record)  # type: ignore[arg-type]
    return dict(record) if isinstance(record, Mapping) else {"value": repr(record)}


async def _print_event(event: WebhookEvent) -> None:
    write_json_lines([_event_json(event)], sys.stdout)
    sys.stdout.flush()


async def hooks_listen(args: argparse.Namespace, settings: Settings) -> int:
    receiver = WebhookReceiver(_print_event, secret=hook_secret(settings), workers=1)
    # No access log: the request line carries the URL token.
    runner = web.AppRunner(receiver.app(args.path), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        host, port = runner.addresses[0][:2]
        sys.stderr.write(f"listening on http://{host}:{port}{args.path} (Ctrl-C stops)\n")
        sys.stderr.flush()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return OK  # pragma: no cover - only a signal ends the wait


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0-65535")
    return value


def add_hooks_parser(commands: Any) -> None:
    """Register ``hooks`` and its actions on the top-level subparsers."""
    hooks = commands.add_parser("hooks", help="REST hook subscriptions and a local receiver")
    actions = hooks.add_subparsers(dest="hooks_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every subscription, target tokens redacted")
    listing.set_defaults(handler=hooks_list)
    ensure = actions.add_parser(
        "ensure",
        help="subscribe exactly these events to --target (idempotent)",
        description=f"Known events: {', '.join(HOOK_EVENTS)}",
    )
    ensure.add_argument("events", nargs="+", metavar="EVENT", choices=HOOK_EVENTS)
    ensure.add_argument("--target", required=True, metavar="URL", help="the receiver's URL")
    ensure.set_defaults(handler=hooks_ensure)
    listen = actions.add_parser("listen", help="a local receiver that prints events as JSON")
    listen.add_argument("--port", type=_port, required=True)
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--path", default="/", help="URL path to serve (/)")
    listen.set_defaults(handler=hooks_listen)
