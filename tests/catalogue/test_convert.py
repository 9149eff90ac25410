"""Wire values to Python values and back: tables of cases for each converter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from actionstep_async import _generated
from actionstep_async._catalogue import CATALOGUE, ResourceSpec
from actionstep_async._convert import (
    to_bool,
    to_date,
    to_decimal,
    to_float,
    to_id,
    to_int,
    to_str,
    to_timestamp,
    typed_links,
    wire_value,
)
from actionstep_async._models import structure_record

from ._records import WIRE_FORMS, variants

AEST = timezone(timedelta(hours=10))


@pytest.mark.parametrize(
    ("convert", "value", "expected"),
    [
        (to_id, "533", 533), (to_id, 533, 533), (to_id, "14--54", "14--54"), (to_id, "007", "007"),
        (to_id, "0", "0"), (to_id, "12345678901234567890", "12345678901234567890"),
        (to_bool, "T", True), (to_bool, "F", False), (to_bool, None, None), (to_bool, True, True),
        (to_str, "x", "x"), (to_str, 5, "5"), (to_str, None, None),
        (to_int, "-4", -4), (to_int, 4, 4), (to_int, None, None),
        (to_float, "2.5", 2.5), (to_float, 2, 2.0), (to_float, 2.5, 2.5), (to_float, None, None),
        (to_decimal, "1.25", Decimal("1.25")), (to_decimal, 82.5, Decimal("82.5")),
        (to_decimal, 3, Decimal(3)), (to_decimal, None, None),
        (to_date, "2024-03-01", date(2024, 3, 1)), (to_date, "23-May-1987", date(1987, 5, 23)),
        (to_date, "2024-03-01T00:00:00+10:00", date(2024, 3, 1)), (to_date, None, None),
        (to_timestamp, "2024-03-01", date(2024, 3, 1)), (to_timestamp, None, None),
        (to_timestamp, "2024-03-01T09:30:00+10:00", datetime(2024, 3, 1, 9, 30, tzinfo=AEST)),
    ],
)  # fmt: skip
def test_converters_accept_the_wire_forms(
    convert: Callable[[object], object], value: object, expected: object
) -> None:
    """Each converter maps the forms Actionstep sends to one Python value."""
    assert convert(value) == expected
    assert type(convert(value)) is type(expected)


@pytest.mark.parametrize(
    ("convert", "value"),
    [
        (to_id, ""), (to_id, None), (to_id, True), (to_id, 1.5),
        (to_bool, "Y"), (to_bool, 1), (to_str, [1]), (to_str, True),
        (to_int, "1.5"), (to_int, True), (to_float, "x"), (to_float, True),
        (to_decimal, "lots"), (to_decimal, "NaN"), (to_decimal, True), (to_decimal, [1]),
        (to_date, "32-May-1987"), (to_date, "23-Foo-1987"), (to_date, 5), (to_date, "soon"),
        (to_timestamp, 5), (to_timestamp, "yesterday at noon"),
    ],
)  # fmt: skip
def test_converters_refuse_other_values(convert: Callable[[object], object], value: object) -> None:
    """Anything else is a ValueError, which the decoder turns into a named field error."""
    with pytest.raises(ValueError):  # noqa: PT011 - the reason text varies by converter
        convert(value)


def test_links_become_typed_ids_and_wire_values_round_trip() -> None:
    """Link ids convert (lists stay lists); wire_value gives T/F, ISO strings and lists."""
    assert typed_links({"a": "5", "b": ["6", "x--1"], "c": None, "d": 7}) == {
        "a": 5,
        "b": [6, "x--1"],
        "c": None,
        "d": 7,
    }
    assert typed_links(None) == {}
    assert typed_links({"a": ["7", 8], "b": ["7"]}) == {"a": [7, 8], "b": [7]}
    for bad in (["1", None], [{"id": 1}], [True]):
        with pytest.raises(ValueError, match="id"):
            typed_links({"a": bad})
    with pytest.raises(ValueError, match="links"):
        typed_links(["x"])
    assert wire_value(True) == "T"
    assert wire_value(False) == "F"
    assert wire_value(Decimal("1.50")) == "1.50"
    assert wire_value(date(2024, 3, 1)) == "2024-03-01"
    assert wire_value((1, True)) == [1, "T"]
    assert wire_value("x") == "x"


def _reference(spec: ResourceSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """The decode the compiled decoders must match: each field through its explaining converter."""
    plan = getattr(_generated, f"_PLAN_{spec.name.upper()}")
    values: dict[str, Any] = {"id": to_id(raw["id"]) if "id" in raw else None}
    for attr, wire, _, _, convert in plan:
        values[attr] = convert(raw.get(wire))
    values["links"] = typed_links(raw.get("links"))
    known = {field.wire for field in spec.fields} | {"links"}
    values["extra"] = {key: value for key, value in raw.items() if key not in known}
    return values


@pytest.mark.parametrize("spec", [pytest.param(s, id=n) for n, s in CATALOGUE.items()])
@pytest.mark.parametrize("form", [0, 1, 2, None])
def test_compiled_decoders_match_the_field_by_field_decode(
    spec: ResourceSpec, form: int | None
) -> None:
    """Every model's compiled decoder gives what its plan's converters give, field by field:
    wire forms, already-typed values, absent fields, unknown fields and links."""
    raw: dict[str, Any] = {"id": "12"} if any(f.wire == "id" for f in spec.fields) else {}
    for field in spec.fields:
        if field.wire == "id" or form is None:
            continue
        forms = WIRE_FORMS.get(field.kind) or field.enum
        raw[field.wire] = forms[form % len(forms)]
    raw["links"] = {"a": "5", "b": ["6", "x--1"], "c": None}
    raw["undocumentedField"] = [1]
    record = structure_record(spec.name, raw, typed=True)
    assert type(record) is spec.model
    assert {**vars(record), "extra": dict(vars(record)["extra"])} == _reference(spec, raw)


def _outcome(decode: Callable[[Any], object], raw: object) -> tuple[str, object]:
    try:
        record = decode(raw)
    except _generated.DecodeError as exc:
        return "error", (str(exc), exc.__cause__ is not None)
    return "record", {**vars(record), "extra": dict(vars(record)["extra"])}


@pytest.mark.parametrize("spec", [pytest.param(s, id=n) for n, s in CATALOGUE.items()])
def test_full_record_path_decodes_as_the_general_path(spec: ResourceSpec) -> None:
    """The full-record fast path (subscripts, a length test for unknown fields) gives the same
    record, or the same error naming the same field, as the general decoder on every near miss."""
    decode = _generated.STRUCTURERS[spec.name]
    general = decode.__globals__["general"]
    assert decode is not general  # every model has the fast path (its plan covers its fields)
    for label, raw in variants(spec):
        assert _outcome(decode, raw) == _outcome(general, raw), label
    for other in (None, [1] * 40, "x" * 40, {str(n): n for n in range(40)}):
        assert _outcome(decode, other) == _outcome(general, other)
