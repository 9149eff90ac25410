"""The pure decisions of ``sync --watch``: which events, which interval, which path."""

from __future__ import annotations

import pytest

from actionstep_async._cli._watch import events_for_resources, receiver_path, watch_interval


@pytest.mark.parametrize(
    ("resources", "events", "unhooked"),
    [
        (["participants"], ["ParticipantCreated", "ParticipantUpdated"], []),
        (["actions"], ["ActionCreated", "ActionUpdated", "StepChanged"], []),
        (
            ["actionparticipants", "users"],
            ["ActionParticipantAdded", "ActionParticipantDeleted"],
            ["users"],
        ),
        (["users", "actiontypes"], [], ["actiontypes", "users"]),
        ([], [], []),
    ],
)
def test_events_for_resources(resources: list[str], events: list[str], unhooked: list[str]) -> None:
    assert events_for_resources(resources) == (events, unhooked)


@pytest.mark.parametrize(
    ("given", "hooks", "expected"),
    [(None, False, 60.0), (None, True, 900.0), (5.0, False, 5.0), (3600.0, True, 3600.0)],
)
def test_watch_interval(given: float | None, hooks: bool, expected: float) -> None:
    assert watch_interval(given, hooks=hooks) == expected


@pytest.mark.parametrize(
    ("public", "path", "expected"),
    [
        ("https://m.example.com/actionstep-hooks", None, "/actionstep-hooks"),
        ("https://m.example.com", None, "/"),
        ("https://m.example.com/public/hooks", "/hooks", "/hooks"),
        ("https://m.example.com/x", "hooks", "/hooks"),
    ],
)
def test_receiver_path(public: str, path: str | None, expected: str) -> None:
    assert receiver_path(public, path) == expected
