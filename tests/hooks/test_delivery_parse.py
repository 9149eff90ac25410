"""Parsing the JSON:API 1.0 envelope of a delivery into a typed event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from actionstep_async import Action, FileNote, Record
from actionstep_async.webhooks import WebhookPayloadError, parse_delivery

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def _body(**overrides: Any) -> dict[str, Any]:
    # The captured shape from the survey (section 10.4).
    document: dict[str, Any] = {
        "jsonapi": {"version": "1.0"},
        "data": {
            "type": "filenotes",
            "id": "259",
            "attributes": {"enteredTimestamp": "2020-06-12T13:23:34+12:00", "text": "hello"},
            "relationships": {
                "action": {"data": {"type": "actions", "id": "5"}},
                "document": None,
                "tags": {"data": [{"type": "tags", "id": "1"}, {"type": "tags", "id": "2"}]},
            },
        },
        "meta": {
            "paging": {"filenotes": {"recordCount": 1, "pageCount": 1}},
            "debug": {
                "resthook": {
                    "id": "46",
                    "target": "http://x/api/resthook",
                    "trigger_count": 1,
                    "event_name": "FileNoteCreated",
                    "resource_type": "filenotes",
                    "resource_id": "259",
                }
            },
        },
    }
    document.update(overrides)
    return document


def _parse(document: object) -> Any:
    return parse_delivery(json.dumps(document).encode(), received_at=NOW)


def test_the_captured_payload_parses_into_a_typed_event() -> None:
    event = _parse(_body())
    assert (event.event_name, event.resource, event.id) == ("FileNoteCreated", "filenotes", "259")
    assert event.key == ("46", 1)
    assert isinstance(event.record, FileNote)
    assert event.record.id == 259
    assert event.record.text == "hello"
    links = event.record.links
    assert str(links["action"]) == "5"
    tags = links["tags"]
    assert tags is not None
    assert [str(tag) for tag in tags] == ["1", "2"]
    assert links["document"] is None
    assert event.modified_at is None  # file notes carry no modified timestamp


def test_booleans_and_modified_time_of_an_action() -> None:
    body = _body(
        data={
            "type": "actions",
            "id": "7",
            "attributes": {"isDeleted": "F", "modifiedTimestamp": "2024-01-02T03:04:05+10:00"},
        }
    )
    body["meta"]["debug"]["resthook"]["event_name"] = "ActionUpdated"
    event = _parse(body)
    assert isinstance(event.record, Action)
    assert event.record.is_deleted is False
    assert event.modified_at == datetime(2024, 1, 1, 17, 4, 5, tzinfo=UTC)


def test_a_resource_without_a_model_comes_as_a_record() -> None:
    event = _parse(_body(data={"type": "widgets", "id": "3", "attributes": {"name": "x"}}))
    assert isinstance(event.record, Record)
    assert event.record["name"] == "x"


def test_a_record_the_model_cannot_convert_still_arrives() -> None:
    event = _parse(_body(data={"type": "actions", "id": "3", "attributes": {"isDeleted": "maybe"}}))
    assert isinstance(event.record, Record)


def _without(path: str) -> dict[str, Any]:
    body = _body()
    *parents, last = path.split(".")
    node = body
    for name in parents:
        node = node[name]
    del node[last]
    return body


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([1, 2], "not a JSON object"),
        (_without("data"), "no data"),
        (_without("data.type"), "no data.type"),
        (_without("data.id"), "no data.id"),
        (_without("meta"), "resthook block"),
        (_without("meta.debug.resthook.event_name"), "event_name"),
        (_body(data={"type": "x", "id": True}), "data.id"),
        (_body(data={"type": "x", "id": "1", "attributes": []}), "must be objects"),
    ],
)
def test_malformed_payloads_raise_a_typed_error(document: object, problem: str) -> None:
    with pytest.raises(WebhookPayloadError, match=problem):
        _parse(document)


@pytest.mark.parametrize("count", ["x", -1, True, 1.5])
def test_a_bad_trigger_count_is_malformed(count: object) -> None:
    body = _body()
    body["meta"]["debug"]["resthook"]["trigger_count"] = count
    with pytest.raises(WebhookPayloadError, match="trigger_count"):
        _parse(body)


@pytest.mark.parametrize("raw", [b"", b"{", b"<html>", b"\xff\xfe", b"[" * 100_000])
def test_garbage_bytes_raise_a_typed_error(raw: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_delivery(raw, received_at=NOW)
