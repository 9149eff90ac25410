"""The subscription planner: a pure function from existing hooks to the steps ``ensure`` takes."""

from __future__ import annotations

import pytest

from actionstep_async import InvalidRequestError, Subscription
from actionstep_async._hooks import check_events, plan_subscriptions

TARGET = "https://example.com/hooks"
OTHER = "https://old.example.com/hooks"


def _hook(ident: int, event: str, url: str, status: str = "Active") -> Subscription:
    return Subscription(id=ident, event_name=event, target_url=url, status=status)


def _ours(url: str) -> bool:
    return "hook_token=ours" in url


MINE = f"{TARGET}?hook_token=ours"
MINE_ELSEWHERE = f"{OTHER}?hook_token=ours"
THEIRS = f"{TARGET}?hook_token=theirs"

CASES = [
    ("nothing yet", [], ["ActionCreated"], [("create", "ActionCreated", None)]),
    (
        "already right",
        [_hook(1, "ActionCreated", MINE)],
        ["ActionCreated"],
        [("keep", "ActionCreated", 1)],
    ),
    (
        "disabled is re-registered",
        [_hook(1, "ActionCreated", MINE, "Disabled")],
        ["ActionCreated"],
        [("recreate", "ActionCreated", 1)],
    ),
    (
        "pointing elsewhere is re-pointed",
        [_hook(1, "ActionCreated", MINE_ELSEWHERE)],
        ["ActionCreated"],
        [("retarget", "ActionCreated", 1)],
    ),
    (
        "no longer wanted is removed",
        [_hook(1, "ActionCreated", MINE), _hook(2, "TaskCreated", MINE)],
        ["ActionCreated"],
        [("keep", "ActionCreated", 1), ("remove", "TaskCreated", 2)],
    ),
    (
        "someone else's hook is never touched",
        [_hook(1, "ActionCreated", THEIRS), _hook(2, "TaskCreated", THEIRS, "Disabled")],
        ["ActionCreated"],
        [("create", "ActionCreated", None)],
    ),
    (
        "deleted hooks are ignored",
        [_hook(1, "ActionCreated", MINE, "Deleted")],
        ["ActionCreated"],
        [("create", "ActionCreated", None)],
    ),
    (
        "duplicates: the active one on target is kept, the rest removed",
        [
            _hook(1, "ActionCreated", MINE, "Disabled"),
            _hook(2, "ActionCreated", MINE),
            _hook(3, "ActionCreated", MINE_ELSEWHERE),
        ],
        ["ActionCreated"],
        [
            ("keep", "ActionCreated", 2),
            ("remove", "ActionCreated", 3),
            ("remove", "ActionCreated", 1),
        ],
    ),
    (
        "empty wish list removes all of ours",
        [_hook(1, "ActionCreated", MINE)],
        [],
        [("remove", "ActionCreated", 1)],
    ),
]


@pytest.mark.parametrize(
    ("existing", "events", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan(
    existing: list[Subscription], events: list[str], expected: list[tuple[str, str, int | None]]
) -> None:
    steps = plan_subscriptions(existing, events, TARGET, _ours)
    got = [(s.kind, s.event, s.existing.id if s.existing else None) for s in steps]
    assert got == expected


def test_plan_is_stable_once_applied() -> None:
    """After the plan's steps, planning again keeps everything."""
    existing = [_hook(1, "ActionCreated", MINE), _hook(2, "TaskCreated", MINE)]
    steps = plan_subscriptions(existing, ["ActionCreated", "TaskCreated"], TARGET, _ours)
    assert {s.kind for s in steps} == {"keep"}


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        (["ActionCreated", "Nope"], "unknown REST hook event 'Nope'"),
        ("ActionCreated", "not one string"),
        (["ActionParticipantRemoved"], "unknown"),  # renamed to ActionParticipantDeleted in 2022
    ],
)
def test_unknown_events_are_refused(events: object, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        check_events(events)  # type: ignore[arg-type]


def test_events_are_deduplicated_and_sorted() -> None:
    assert check_events(["TaskUpdated", "ActionCreated", "TaskUpdated"]) == (
        "ActionCreated",
        "TaskUpdated",
    )


def test_subscription_repr_hides_the_token() -> None:
    hook = _hook(5, "ActionCreated", f"{TARGET}?a=1&hook_token=sentinel-hook-token")
    assert "sentinel-hook-token" not in repr(hook)
    assert hook.target == f"{TARGET}?a=1&hook_token=..."


def test_a_plain_resthooks_record_hides_the_token_too() -> None:
    from actionstep_async import Record

    record = Record("resthooks", {"id": 1, "targetUrl": f"{TARGET}?hook_token=sentinel-hook-token"})
    assert "sentinel-hook-token" not in repr(record)
    assert record["targetUrl"].endswith("sentinel-hook-token")  # the data itself is untouched


def test_the_generated_resthook_model_hides_the_token() -> None:
    from actionstep_async._models import structure_record

    raw = {"id": 1, "eventName": "TaskCreated", "targetUrl": f"{TARGET}?hook_token=sentinel-x"}
    hook = structure_record("resthooks", raw, typed=True)
    assert "sentinel-x" not in repr(hook)
    assert "hook_token=..." in repr(hook)
