"""The unknown-resource message: a table of names against a fixed catalogue."""

from __future__ import annotations

import pytest

from actionstep_async._cli._resources import known_resources, unknown_resource_message

KNOWN = frozenset({"actions", "actiontypes", "participants", "filenotes", "timerecords"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("actions", None),
        ("acitons", "unknown resource 'acitons' (did you mean 'actions'?)"),
        ("participant", "unknown resource 'participant' (did you mean 'participants'?)"),
        ("filenote", "unknown resource 'filenote' (did you mean 'filenotes'?)"),
        ("zzzzzz", "unknown resource 'zzzzzz'"),
    ],
)
def test_unknown_resource_message(name: str, expected: str | None) -> None:
    assert unknown_resource_message(name, KNOWN) == expected


def test_known_resources_cover_the_core_resources() -> None:
    assert {"actions", "participants", "filenotes", "timerecords"} <= known_resources()
