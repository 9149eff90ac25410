"""Typed pages decoded by msgspec give exactly what the general path gives, or step aside.

The shortcut (``_fast_page``) may decline a page, never decode it differently: every case here
decodes one page both ways and compares the records, paging and side-loads (or the error).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actionstep_async import _fast_page
from actionstep_async._catalogue import CATALOGUE, ResourceSpec
from actionstep_async._convert import DECODER_SPECS, parse_timestamp
from actionstep_async._errors import ResponseDecodeError
from actionstep_async._fast_page import SKIP_AFTER_MISS, FastPage, build
from actionstep_async._models import Action, decode_page

from .._hypothesis import examples
from ._records import full_record, variants

SPECS = [pytest.param(spec, id=name) for name, spec in CATALOGUE.items()]
HEADERS = {"Content-Type": "application/vnd.api+json"}
Outcome = tuple[str, object]


@pytest.fixture(autouse=True)
def fresh_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no shortcut built, so one test's misses do not skip another's."""
    monkeypatch.setattr(_fast_page, "_PAGES", {})


def body_of(resource: str, records: list[Any], **rest: Any) -> bytes:
    paging = {resource: {"recordCount": 40, "pageCount": 2, "page": 1, "pageSize": 20}}
    return json.dumps({resource: records, "meta": {"paging": paging}, **rest}).encode()


def page_outcome(resource: str, body: bytes) -> Outcome:
    """Everything a typed Page holds, comparable with ``==``, or the error it raised."""
    try:
        page = decode_page(
            200, body, HEADERS, "GET", "u", resource, typed=True, page=1, page_size=20
        )
    except ResponseDecodeError as exc:
        return "error", str(exc)

    def shown(records: Any) -> list[dict[str, Any]]:
        return [{**vars(r), "extra": dict(vars(r)["extra"])} for r in records]

    linked = {kind: shown(records) for kind, records in page.linked.items()}
    return "page", (shown(page.records), page.paging, linked, dict(page.link_types))


def both_ways(
    resource: str, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> tuple[Outcome, Outcome]:
    """The page through the shortcut (a fresh one), then through the general path alone."""
    monkeypatch.setitem(_fast_page._PAGES, resource, build(resource, DECODER_SPECS[resource]))
    fast = page_outcome(resource, body)
    monkeypatch.setitem(_fast_page._PAGES, resource, None)
    return fast, page_outcome(resource, body)


def takes(resource: str, body: bytes) -> bool:
    shortcut = build(resource, DECODER_SPECS[resource])
    assert shortcut is not None
    return shortcut.decode(body) is not None


def test_every_catalogue_model_has_a_shortcut() -> None:
    missing = [name for name in CATALOGUE if build(name, DECODER_SPECS.get(name)) is None]
    assert missing == []


@pytest.mark.parametrize("spec", SPECS)
def test_spec_shaped_pages_take_the_shortcut_and_decode_alike(
    spec: ResourceSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = full_record(spec, native=True)
    side = full_record(CATALOGUE["actions"], native=True)
    body = body_of(spec.name, [raw, raw], linked={"actions": [side]}, links={})
    assert takes(spec.name, body)
    fast, general = both_ways(spec.name, body, monkeypatch)
    assert fast == general
    assert fast[0] == "page"


@pytest.mark.parametrize("spec", SPECS)
def test_near_misses_decode_alike_whichever_path_takes_them(
    spec: ResourceSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wire forms that need converting, unknown fields, bad values, odd timestamps and links:
    the shortcut either declines or gives the general path's page, never another one."""
    cases = variants(spec, native=True) + variants(spec)
    for label, raw in cases:
        body = body_of(spec.name, [full_record(spec, native=True), raw])
        fast, general = both_ways(spec.name, body, monkeypatch)
        assert fast == general, label


def test_a_page_with_an_undocumented_field_keeps_it_in_extra() -> None:
    spec = CATALOGUE["actions"]
    body = body_of("actions", [{**full_record(spec, native=True), "newField": [1]}])
    assert not takes("actions", body)
    (only,) = decode_page(
        200, body, HEADERS, "GET", "u", "actions", typed=True, page=1, page_size=20
    )
    assert isinstance(only, Action)
    assert dict(only.extra) == {"newField": [1]}


def test_after_a_miss_the_next_pages_go_the_general_way_then_it_tries_again() -> None:
    spec = CATALOGUE["filenotes"]
    good = body_of("filenotes", [full_record(spec, native=True)])
    odd = body_of("filenotes", [{**full_record(spec, native=True), "newField": 1}])
    shortcut = build("filenotes", DECODER_SPECS["filenotes"])
    assert isinstance(shortcut, FastPage)
    assert shortcut.decode(good) is not None
    assert shortcut.decode(odd) is None
    declined = [shortcut.decode(good) is None for _ in range(SKIP_AFTER_MISS)]
    assert all(declined)
    assert shortcut.decode(good) is not None


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>", b"[]", b"{}", b'{"actions": null}', b'{"actions": {"id": 1}}',
     b'{"actions": [1]}', b'{"actions": [{"id": 1.5}]}', b'{"actions": [{"id": ""}]}',
     b'{"actions": [{"id": 123456789012345678901234567890}]}', b'{"actions": [], "meta": 5}',
     b'{"actions": [{"id": 1, "links": ["5"]}]}', b'{"actions": [{"id": 1, "links": {"a": 1.5}}]}',
     b'{"actions": [{"id": 1, "name": "a", "name": 5}]}',
     b'{"actions": [{"id": 1, "statusTimestamp": "2024-03-01T09:30:00.1234567+10:00"}]}',
     b'{"actions": [{"id": 1, "statusTimestamp": "2024-03-01t09:30:00Z"}]}',
     b'{"actions": [{"id": 1, "priority": 18446744073709551616}]}',
     b'{"actions": [{"id": 1, "priority": 18446744073709551615}]}',
     b'{"actions": [{"id": 1, "priority": -9223372036854775809}]}',
     b'{"actions": [{"id": 1, "links": {"step": 18446744073709551616}}]}',
     b'{"actions": [], "meta": {"paging": {"actions": {"recordCount": 18446744073709551616}}}}',
     b'{"actions": [], "meta": {"paging": {"actions": {"recordCount": 1e400}}}}',
     b'{"actions": [], "linked": {"participants": [{"id": 18446744073709551616}]}}',
     b'{"actions": [], "linked": {"participants": [{"id": "5", "firstName": "A"}]}}',
     b'{"actions": [], "linked": null, "meta": null, "links": null}'],
)  # fmt: skip
def test_odd_bodies_decode_alike(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, general = both_ways("actions", body, monkeypatch)
    assert fast == general


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["T", "F", "", "7", "007", "x--1", "2024-03-01", "23-May-1987",
                       "2024-03-01T09:30:00+10:00", "2024-03-01t09:30:00z", "Active", "1.50",
                       "2024-03-01T09:30:00.99999951-05:30", 2**64, 2**64 - 1, -(2**63) - 1])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@given(data=st.data())
@settings(max_examples=examples(400), deadline=None)
def test_any_value_in_any_field_decodes_alike(data: st.DataObject) -> None:
    """A record with random JSON values in random documented fields and links."""
    spec = data.draw(st.sampled_from(list(CATALOGUE.values())))
    raw = full_record(spec, native=True)
    for key in data.draw(st.lists(st.sampled_from([*raw, "links"]), max_size=4)):
        raw[key] = data.draw(JSON_VALUES)
    if data.draw(st.booleans()):
        raw["links"] = data.draw(st.dictionaries(st.sampled_from("abc"), JSON_VALUES, max_size=3))
    body = body_of(spec.name, [raw])
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(_fast_page, "_PAGES", {})
        fast, general = both_ways(spec.name, body, monkeypatch)
    assert fast == general


def test_without_msgspec_typed_pages_decode_the_general_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_fast_page, "HAVE_MSGSPEC", False)
    assert build("actions", DECODER_SPECS["actions"]) is None
    body = body_of("actions", [full_record(CATALOGUE["actions"], native=True)])
    assert _fast_page.fast_page("actions", DECODER_SPECS) is None
    assert page_outcome("actions", body)[0] == "page"


