"""What a run has to do, decided from the saved state: pure functions, no I/O.

The state row of a resource moves through two phases. ``full``: a first load is under way; it
commits in batches and remembers the last id committed (``cursor``) and the server's newest
modified timestamp from before it started (``since``). ``delta``: the load finished; each run
fetches what was modified at or after ``checkpoint`` minus the overlap, in one transaction with
the new checkpoint, which is the newest modified timestamp the server had *before* the run's
query started. Anything written later carries a later (or equal) timestamp, so it is fetched by
the next run: no gap, whatever order the pages arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import attrs

__all__ = [
    "State",
    "Step",
    "advance_cursor",
    "delta_filters",
    "event_deletes",
    "later",
    "parse_timestamp",
    "plan_step",
    "resume_filters",
    "scan_due",
]

Step = Literal["full", "resume", "delta", "reload"]
_FILTER_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"


@attrs.frozen
class State:
    """The saved progress of one resource (one row of the state table)."""

    resource: str
    organisation: str
    phase: Literal["full", "delta"] = "full"
    cursor: str | None = None
    since: str | None = None
    checkpoint: str | None = None
    scanned_at: float | None = None


def plan_step(state: State | None, *, has_modified: bool) -> Step:
    """Without a modified timestamp there is no delta: every run reloads (and finds deletes)."""
    if not has_modified:
        return "reload"
    if state is None or (state.phase == "full" and state.cursor is None):
        return "full"
    return "resume" if state.phase == "full" else "delta"


def scan_due(state: State | None, *, now: float, interval: float, requested: bool | None) -> bool:
    """Whether this run also lists every id to find hard deletes (and fill any gap)."""
    if requested is not None:
        return requested
    if state is None or state.phase != "delta":
        return False
    return state.scanned_at is None or now - state.scanned_at >= interval


def parse_timestamp(text: str) -> datetime:
    """A timestamp as the API sends it; one without an offset is UTC, as the server reads it."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def delta_filters(field: str, checkpoint: str | None, overlap: float) -> dict[str, str]:
    """``{field_gteq: ...}`` in the server's format: UTC, no offset, whole seconds (floored).

    ``_gteq`` rather than ``_gt`` because timestamps have one-second resolution and several
    writes share one; the overlap also covers clock skew between the servers that stamp them.
    """
    if checkpoint is None:
        return {}
    moment = parse_timestamp(checkpoint).astimezone(UTC) - timedelta(seconds=overlap)
    return {f"{field}_gteq": moment.strftime(_FILTER_FORMAT)}


def later(first: str | None, second: str | None) -> str | None:
    """The later of two timestamps (None is the earliest)."""
    if first is None or second is None:
        return second if first is None else first
    return second if parse_timestamp(second) > parse_timestamp(first) else first


def advance_cursor(cursor: str | None, ids: Iterable[object]) -> tuple[str | None, bool]:
    """The new resume point after a batch, and whether ids still ascend.

    Resuming with ``id_gt`` is only sound while pages come in ascending numeric id order; any
    other id (composite, or out of order) makes the load restart from scratch if interrupted,
    which upserts make harmless.
    """
    last = int(cursor) if cursor is not None else None
    for ident in ids:
        text = str(ident)
        if not text.isdigit() or (last is not None and int(text) <= last):
            return None, False
        last = int(text)
    return (str(last) if last is not None else cursor), True


def resume_filters(cursor: str | None) -> dict[str, str]:
    return {} if cursor is None else {"id_gt": cursor}


def event_deletes(event_name: str | None, deleted: bool | None) -> bool:
    """Whether a REST-hook event removes the record (``ActionDeleted``, ``deleted=True``)."""
    if deleted is not None:
        return deleted
    return event_name is not None and "delete" in event_name.lower()
