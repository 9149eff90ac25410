"""Decoding the Actionstep envelope and its quirks into pages and records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from actionstep_async._errors import ResponseDecodeError
from actionstep_async._models import (
    Action,
    ActionType,
    FileNote,
    Participant,
    Record,
    TimeRecord,
    decode_json,
    error_details,
    make_page,
    structure_record,
)

AEST = timezone(timedelta(hours=10))

ACTION: dict[str, Any] = {
    "id": 70151,
    "name": "Smith v Jones",
    "status": "Closed",
    "isDeleted": "F",
    "isFavorite": "T",
    "createdTimestamp": "2019-08-15",
    "modifiedTimestamp": "2019-08-15T10:23:57+10:00",
    "shinyNewField": {"nested": [1, 2]},
    "links": {"assignedTo": "21188", "primaryParticipants": ["75165"], "step": "33--1"},
}


def page_of(document: Any, *, typed: bool = False) -> Any:
    return make_page("actions", document, typed=typed, page=1, page_size=50)


def test_no_content_is_an_empty_page() -> None:
    """A 204 (no body) decodes to a page with no records and zero totals."""
    page = page_of(None)
    assert list(page) == []
    assert (page.paging.record_count, page.paging.page_count) == (0, 0)


def test_single_object_becomes_one_record() -> None:
    """Actionstep sends one match as an object; it still arrives as one record in a list."""
    page = page_of({"actions": ACTION})
    assert len(page) == 1
    assert page[0]["name"] == "Smith v Jones"


def test_paging_comes_from_meta_paging_of_the_resource() -> None:
    """meta.paging.<resource> fills the page's totals."""
    document = {
        "actions": [ACTION],
        "meta": {
            "paging": {
                "actions": {"recordCount": 401, "pageCount": 3, "page": 2, "pageSize": 200},
                "other": {"recordCount": 1},
            }
        },
    }
    paging = page_of(document).paging
    assert (paging.record_count, paging.page_count, paging.page, paging.page_size) == (
        401,
        3,
        2,
        200,
    )


