"""decode_page and decode_body: one response to a Page, exactly as the step-by-step decode does."""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import pytest

from actionstep_async._client import AsyncResourceClient
from actionstep_async._errors import ResponseDecodeError
from actionstep_async._models import (
    Page,
    Paging,
    Record,
    _paging,
    _parsed_paging,
    decode_body,
    decode_json,
    decode_json_exact,
    decode_page,
    inexact_ids,
    make_page,
)

URL = "http://127.0.0.1:9/api/rest/actions?pageSize=20&page=2"
HEADERS = {"Content-Type": "application/vnd.api+json"}
BIG = 2**70 + 1  # beyond 64 bits: orjson makes it a float
TEMPLATES = {
    "actions.assignedTo": {"href": "…/participants/{actions.assignedTo}", "type": "participants"},
    "actions.step": {"href": "…/steps/{actions.step}", "type": "steps"},
    "actions.broken": {"href": "…"},
}
ACTION = {"id": 7, "name": "Smith v Jones", "links": {"assignedTo": "3", "step": "1--2"}}
PAGING = {"recordCount": 41, "pageCount": 3, "page": 2, "pageSize": 20}


def reference(status: int, body: bytes, resource: str, typed: bool) -> Page[Any]:
    """The decode as it was done step by step before decode_page."""
    document = None
    if status != 204 and body:
        what = f"GET {URL}"
        document = decode_json(body, content_type=HEADERS["Content-Type"], what=what)
        if inexact_ids(resource, document):
            document = decode_json_exact(body, content_type="", what=what)
    return make_page(resource, document, typed=typed, page=2, page_size=20)


def outcome(decode: Any) -> tuple[str, Any]:
    """What a decode gives, comparable between two pages: their contents, or the error."""
    try:
        page = decode()
    except ResponseDecodeError as exc:
        return "error", (str(exc), type(exc.__cause__))
    records = [dict(r) if isinstance(r, Record) else r for r in page]
    linked = {
        k: [dict(r) if isinstance(r, Record) else r for r in v] for k, v in page.linked.items()
    }
    return "page", (page.resource, records, page.paging, linked, dict(page.link_types))


def body(records: object = (ACTION,), **parts: object) -> bytes:
    """The bytes of an ``actions`` document: ``records`` plus any other top-level members."""
    return orjson.dumps({"actions": records, **parts})


def paged(block: object) -> bytes:
    return body(meta={"paging": {"actions": block}})


CASES: list[tuple[str, int, bytes]] = [
    ("full page", 200, body([ACTION] * 3, links=TEMPLATES, meta={"paging": {"actions": PAGING}})),
    ("no content", 204, b""),
    ("empty body", 200, b""),
    ("one object", 200, body(ACTION)),
    ("null member", 200, body(None)),
    ("empty list", 200, body([])),
    ("missing member", 200, orjson.dumps({"participants": []})),
    ("not an object", 200, orjson.dumps([ACTION])),
    ("unusable member", 200, body("nope")),
    ("non-dict record", 200, body([ACTION, 1])),
    ("big id", 200, b'{"actions": [{"id": %d}, {"id": 2}]}' % BIG),
    ("big id in one object", 200, b'{"actions": {"id": %d}}' % BIG),
    ("big id then non-dict", 200, b'{"actions": [{"id": %d}, "x"]}' % BIG),
    ("float id", 200, body([{"id": 1.5}])),
    ("linked", 200, body(linked={"participants": [{"id": 3}], "steps": {"id": "1--2"}})),
    ("bad linked", 200, body(linked={"participants": [5]})),
    ("links not templates", 200, body(links=["x"])),
    ("string paging", 200, paged({"recordCount": "41"})),
    ("bool paging", 200, paged({"pageCount": True})),
    ("float paging", 200, paged({"page": 2.0})),
    ("paging not a block", 200, paged(3)),
    ("html", 200, b"<!DOCTYPE html><html>Service Unavailable</html>"),
    ("truncated", 200, b'{"actions": [{"id": 1, "na'),
    ("typed field error", 200, body([{"id": 1, "isDeleted": "Y"}])),
]


