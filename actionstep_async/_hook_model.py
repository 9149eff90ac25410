"""REST hook facts as data: the 21 event names, what they are about, and a subscription record.

Kept free of I/O so the subscription planner, the receiver and the fake share one truth.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, TypeAlias, get_args

import attrs

from ._catalogue import resource_spec
from ._generated import RestHook
from ._hook_tokens import redact_target

__all__ = [
    "EVENT_RESOURCES",
    "HOOK_EVENTS",
    "EventName",
    "HookStatus",
    "Subscription",
    "modified_field",
    "parse_timestamp",
]

EventName: TypeAlias = Literal[
    "ActionCreated",
    "ActionUpdated",
    "ActionDocumentCreated",
    "ActionDocumentUpdated",
    "ActionDocumentDeleted",
    "ActionParticipantAdded",
    "ActionParticipantDeleted",
    "DataCollectionRecordUpdated",
    "DataCollectionRecordDeleted",
    "DataCollectionRecordValueUpdated",
    "DisbursementCreated",
    "DisbursementUpdated",
    "FileNoteCreated",
    "FileNoteUpdated",
    "ParticipantCreated",
    "ParticipantUpdated",
    "StepChanged",
    "TaskCreated",
    "TaskUpdated",
    "TimeEntryCreated",
    "TimeEntryUpdated",
]
"""The events Actionstep documents for REST hooks (survey section 10.2)."""

HOOK_EVENTS: Final[tuple[EventName, ...]] = get_args(EventName)

HookStatus: TypeAlias = Literal["Active", "Disabled", "Deleted"]

_PREFIXES: Final = (
    ("ActionDocument", "actiondocuments"),
    ("ActionParticipant", "actionparticipants"),
    ("DataCollectionRecordValue", "datacollectionrecordvalues"),
    ("DataCollectionRecord", "datacollectionrecords"),
    ("Disbursement", "disbursements"),
    ("FileNote", "filenotes"),
    ("Participant", "participants"),
    ("TimeEntry", "timeentries"),
    ("Task", "tasks"),
    ("Action", "actions"),
    ("Step", "actions"),  # StepChanged is about the matter whose step moved
)


def _resource_of(event: str) -> str:
    return next(resource for prefix, resource in _PREFIXES if event.startswith(prefix))


EVENT_RESOURCES: Final[Mapping[EventName, str]] = {
    event: _resource_of(event) for event in HOOK_EVENTS
}
"""The resource type each event's payload carries."""


@functools.lru_cache(maxsize=256)
def modified_field(resource: str) -> str | None:
    """The wire name of ``resource``'s last-modified timestamp, if the catalogue knows one."""
    spec = resource_spec(resource)
    return spec.modified_field if spec is not None else None


def _redacted_repr(self: RestHook) -> str:
    target = redact_target(self.target_url) if self.target_url else None
    return (
        f"RestHook(id={self.id!r}, event_name={self.event_name!r}, target_url={target!r},"
        f" status={self.status!r}, triggered_count={self.triggered_count!r})"
    )


# The generated model would show the target URL, and with it the hook's secret token.
RestHook.__repr__ = _redacted_repr  # type: ignore[method-assign,assignment]


def parse_timestamp(value: object) -> datetime | None:
    """An Actionstep timestamp (offset, naive = UTC, or a bare date) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


@attrs.frozen(repr=False)
class Subscription:
    """One ``resthooks`` record. The repr shows the target URL with its token redacted."""

    id: int
    event_name: str
    target_url: str
    status: str
    triggered_count: int = 0
    triggered_last: datetime | None = None

    @property
    def target(self) -> str:
        """The target URL with the token replaced by ``...`` (safe to show)."""
        return redact_target(self.target_url)

    @property
    def active(self) -> bool:
        return self.status == "Active"

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Subscription:
        """From a ``resthooks`` record as the API sends it."""
        return cls(
            id=_int(raw.get("id")),
            event_name=str(raw.get("eventName") or ""),
            target_url=str(raw.get("targetUrl") or ""),
            status=str(raw.get("status") or "Active"),
            triggered_count=_int(raw.get("triggeredCount") or 0),
            triggered_last=parse_timestamp(raw.get("triggeredLastTimestamp")),
        )

    def __repr__(self) -> str:
        return (
            f"Subscription(id={self.id}, event_name={self.event_name!r}, target={self.target!r},"
            f" status={self.status!r}, triggered_count={self.triggered_count})"
        )
