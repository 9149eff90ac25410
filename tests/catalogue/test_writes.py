"""Writes are checked against the catalogue before anything is sent; errors carry codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from actionstep_async import (
    AsyncResourceClient,
    InvalidRequestError,
    NotFoundError,
    Record,
    UnauthorizedError,
)
from actionstep_async._catalogue import CATALOGUE
from actionstep_async._models import error_details
from actionstep_async._writes import check_write
from actionstep_async.testing import FakeActionstep

FILENOTES = CATALOGUE["filenotes"]


@pytest.mark.parametrize(
    ("fields", "links", "creating", "message"),
    [
        ({"txt": "x"}, {"action": 1}, True, "filenotes has no field 'txt' (did you mean 'text'?)"),
        ({"text": "x", "entered_by": "me"}, {"action": 1}, True, "entered_by is read-only"),
        ({"text": "x"}, None, True, "filenotes.create needs links['action']"),
        ({"source": "User"}, {"action": 1}, True, "filenotes.create needs text"),
        ({"text": "x", "source": "Robot"}, {"action": 1}, True, "must be one of System, User"),
        ({"text": "x"}, {"acton": 1}, True, "no link 'acton' (did you mean 'action'?)"),
        ({"text": "x"}, {"participant": 2}, False, "link 'participant' is read-only"),
        ({"source": "User"}, None, False, "filenotes.source is read-only: update cannot set it"),
    ],
)  # fmt: skip
def test_bad_writes_name_the_field(
    fields: dict[str, Any], links: dict[str, Any] | None, creating: bool, message: str
) -> None:
    """Unknown, read-only, outside-the-enum and missing required fields are refused by name."""
    with pytest.raises(InvalidRequestError) as caught:
        check_write(FILENOTES, fields, links, creating=creating)
    assert message in str(caught.value)


def test_good_writes_become_wire_bodies() -> None:
    """Attribute names become wire names; bools, timestamps and link lists get wire forms."""
    from datetime import datetime, timedelta, timezone

    stamp = datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=10)))
    body, links = check_write(
        FILENOTES,
        {"text": "x", "note_timestamp": stamp, "source": "User"},
        {"action": 4, "tags": (1, 2)},
        creating=True,
    )
    assert body == {"text": "x", "noteTimestamp": "2024-03-01T09:30:00+10:00", "source": "User"}
    assert links == {"action": 4, "tags": [1, 2]}
    body, _ = check_write(
        CATALOGUE["actions"], {"is_billable_override": False}, None, creating=False
    )
    assert body == {"isBillableOverride": "F"}


async def test_accessors_refuse_before_sending(
    make_client: Callable[..., AsyncResourceClient[Record]], fake_actionstep: FakeActionstep
) -> None:
    """A refused write never reaches the server."""
    client = make_client()
    with pytest.raises(InvalidRequestError, match="entered_by"):
        await client.filenotes.create(text="x", entered_by="me", links={"action": 1})  # type: ignore[call-arg]
    assert not [r for r in fake_actionstep.received if r.method == "POST"]


async def test_unknown_resources_report_actionsteps_code(
    make_client: Callable[..., AsyncResourceClient[Record]],
) -> None:
    """The fake's AS-TBC 404 object reaches the caller as NotFoundError.code."""
    with pytest.raises(NotFoundError) as caught:
        await make_client().get("acitons", 1)
    assert caught.value.code == "AS-TBC"
    assert "does not exist" in str(caught.value)


@pytest.mark.parametrize(("code", "expired"), [("expired_token", True), ("invalid_token", False)])
def test_unauthorized_tells_expired_from_invalid(code: str, expired: bool) -> None:
    """An OAuth-style 401 body gives the error its code and says whether the token expired."""
    errors, message = error_details({"error": code, "error_description": "The token is bad"})
    error = UnauthorizedError(message or "", status=401, method="GET", url="u", errors=errors)
    assert error.code == code
    assert error.token_expired is expired
    assert message == "The token is bad"
