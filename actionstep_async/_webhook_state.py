"""The receiver's bookkeeping, free of I/O: duplicates, failed events, watermarks.

Every structure is bounded; what each bound means for a user is stated in README.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Generic, TypeVar

import attrs

from ._webhook_event import WebhookEvent

__all__ = [
    "FailedEvent",
    "Malformed",
    "Pending",
    "ReceiverStats",
    "RecentSet",
    "Watermarks",
    "retry_delay",
]

K = TypeVar("K", bound=Hashable)


def retry_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before retry ``attempt`` (1-based): doubling from ``base``, at most ``cap``."""
    return min(cap, base * 2.0 ** min(max(attempt - 1, 0), 60))


class RecentSet(Generic[K]):
    """The last ``size`` keys added; older ones are forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[K, None] = OrderedDict()

    def add(self, key: K) -> bool:
        """Add ``key``; False if it was already there."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


@attrs.define
class ReceiverStats:
    """Counters of one receiver (read them; the receiver updates them)."""

    received: int = 0
    """Deliveries with a valid token (duplicates and malformed ones included)."""
    rejected: int = 0
    """Requests with a missing or wrong URL token (answered 404, never handled)."""
    duplicates: int = 0
    malformed: int = 0
    handled: int = 0
    """Successful handler calls."""
    handler_errors: int = 0
    retries: int = 0
    given_up: int = 0
    overflowed: int = 0
    """Events parked as failed because the queue was full (retried like failures)."""
    dropped: int = 0
    """Events refused because ``max_pending`` were waiting; reconcile recovers them."""


@attrs.frozen
class FailedEvent:
    """An event whose handler raised (or that found the queue full), kept for retry.

    ``retry_in`` is None once the attempts are spent: it then waits for
    ``receiver.retry_failed()`` or ``receiver.discard_failed()``.
    """

    event: WebhookEvent
    attempts: int
    error: str
    retry_in: float | None


@attrs.frozen
class Malformed:
    """A delivery with a valid token whose body we could not parse, kept for inspection."""

    received_at: datetime
    error: str
    body: bytes = attrs.field(repr=False)
    """The first bytes of the body. It can hold the target URL (and so the token): never log it."""


@attrs.define(eq=False)
class Pending:
    """One accepted event until its handler succeeds (queued, running or failed)."""

    seq: int
    event: WebhookEvent
    attempts: int = 0
    error: str = ""
    due: float | None = None
    """Loop time of the next retry; None while queued or running, or once given up."""
    failed: bool = False


class Watermarks:
    """Per resource, the time up to which every accepted event has been handled.

    While an event is pending, its resource's watermark stays at or before it, so a crash
    never moves reconcile's starting point past an unhandled change.
    """

    def __init__(self, initial: Mapping[str, datetime] | None = None) -> None:
        self._handled: dict[str, datetime] = dict(initial or {})
        self._pending: dict[int, tuple[str, datetime]] = {}
        self._pins: dict[str, list[datetime]] = {}

    def pin(self, resource: str, stamp: datetime) -> None:
        """Hold ``resource``'s watermark at or before ``stamp`` (an event we had to drop)."""
        self._pins.setdefault(resource, []).append(stamp)

    def pins(self, resource: str) -> int:
        return len(self._pins.get(resource, ()))

    def unpin(self, resource: str, count: int) -> None:
        """Forget the first ``count`` pins of ``resource`` (a reconcile has covered them)."""
        left = self._pins.get(resource, [])[count:]
        if left:
            self._pins[resource] = left
        else:
            self._pins.pop(resource, None)

    @staticmethod
    def stamp(event: WebhookEvent) -> datetime:
        return event.modified_at or event.received_at

    def accept(self, seq: int, event: WebhookEvent) -> None:
        self._pending[seq] = (event.resource, self.stamp(event))

    def done(self, seq: int) -> None:
        entry = self._pending.pop(seq, None)
        if entry is not None:
            resource, stamp = entry
            current = self._handled.get(resource)
            if current is None or stamp > current:
                self._handled[resource] = stamp

    def get(self, resource: str) -> datetime | None:
        waiting = [stamp for name, stamp in self._pending.values() if name == resource]
        waiting.extend(self._pins.get(resource, ()))
        if waiting:
            return min(waiting)
        return self._handled.get(resource)

    def snapshot(self) -> dict[str, datetime]:
        names = {*self._handled, *self._pins, *(name for name, _ in self._pending.values())}
        return {name: stamp for name in sorted(names) if (stamp := self.get(name)) is not None}


class Delivered:
    """The newest modified timestamp handled per record, for reconcile to skip (bounded)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._stamps: OrderedDict[tuple[str, str], datetime | None] = OrderedDict()

    def add(self, event: WebhookEvent) -> None:
        key = (event.resource, event.id)
        old = self._stamps.pop(key, None)
        new = event.modified_at
        self._stamps[key] = old if old is not None and (new is None or old > new) else new
        if len(self._stamps) > self._size:
            self._stamps.popitem(last=False)

    def covers(self, resource: str, ident: str, modified: datetime | None) -> bool:
        stamp = self._stamps.get((resource, ident))
        return stamp is not None and modified is not None and stamp >= modified


RecordKey = tuple[str, str]


class RecordGate:
    """Holds a record's later events back while an earlier event of it waits for a retry, so
    a record's events reach the handler in the order they arrived even across failures."""

    def __init__(self) -> None:
        self._blocks: dict[RecordKey, tuple[int, deque[Pending]]] = {}

    @staticmethod
    def key(pending: Pending) -> RecordKey:
        return (pending.event.resource, pending.event.id)

    def hold(self, pending: Pending) -> bool:
        """True (and ``pending`` is held) if another event of its record is failing."""
        block = self._blocks.get(self.key(pending))
        if block is None or block[0] == pending.seq:
            return False
        block[1].append(pending)
        return True

    def block(self, pending: Pending) -> None:
        """``pending`` failed: hold its record's later events until it is released."""
        self._blocks.setdefault(self.key(pending), (pending.seq, deque()))

    def release(self, pending: Pending) -> list[Pending]:
        """The events ``pending`` was holding back, in arrival order."""
        key = self.key(pending)
        block = self._blocks.get(key)
        if block is None or block[0] != pending.seq:
            return []
        del self._blocks[key]
        return list(block[1])


def bounded_deque(size: int) -> deque[Malformed]:
    return deque(maxlen=size)
