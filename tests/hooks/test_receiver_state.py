"""The receiver's bookkeeping: backoff, duplicate memory, watermarks, delivered versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actionstep_async import Record
from actionstep_async._webhook_state import Delivered, RecentSet, Watermarks, retry_delay
from actionstep_async.webhooks import WebhookEvent

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _event(ident: str, modified: datetime | None, resource: str = "actions") -> WebhookEvent:
    return WebhookEvent(
        event_name="ActionUpdated",
        resource=resource,
        id=ident,
        record=Record(resource, {"id": ident}),
        hook_id="1",
        trigger_count=1,
        received_at=T0 + timedelta(hours=1),
        modified_at=modified,
    )


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (10_000, 300.0), (0, 1.0)],
)
def test_retry_delay_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    assert retry_delay(attempt, base=1.0, cap=300.0) == expected


def test_recent_set_forgets_the_oldest() -> None:
    seen: RecentSet[int] = RecentSet(3)
    assert [seen.add(n) for n in (1, 2, 1, 3, 4)] == [True, True, False, True, True]
    assert seen.add(1)  # forgotten: it was the oldest when 4 came
    assert len(seen) == 3


def test_watermark_stays_before_pending_events() -> None:
    marks = Watermarks()
    marks.accept(1, _event("1", T0))
    marks.accept(2, _event("2", T0 + timedelta(minutes=5)))
    marks.done(2)
    assert marks.get("actions") == T0  # event 1 is not handled yet
    marks.done(1)
    assert marks.get("actions") == T0 + timedelta(minutes=5)
    assert marks.snapshot() == {"actions": T0 + timedelta(minutes=5)}


def test_watermark_without_modified_time_uses_the_receive_time() -> None:
    marks = Watermarks({"filenotes": T0})
    marks.accept(1, _event("1", None, "filenotes"))
    marks.done(1)
    assert marks.get("filenotes") == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("delivered", "asked", "covered"),
    [
        (T0, T0, True),
        (T0, T0 - timedelta(seconds=1), True),
        (T0, T0 + timedelta(seconds=1), False),
        (None, T0, False),
        (T0, None, False),
    ],
)
def test_delivered_covers_versions_not_newer(
    delivered: datetime | None, asked: datetime | None, covered: bool
) -> None:
    log = Delivered(10)
    log.add(_event("1", delivered))
    assert log.covers("actions", "1", asked) is covered
    assert not log.covers("actions", "2", asked)


def test_delivered_keeps_the_newest_version() -> None:
    log = Delivered(10)
    log.add(_event("1", T0 + timedelta(seconds=5)))
    log.add(_event("1", T0))  # a retried older event arrives late
    assert log.covers("actions", "1", T0 + timedelta(seconds=5))


def test_pins_hold_the_watermark_until_a_reconcile_covers_them() -> None:
    marks = Watermarks({"actions": T0 + timedelta(hours=2)})
    marks.pin("actions", T0)
    assert marks.get("actions") == T0
    pins = marks.pins("actions")
    marks.pin("actions", T0 + timedelta(hours=3))  # dropped while the reconcile ran
    marks.unpin("actions", pins)
    assert marks.get("actions") == T0 + timedelta(hours=3)  # the later drop still holds it
    marks.unpin("actions", 1)
    assert marks.snapshot() == {"actions": T0 + timedelta(hours=2)}