def test_plain_records_are_read_only_and_keep_the_wire_values() -> None:
    """Plain records are Mappings that cannot be changed and keep "T"/"F" as sent."""
    record = page_of({"actions": [ACTION]})[0]
    assert issubclass(Record, Mapping)
    assert isinstance(record, Record)
    assert record.id == 70151
    assert record["isDeleted"] == "F"
    assert record.links["step"] == "33--1"
    with pytest.raises(TypeError):
        record["name"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        record.links["step"] = "x"  # type: ignore[index]
    assert "Smith v Jones" in repr(record)


def test_typed_action_converts_quirks_and_keeps_unknown_fields() -> None:
    """T/F become bools, timestamps datetimes (date-only stays a date), unknown fields survive."""
    action = page_of({"actions": ACTION}, typed=True)[0]
    assert isinstance(action, Action)
    assert action.is_deleted is False
    assert action.is_favorite is True
    assert action.created_timestamp == date(2019, 8, 15)
    assert action.modified_timestamp == datetime(2019, 8, 15, 10, 23, 57, tzinfo=AEST)
    assert action.extra == {"shinyNewField": {"nested": [1, 2]}}
    # Typed links hold typed ids: numeric strings become ints, composite ids stay strings.
    assert action.links["primaryParticipants"] == [75165]
    assert action.links["step"] == "33--1"
    assert action.reference is None


def test_typed_ids_numeric_strings_become_ints_and_composites_stay_strings() -> None:
    """A numeric string id equals the int id; composite ids are kept as strings."""
    assert structure_record("actiontypes", {"id": "533"}, typed=True).id == 533
    assert structure_record("actiontypes", {"id": 533}, typed=True).id == 533
    assert structure_record("actiontypes", {"id": "14--54"}, typed=True).id == "14--54"
    assert structure_record("actiontypes", {"id": "007"}, typed=True).id == "007"


def test_typed_time_record_uses_decimals() -> None:
    """Decimal strings such as "1.00" become exact Decimals, never floats."""
    record = structure_record(
        "timerecords",
        {"id": 1, "actualHours": "1.25", "billableAmount": 82.5, "timestampDate": "2024-03-01"},
        typed=True,
    )
    assert isinstance(record, TimeRecord)
    assert record.actual_hours == Decimal("1.25")
    assert record.billable_amount == Decimal("82.5")
    assert record.timestamp_date == date(2024, 3, 1)


def test_every_core_resource_has_a_model_and_others_are_records() -> None:
    """actions, participants, filenotes, timerecords and actiontypes are typed; others plain."""
    kinds = {
        name: type(structure_record(name, {"id": 1}, typed=True))
        for name in ("actions", "participants", "filenotes", "timerecords", "actiontypes", "users")
    }
    assert kinds == {
        "actions": Action,
        "participants": Participant,
        "filenotes": FileNote,
        "timerecords": TimeRecord,
        "actiontypes": ActionType,
        "users": Record,
    }


@pytest.mark.parametrize(
    ("record", "path"),
    [
        ({"id": 1, "isDeleted": "Y"}, "is_deleted"),
        ({"id": 1, "createdTimestamp": "yesterday"}, "created_timestamp"),
        ({"id": 1, "priority": "high"}, "priority"),
        ({"id": None}, "id"),
        ({"id": 1, "links": ["x"]}, "links"),
    ],
)
def test_typed_decode_errors_name_the_field(record: dict[str, Any], path: str) -> None:
    """A value that does not fit its model raises ResponseDecodeError naming the field."""
    with pytest.raises(ResponseDecodeError, match=path):
        structure_record("actions", record, typed=True)


def test_linked_records_are_reachable_from_primary_ones() -> None:
    """related() follows a record's link into linked, using the response's link templates."""
    document = {
        "links": {"actions.assignedTo": {"href": "…/{actions.assignedTo}", "type": "participants"}},
        "actions": [ACTION],
        "linked": {
            "participants": [{"id": 21188, "displayName": "Jones, Amy"}, {"id": 75165}],
            "steps": {"id": "33--1", "stepName": "Open"},
        },
    }
    for typed in (False, True):
        page = page_of(document, typed=typed)
        action = page[0]
        assert [p.id for p in page.related(action, "assignedTo")] == [21188]
        primary = page.related(action, "primaryParticipants", resource="participants")
        assert [p.id for p in primary] == [75165]
        assert page.related(action, "step")[0].id == "33--1"
        assert page.related(action, "division") == []
        assert page.linked_record("participants", "21188") is page.linked["participants"][0]
        assert page.linked_record("participants", 999) is None


@pytest.mark.parametrize(
    "document",
    [[ACTION], {"participants": []}, {"actions": "nope"}, {"actions": [1]}],
)
def test_wrong_shapes_raise_decode_errors(document: Any) -> None:
    """A body without the resource's records is a ResponseDecodeError, not a KeyError."""
    with pytest.raises(ResponseDecodeError):
        page_of(document)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<!DOCTYPE html><html>Service Unavailable</html>", "an HTML page"),
        (b'{"actions": [{"id": 1, "name": "Trunc', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_non_json_bodies_name_content_type_and_size(body: bytes, kind: str) -> None:
    """HTML pages and truncated JSON raise ResponseDecodeError with content type and size."""
    with pytest.raises(ResponseDecodeError) as caught:
        decode_json(body, content_type="text/html", what="GET /x")
    assert kind in str(caught.value)
    assert "text/html" in str(caught.value)
    assert f"{len(body)} bytes" in str(caught.value)


def test_error_bodies_may_be_a_list_or_one_object() -> None:
    """errors is parsed whether Actionstep sends an array or a single object."""
    listed = {"errors": [{"status": 404, "title": "Not found", "detail": "No action 5"}]}
    single = {"errors": {"code": "AS-1300", "title": "Bad thing"}}
    assert error_details(listed) == (listed["errors"], "No action 5")
    assert error_details(single) == ([single["errors"]], "Bad thing")
    assert error_details({"errors": "text"}) == ([], None)
    assert error_details(None) == ([], None)