@pytest.mark.parametrize("typed", [False, True])
@pytest.mark.parametrize(("status", "raw"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_decode_page_matches_the_step_by_step_decode(status: int, raw: bytes, typed: bool) -> None:
    """Every body gives the same page, or the same typed error, as decode + inexact + make_page."""

    def fused() -> Page[Any]:
        return decode_page(
            status, raw, HEADERS, "GET", URL, "actions", typed=typed, page=2, page_size=20
        )

    assert outcome(fused) == outcome(lambda: reference(status, raw, "actions", typed))


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (204, b'{"x": 1}', None),
        (200, b"", None),
        (200, b'{"actions": [{"id": 1}]}', {"actions": [{"id": 1}]}),
        (200, b'{"actions": [{"id": %d}]}' % BIG, {"actions": [{"id": BIG}]}),
        (200, b'{"id": %d}' % BIG, {"id": float(BIG)}),  # only the resource's ids are checked
        (200, b"[1, 2]", [1, 2]),
    ],
)
def test_decode_body_parses_once_and_exactly_when_ids_need_it(
    status: int, raw: bytes, expected: object
) -> None:
    """None for no content; the stdlib re-parse only when a primary record's id was inexact."""
    assert decode_body(status, raw, HEADERS, "GET", URL, "actions") == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>down</html>", "an HTML page (content-type 'text/html', 17 bytes)"),
        (b"{", "not valid JSON (content-type 'text/html', 1 bytes)"),
    ],
)
def test_decode_body_errors_name_method_url_and_content_type(raw: bytes, message: str) -> None:
    """The error text is the one decode_json gives for the same body."""
    with pytest.raises(ResponseDecodeError) as caught:
        decode_body(200, raw, {"Content-Type": "text/html"}, "GET", "/x")
    assert str(caught.value) == f"GET /x: the body is {message}"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (PAGING, Paging(41, 3, 2, 20)),
        ({"recordCount": 41}, Paging(41, 1, 2, 20)),
        ({"recordCount": "41", "page": "2"}, Paging(41, 1, 2, 20)),
        ({"recordCount": True}, None),
        ({"page": 2.0}, None),
        ({"pageSize": "20.5"}, None),
        (None, Paging(1, 1, 2, 20, reported=False)),
    ],
)
def test_paging_blocks_exact_ints_or_converted_or_refused(
    block: dict[str, Any] | None, expected: Paging | None
) -> None:
    """Exact ints pass as they are; True, 2.0 or "20.5" never pass for an int."""
    document = orjson.loads(paged(block))
    if expected is None:
        with pytest.raises(ResponseDecodeError, match=r"malformed meta\.paging"):
            make_page("actions", document, typed=False, page=2, page_size=20)
    else:
        page = make_page("actions", document, typed=False, page=2, page_size=20)
        assert page.paging == expected


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (TEMPLATES, {"actions.assignedTo": "participants", "actions.step": "steps"}),
        ({"actions.step": {"type": 5}}, {}),
        ("x", {}),
        (None, {}),
    ],
)
def test_link_types_read_like_a_dict(links: object, expected: dict[str, str]) -> None:
    """link_types compares, iterates, sizes and prints like the dict of template types."""
    page = make_page("actions", {"actions": [], "links": links}, typed=False, page=1, page_size=20)
    types = page.link_types
    assert types == expected
    assert dict(types) == expected
    assert len(types) == len(expected)
    assert list(types) == list(expected)
    assert repr(types) == repr(expected)
    assert types.get("actions.step") == expected.get("actions.step")
    assert attrs.evolve(page).link_types == expected


@pytest.mark.fake_actionstep(records={"actions": 60})
async def test_the_fakes_full_field_page_decodes_as_before(client: AsyncResourceClient) -> None:
    """A real full-field page of 20 actions with links and paging: plain and typed alike."""
    document = await client.request("GET", "actions", params={"pageSize": 20, "page": 2})
    raw = orjson.dumps(document)
    for typed in (False, True):
        fused = outcome(
            lambda typed=typed: decode_page(
                200, raw, HEADERS, "GET", URL, "actions", typed=typed, page=2, page_size=20
            )
        )
        assert fused == outcome(lambda typed=typed: reference(200, raw, "actions", typed))
        assert len(fused[1][1]) == 20
        assert fused[1][2] == Paging(60, 3, 2, 20)
        assert fused[1][4]["actions.assignedTo"] == "participants"


PAGING_DOCUMENTS: list[tuple[str, object]] = [
    ("full block", {"meta": {"paging": {"actions": PAGING}}}),
    ("with links", {"meta": {"paging": {"actions": {**PAGING, "nextPage": "…"}}, "debug": {}}}),
    ("no meta", {}),
    ("meta null", {"meta": None}),
    ("meta a list", {"meta": [{"paging": {"actions": PAGING}}]}),
    ("meta a string", {"meta": "paging"}),
    ("meta a number", {"meta": 3}),
    ("no paging", {"meta": {}}),
    ("paging a list", {"meta": {"paging": [PAGING]}}),
    ("paging a string", {"meta": {"paging": "actions"}}),
    ("other resource", {"meta": {"paging": {"participants": PAGING}}}),
    ("block a list", {"meta": {"paging": {"actions": [PAGING]}}}),
    ("block a string", {"meta": {"paging": {"actions": "recordCount"}}}),
    ("block true", {"meta": {"paging": {"actions": True}}}),
    ("block null", {"meta": {"paging": {"actions": None}}}),
    ("a total missing", {"meta": {"paging": {"actions": {"recordCount": 41, "page": 2}}}}),
    ("empty block", {"meta": {"paging": {"actions": {}}}}),
    ("string total", {"meta": {"paging": {"actions": {**PAGING, "recordCount": "41"}}}}),
    ("bool total", {"meta": {"paging": {"actions": {**PAGING, "pageCount": True}}}}),
    ("float total", {"meta": {"paging": {"actions": {**PAGING, "page": 2.0}}}}),
    ("null total", {"meta": {"paging": {"actions": {**PAGING, "pageSize": None}}}}),
    ("bad string total", {"meta": {"paging": {"actions": {**PAGING, "pageSize": "x"}}}}),
]


@pytest.mark.parametrize(
    "document", [case[1] for case in PAGING_DOCUMENTS], ids=[case[0] for case in PAGING_DOCUMENTS]
)
def test_parsed_paging_reads_parser_output_as_paging_does(document: dict[str, Any]) -> None:
    """The subscript-only reading of a parsed document gives _paging's Paging or its error."""

    def result(read: Any) -> object:
        try:
            return read("actions", orjson.loads(orjson.dumps(document)), 3, 2, 20)
        except ResponseDecodeError as exc:
            return str(exc)

    assert result(_parsed_paging) == result(_paging)
