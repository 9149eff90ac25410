"""The run decisions: which step, whether to scan, the delta filter, cursors, events."""

from __future__ import annotations

import pytest

from actionstep_async.mirror._plan import (
    State,
    Step,
    advance_cursor,
    delta_filters,
    event_deletes,
    later,
    plan_step,
    resume_filters,
    scan_due,
)

FULL = State("actions", "org", phase="full", since="2024-01-01T00:00:00+10:00")
DELTA = State("actions", "org", phase="delta", checkpoint="2024-01-01T00:00:00+10:00")


@pytest.mark.parametrize(
    ("state", "has_modified", "expected"),
    [
        (None, True, "full"),
        (FULL, True, "full"),
        (State("actions", "org", phase="full", cursor="400"), True, "resume"),
        (DELTA, True, "delta"),
        (None, False, "reload"),
        (DELTA, False, "reload"),
    ],
)
def test_plan_step(state: State | None, has_modified: bool, expected: Step) -> None:
    assert plan_step(state, has_modified=has_modified) == expected


SCANNED = State("actions", "org", phase="delta", scanned_at=1000.0)


@pytest.mark.parametrize(
    ("state", "now", "requested", "expected"),
    [
        (DELTA, 5000.0, None, True),  # never scanned since the full load
        (SCANNED, 1500.0, None, False),
        (SCANNED, 1000.0 + 3600, None, True),
        (SCANNED, 1500.0, True, True),
        (DELTA, 5000.0, False, False),
        (FULL, 5000.0, None, False),  # a load still under way: finish it first
        (None, 5000.0, None, False),
    ],
)
def test_scan_due(state: State | None, now: float, requested: bool | None, expected: bool) -> None:
    assert scan_due(state, now=now, interval=3600, requested=requested) is expected


@pytest.mark.parametrize(
    ("checkpoint", "overlap", "expected"),
    [
        (None, 60, {}),
        ("2024-01-01T10:00:00+10:00", 0, {"modifiedTimestamp_gteq": "2024-01-01T00:00:00"}),
        ("2024-01-01T10:00:00+10:00", 120, {"modifiedTimestamp_gteq": "2023-12-31T23:58:00"}),
        ("2024-01-01T00:00:00", 1.5, {"modifiedTimestamp_gteq": "2023-12-31T23:59:58"}),
        ("2024-06-30T23:59:59-04:00", 0, {"modifiedTimestamp_gteq": "2024-07-01T03:59:59"}),
    ],
)
def test_delta_filters_are_utc_without_an_offset(
    checkpoint: str | None, overlap: float, expected: dict[str, str]
) -> None:
    assert delta_filters("modifiedTimestamp", checkpoint, overlap) == expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (None, None, None),
        (None, "2024-01-01T00:00:00+10:00", "2024-01-01T00:00:00+10:00"),
        ("2024-01-01T00:00:00+10:00", None, "2024-01-01T00:00:00+10:00"),
        # Compared as instants, not as text: 09:00+10:00 is earlier than 00:00Z.
        ("2024-01-01T09:00:00+10:00", "2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00"),
        ("2024-01-02T00:00:00+10:00", "2024-01-01T00:00:00+10:00", "2024-01-02T00:00:00+10:00"),
    ],
)
def test_later(first: str | None, second: str | None, expected: str | None) -> None:
    assert later(first, second) == expected


@pytest.mark.parametrize(
    ("cursor", "ids", "expected"),
    [
        (None, [1, 2, 3], ("3", True)),
        ("3", [4, "5"], ("5", True)),
        ("3", [], ("3", True)),
        (None, [2, 1], (None, False)),
        ("5", [5], (None, False)),
        (None, ["1--2--3"], (None, False)),
    ],
)
def test_advance_cursor(
    cursor: str | None, ids: list[object], expected: tuple[str | None, bool]
) -> None:
    assert advance_cursor(cursor, ids) == expected


def test_resume_filters() -> None:
    assert resume_filters(None) == {}
    assert resume_filters("400") == {"id_gt": "400"}


@pytest.mark.parametrize(
    ("event_name", "deleted", "expected"),
    [
        ("ActionUpdated", None, False),
        ("ActionCreated", None, False),
        ("ActionDeleted", None, True),
        ("filenote.deleted", None, True),
        (None, None, False),
        ("ActionUpdated", True, True),
        ("ActionDeleted", False, False),
    ],
)
def test_event_deletes(event_name: str | None, deleted: bool | None, expected: bool) -> None:
    assert event_deletes(event_name, deleted) is expected
