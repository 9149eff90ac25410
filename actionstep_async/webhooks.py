"""Receive Actionstep REST hooks without ever disabling one or losing a change.

Actionstep disables a hook after any answer other than 200 and never retries, so the receiver
answers 200 to every delivery that carries a valid URL token, whatever happens next: the event
goes to a bounded in-memory queue and your async handler runs on worker tasks. A handler that
raises parks the event in :attr:`WebhookReceiver.failed` and it is retried with backoff.
Duplicates (same hook id and trigger count) are dropped. A request without a valid token gets
404 and never reaches the handler.

A delivery with a valid token but a body we cannot parse is Actionstep's (only it knows the
URL), so it too gets 200: a 4xx would disable the hook and lose every later change for the sake
of one. It is kept in :attr:`WebhookReceiver.malformed` for a human to look at; reconcile
recovers the change it described. ::

    receiver = WebhookReceiver(handle, secret=HookSecret(os.environ["HOOK_SECRET"]))
    web.run_app(receiver.app(path="/actionstep/hooks"), access_log=None)

Run it with ``access_log=None``: the request line carries the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ._hook_tokens import TOKEN_PARAMETER, HookSecret
from ._webhook_event import WebhookEvent, WebhookPayloadError, parse_delivery
from ._webhook_state import (
    Delivered,
    FailedEvent,
    Malformed,
    Pending,
    ReceiverStats,
    RecentSet,
    RecordGate,
    Watermarks,
    bounded_deque,
    retry_delay,
)

if TYPE_CHECKING:
    from ._client import AsyncResourceClient

__all__ = [
    "FailedEvent",
    "Handler",
    "Malformed",
    "ReceiverStats",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookReceiver",
    "parse_delivery",
]

log = logging.getLogger("actionstep_async.webhooks")

Handler = Callable[[WebhookEvent], Awaitable[object]]
MAX_BODY: Final = 4 * 1024 * 1024
_KEPT_BODY: Final = 64 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookReceiver:
    """REST hook deliveries in, your ``handler(event)`` called once per change.

    ``workers`` tasks call the handler. A record's events reach the handler in the order they
    arrived: they share a worker, and while one of them waits for a retry the later ones wait
    behind it (until it succeeds, runs out of attempts or is discarded). ``queue_size`` bounds
    the queued events (beyond it they are parked and retried like failures, still answered
    200); ``max_pending`` bounds everything accepted and not yet handled (beyond it events are
    dropped with a 200 and the resource's watermark pinned, so reconcile recovers them).
    ``max_attempts`` handler calls per event before it waits in :attr:`failed` for
    :meth:`retry_failed`. ``watermarks`` restores :meth:`watermarks` saved by an earlier run.
    ``secret`` may be several secrets while you rotate from one to the next.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        secret: HookSecret | Sequence[HookSecret],
        workers: int = 4,
        queue_size: int = 10_000,
        max_attempts: int = 8,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        remember: int = 100_000,
        max_pending: int = 100_000,
        watermarks: Mapping[str, datetime] | None = None,
    ) -> None:
        if min(workers, queue_size, max_attempts, remember, max_pending) < 1:
            raise ValueError("workers, queue_size, max_attempts, remember, max_pending: >= 1")
        self.handler = handler
        self.secrets = (secret,) if isinstance(secret, HookSecret) else tuple(secret)
        if not self.secrets:
            raise ValueError("give at least one HookSecret")
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_pending = max_pending
        self.stats = ReceiverStats()
        self._gate = RecordGate()
        self._workers = workers
        self._shard_size = max(1, queue_size // workers)
        self._queues: list[asyncio.Queue[Pending]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._seen: RecentSet[tuple[str, int]] = RecentSet(remember)
        self._delivered = Delivered(remember)
        self._watermarks = Watermarks(watermarks)
        self._pending: dict[int, Pending] = {}
        self._malformed = bounded_deque(100)
        self._seq = 0
        self._wakeup: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"WebhookReceiver(workers={self._workers}, pending={len(self._pending)},"
            f" failed={len(self.failed)}, {self.stats!r})"
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker tasks on the running loop (``app()`` does this for you)."""
        if self._tasks:
            return
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Event()
        self._queues = [asyncio.Queue(self._shard_size) for _ in range(self._workers)]
        self._tasks = [asyncio.create_task(self._work(queue)) for queue in self._queues]
        self._tasks.append(asyncio.create_task(self._retry_loop()))
        # Accepted before start() (or left over from before aclose()): queue them again.
        self._gate = RecordGate()
        waiting = sorted(self._pending.values(), key=lambda p: p.seq)
        for pending in waiting:
            if pending.failed and pending.due is not None:
                self._gate.block(pending)
        for pending in waiting:
            if not pending.failed:
                self._admit(pending)

    async def aclose(self) -> None:
        """Stop the workers. Events still pending are lost with the process; the watermarks
        stay before them, so reconcile from :meth:`watermarks` recovers them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def app(self, path: str = "/") -> web.Application:
        """An aiohttp application serving deliveries at ``path`` (workers start with it)."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", path, self.handle)

        async def started(_: web.Application) -> None:
            await self.start()

        async def stopped(_: web.Application) -> None:
            await self.aclose()

        app.on_startup.append(started)
        app.on_cleanup.append(stopped)
        return app

    # -- the HTTP side ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: 404 without a valid token, otherwise always 200.

        Mounted in your own application, call :meth:`start` from its startup (``app()`` does
        that); until then accepted events wait.
        """
        token = request.query.get(TOKEN_PARAMETER)
        if not any(secret.verify(token) for secret in self.secrets):
            self.stats.rejected += 1
            return web.Response(status=404, text="not found")
        if request.method != "POST":
            return web.Response(text="ok")
        self.stats.received += 1
        received_at = _now()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._keep_malformed(received_at, f"body over {MAX_BODY} bytes", b"")
            return web.Response(text="ok")
        self.deliver(body, received_at=received_at)
        return web.Response(text="ok")

    def deliver(self, body: bytes, *, received_at: datetime | None = None) -> WebhookEvent | None:
        """Accept one delivery body (what :meth:`handle` does after the token check)."""
        received_at = received_at or _now()
        try:
            event = parse_delivery(body, received_at=received_at)
        except WebhookPayloadError as exc:
            self._keep_malformed(received_at, str(exc), body[:_KEPT_BODY])
            return None
        key = event.key
        if key is not None and key in self._seen:
            self.stats.duplicates += 1
            return None
        if len(self._pending) >= self.max_pending:
            # Still a 200 (a 4xx would disable the hook); the pinned watermark makes the next
            # reconcile of this resource start at or before the dropped change.
            self.stats.dropped += 1
            self._watermarks.pin(event.resource, Watermarks.stamp(event))
            log.warning("receiver full (%d pending): dropped one event", len(self._pending))
            return None
        if key is not None:
            self._seen.add(key)
        self._seq += 1
        pending = self._pending[self._seq] = Pending(self._seq, event)
        self._watermarks.accept(pending.seq, event)
        if self._tasks:
            self._admit(pending)
        return event

    def _keep_malformed(self, received_at: datetime, error: str, body: bytes) -> None:
        self.stats.malformed += 1
        self._malformed.append(Malformed(received_at, error, body))
        # The body is not logged: it can carry the target URL, and with it the token.
        log.warning("REST hook delivery kept unparsed (answered 200): %s", error)

    # -- workers and retries ------------------------------------------------------------------

    def _admit(self, pending: Pending) -> None:
        if not self._gate.hold(pending):
            self._enqueue(pending)

    def _enqueue(self, pending: Pending) -> None:
        event = pending.event
        queue = self._queues[hash((event.resource, event.id)) % len(self._queues)]
        try:
            queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.stats.overflowed += 1
            self._park(pending, "the receiver's queue was full", attempted=False)

    async def _work(self, queue: asyncio.Queue[Pending]) -> None:
        while True:
            pending = await queue.get()
            try:
                if self._gate.hold(pending):
                    continue  # an earlier event of this record failed after this was queued
                pending.attempts += 1
                await self.handler(pending.event)
            except Exception as exc:  # the handler's failure must never reach Actionstep
                self.stats.handler_errors += 1
                log.warning(
                    "handler failed for %s %s %s (attempt %d): %s",
                    pending.event.event_name,
                    pending.event.resource,
                    pending.event.id,
                    pending.attempts,
                    type(exc).__name__,
                    exc_info=exc,
                )
                self._park(pending, f"{type(exc).__name__}: {exc}", attempted=True)
            else:
                self.stats.handled += 1
                self._pending.pop(pending.seq, None)
                self._watermarks.done(pending.seq)
                self._delivered.add(pending.event)
                for follower in self._gate.release(pending):
                    self._admit(follower)
            finally:
                queue.task_done()
                if self._changed is not None:
                    self._changed.set()

    def _park(self, pending: Pending, error: str, *, attempted: bool) -> None:
        pending.failed = True
        pending.error = error
        if attempted and pending.attempts >= self.max_attempts:
            pending.due = None
            self.stats.given_up += 1
            for follower in self._gate.release(pending):  # it waits for you, they need not
                self._admit(follower)
        else:
            self._gate.block(pending)
            delay = retry_delay(max(pending.attempts, 1), base=self.retry_base, cap=self.retry_cap)
            pending.due = time.monotonic() + delay
        if self._wakeup is not None:
            self._wakeup.set()

    async def _retry_loop(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            now = time.monotonic()
            due = [p for p in self._pending.values() if p.failed and p.due is not None]
            ready = [p for p in due if p.due is not None and p.due <= now]
            for pending in sorted(ready, key=lambda p: p.seq):
                pending.failed, pending.due = False, None
                self.stats.retries += 1
                self._enqueue(pending)
            later = [p.due for p in due if p.due is not None and p.due > now]
            wakeup.clear()
            timeout = min(later) - now if later else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)

    # -- inspection -----------------------------------------------------------------------------

    @property
    def failed(self) -> tuple[FailedEvent, ...]:
        """Events whose handler raised and that are not handled yet, oldest first."""
        now = time.monotonic()
        return tuple(
            FailedEvent(
                p.event, p.attempts, p.error, None if p.due is None else max(0.0, p.due - now)
            )
            for p in self._pending.values()
            if p.failed
        )

    @property
    def malformed(self) -> tuple[Malformed, ...]:
        """The last 100 deliveries with a valid token that could not be parsed."""
        return tuple(self._malformed)

    def retry_failed(self) -> int:
        """Retry every failed event now, including those out of attempts; returns how many."""
        failed = [p for p in self._pending.values() if p.failed]
        for pending in failed:
            pending.due = time.monotonic()
        if self._wakeup is not None:
            self._wakeup.set()
        return len(failed)

    def discard_failed(self) -> int:
        """Forget every failed event (the watermarks move past them); returns how many."""
        failed = [p for p in self._pending.values() if p.failed]
        for pending in failed:
            self._pending.pop(pending.seq, None)
            self._watermarks.done(pending.seq)
            for follower in self._gate.release(pending):
                self._admit(follower)
        return len(failed)

    def last_event_at(self, resource: str) -> datetime | None:
        """Up to when every change to ``resource`` we received has been handled."""
        return self._watermarks.get(resource)

    def watermarks(self) -> dict[str, datetime]:
        """:meth:`last_event_at` for every resource seen: save it, pass it back on restart."""
        return self._watermarks.snapshot()

    def delivered(self, resource: str, id: str, modified: datetime | None) -> bool:
        """Whether this version of the record was already handled (reconcile asks this)."""
        return self._delivered.covers(resource, id, modified)

    async def wait_idle(self) -> None:
        """Wait until nothing is queued, running or due for retry (bound it with a timeout)."""
        while any(not p.failed or p.due is not None for p in self._pending.values()):
            if self._changed is None:
                raise RuntimeError("the receiver is not started")
            self._changed.clear()
            await self._changed.wait()

    def reconcile(
        self,
        client: AsyncResourceClient,
        resource: str,
        *,
        default: timedelta = timedelta(days=1),
    ) -> AsyncIterator[Any]:
        """Changes to ``resource`` since :meth:`last_event_at` that were not delivered.

        With no watermark yet, looks back ``default``. Feed what it yields to your handler.
        """
        since = self.last_event_at(resource) or _now() - default
        records = client.hooks.reconcile(resource, since=since, seen=self)
        return self._unpinning(resource, records, self._watermarks.pins(resource))

    async def _unpinning(
        self, resource: str, records: AsyncIterator[Any], pins: int
    ) -> AsyncIterator[Any]:
        async for record in records:
            yield record
        self._watermarks.unpin(resource, pins)  # the dropped events were in this query