# -- timestamps: parse_timestamp reads whatever msgspec reads, the same way ----------------------

DATES = ["2024-03-01", "0001-01-01", "9999-12-31", "2024-02-29", "2023-02-29"]
TIMES = ["10:00:00", "23:59:59", "24:00:00", "10:00", "10:00:60", "1000"]
FRACTIONS = ["", ".1", ".123456", ".1234564", ".1234565", ".9999995", ".00000049999", ",5", "."]
OFFSETS = ["", "Z", "z", "+10:00", "-05:30", "+1000", "+10", "+10:00:30", "-00:00", "+24:00"]


def stamps() -> Iterator[str]:
    for day, sep, time, fraction, offset in itertools.product(
        DATES, "Tt _", TIMES, FRACTIONS, OFFSETS
    ):
        yield day + sep + time + fraction + offset


def msgspec_reads(text: str) -> datetime | None:
    try:
        return msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        return None


def same_instant_and_offset(text: str) -> bool:
    expected = msgspec_reads(text)
    if expected is None:
        return True  # msgspec refuses it: the page goes the general way, nothing to agree on
    try:
        got = parse_timestamp(text)
    except ValueError:
        return False
    return got == expected and got.utcoffset() == expected.utcoffset()


def test_parse_timestamp_agrees_with_msgspec_on_a_grid_of_forms() -> None:
    disagreements = [text for text in stamps() if not same_instant_and_offset(text)]
    assert disagreements == []


RFC3339ISH = (
    r"\d{4}-[01]\d-[0-3]\d[Tt ][0-2]\d:[0-5]\d:[0-6]\d(\.\d{1,12})?([Zz]|[+-][0-2]\d:?[0-5]\d)?"
)


@given(st.from_regex(RFC3339ISH, fullmatch=True))
@settings(max_examples=examples(2000), deadline=None)
def test_parse_timestamp_agrees_with_msgspec_on_generated_forms(text: str) -> None:
    assert same_instant_and_offset(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2024-03-01t09:30:00z", "2024-03-01T09:30:00+00:00"),
     ("2024-03-01T09:30:00.1234564+10:00", "2024-03-01T09:30:00.123456+10:00"),
     ("2024-03-01T09:30:00.1234565+10:00", "2024-03-01T09:30:00.123457+10:00"),
     ("2024-12-31T23:59:59.9999995Z", "2025-01-01T00:00:00+00:00"),
     ("2024-03-01T09:30:00+10:00", "2024-03-01T09:30:00+10:00")],
)  # fmt: skip
def test_parse_timestamp_rounds_beyond_microseconds_and_reads_lowercase(
    text: str, expected: str
) -> None:
    assert parse_timestamp(text).isoformat() == expected


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59.9999999Z", "soon", "2024-03-01T25:00:00"])
def test_parse_timestamp_refuses_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the decoders catch ValueError, whatever it says
        parse_timestamp(text)
