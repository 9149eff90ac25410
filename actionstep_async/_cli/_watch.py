"""``sync --watch``: keep a mirror current, from REST hooks when a public URL is given.

With hooks, a receiver listens on ``--host``/``--port``, ``client.hooks.ensure`` points the
synced resources' events at ``--public-url``, and each event goes to ``mirror.apply`` (the
record is re-read, so a late or repeated event never writes stale data). The periodic delta
still runs, less often, as the catch-up for anything the hooks missed (a hook Actionstep
disabled, a restart) and for the id scan that finds hard deletes; each catch-up also re-ensures
the subscriptions, which re-registers any Actionstep disabled. Hooks are left in place on exit:
while the receiver is down Actionstep gets no answer and disables them, and the next start
re-registers them and catches up with a delta.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from .._hook_model import EVENT_RESOURCES, EventName
from .._hook_tokens import HookSecret, check_target
from .._serving import serve
from ._exits import USAGE, CommandError

if TYPE_CHECKING:
    from ..mirror import Mirror
    from ..webhooks import WebhookEvent, WebhookReceiver

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_INTERVAL_WITH_HOOKS",
    "describe_event",
    "events_for_resources",
    "hook_receiver",
    "receiver_path",
    "watch_interval",
]

DEFAULT_INTERVAL: Final = 60.0
"""Seconds between deltas when they are the only way changes arrive."""
DEFAULT_INTERVAL_WITH_HOOKS: Final = 900.0
"""Seconds between catch-up deltas when hooks deliver changes as they happen."""


def events_for_resources(resources: Iterable[str]) -> tuple[list[EventName], list[str]]:
    """The hook events of ``resources``, and the resources no event covers (sorted)."""
    wanted = set(resources)
    events = sorted(event for event, resource in EVENT_RESOURCES.items() if resource in wanted)
    hooked = {EVENT_RESOURCES[event] for event in events}
    return events, sorted(wanted - hooked)


def watch_interval(interval: float | None, *, hooks: bool) -> float:
    """``--interval`` as given, else 60 s of deltas, or a 15-minute catch-up behind hooks."""
    if interval is not None:
        return interval
    return DEFAULT_INTERVAL_WITH_HOOKS if hooks else DEFAULT_INTERVAL


def receiver_path(public_url: str, path: str | None) -> str:
    """The path to serve: ``--path``, else the public URL's own path (a proxy may rewrite it)."""
    if path is not None:
        return path if path.startswith("/") else f"/{path}"
    return urlsplit(public_url).path or "/"


def describe_event(event: WebhookEvent, outcome: str) -> str:
    """One line per applied event: ``participants 12: written (ParticipantUpdated)``."""
    return f"{event.resource} {event.id}: {outcome} ({event.event_name})"


def check_public_url(public_url: str) -> str:
    try:
        return check_target(public_url)
    except ValueError as exc:  # InvalidRequestError is a ValueError too
        raise CommandError(f"--public-url: {exc}", USAGE) from None


def _applier(
    mirror: Mirror, resources: Collection[str]
) -> Callable[[WebhookEvent], Awaitable[None]]:
    async def apply(event: WebhookEvent) -> None:
        if event.resource not in resources:
            return  # another resource of a shared event name (or a stray hook): not ours
        outcome = await mirror.apply(event)
        sys.stdout.write(describe_event(event, outcome) + "\n")
        sys.stdout.flush()

    return apply


@contextlib.asynccontextmanager
async def hook_receiver(
    mirror: Mirror, resources: Collection[str], secret: HookSecret, host: str, port: int, path: str
) -> AsyncIterator[WebhookReceiver]:
    """A receiver feeding ``mirror.apply``, served on ``host:port`` until the block ends."""
    from ..webhooks import WebhookReceiver

    receiver = WebhookReceiver(_applier(mirror, resources), secret=secret)
    try:
        serving = await serve(receiver.app(path), host, port)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sys.stderr.write(f"receiving REST hooks on http://{serving.host}:{serving.port}{path}\n")
    sys.stderr.flush()
    try:
        yield receiver
    finally:
        await serving.close()  # also stops the receiver's workers (an event mid-apply rolls back)
