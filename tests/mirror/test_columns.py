"""The column mapping: kinds to SQL types, wire values to column values, names."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Numeric, Text, create_engine
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from actionstep_async._catalogue import CATALOGUE, FieldKind
from actionstep_async.mirror import sql_type
from actionstep_async.mirror._columns import (
    DecimalText,
    column_value,
    plan_columns,
    snake_case,
    unknown_column,
)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("int", BigInteger),
        ("str", Text),
        ("bool", Boolean),
        ("decimal", Numeric),
        ("float", Float),
        ("date", Date),
        ("datetime", DateTime),
        ("enum", Text),
        ("link", Text),
    ],
)
def test_sql_type_per_kind(kind: FieldKind, expected: type) -> None:
    assert isinstance(sql_type(kind), expected)


def test_datetimes_keep_their_zone_and_decimals_stay_exact_on_sqlite() -> None:
    moment = sql_type("datetime")
    assert isinstance(moment, DateTime)
    assert moment.timezone
    money = sql_type("decimal")
    assert isinstance(money.dialect_impl(SQLiteDialect()), DecimalText)
    assert isinstance(
        money.dialect_impl(create_engine("postgresql+asyncpg://u@h/db").dialect), Numeric
    )


AEST_NOON = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "wire", "expected"),
    [
        ("int", 7, 7),
        ("int", "42", 42),
        ("int", "-3", -3),
        ("int", "4.5", None),
        ("int", True, None),
        ("int", "", None),
        ("str", "Smith v Jones", "Smith v Jones"),
        ("str", "", ""),
        ("str", 12, "12"),
        ("str", {"a": 1}, '{"a":1}'),
        ("enum", "NotInTheList", "NotInTheList"),
        ("bool", "T", True),
        ("bool", "F", False),
        ("bool", True, True),
        ("bool", "maybe", None),
        ("decimal", "1234.50", Decimal("1234.50")),
        ("decimal", 3, Decimal(3)),
        ("decimal", "NaN", None),
        ("decimal", "abc", None),
        ("float", "2.5", 2.5),
        ("date", "2024-03-01", date(2024, 3, 1)),
        ("date", "2024-03-01T12:00:00+10:00", date(2024, 3, 1)),
        ("date", "soon", None),
        ("datetime", "2024-03-01T12:00:00+10:00", AEST_NOON),
        ("datetime", "2024-03-01T02:00:00", AEST_NOON),
        ("datetime", "yesterday", None),
        ("link", "12", "12"),
        ("link", "3--2", "3--2"),
        ("link", ["1", "2"], "1,2"),
        ("link", [], ""),
        ("int", None, None),
        ("link", None, None),
    ],
)
def test_column_value(kind: FieldKind, wire: Any, expected: Any) -> None:
    assert column_value(kind, wire) == expected


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("isBillableOverride", "is_billable_override"),
        ("phone1Number", "phone1_number"),
        ("URLValue", "url_value"),
        ("name", "name"),
        ("9lives", "f_9lives"),
        ("odd-name!", "odd_name_"),
        ("x" * 80, "x" * 63),
    ],
)
def test_snake_case(wire: str, expected: str) -> None:
    assert snake_case(wire) == expected


def test_plan_names_fields_by_attribute_and_links_with_an_id_suffix() -> None:
    plan = plan_columns(CATALOGUE["actions"])
    assert plan.id_kind == "int"
    assert ("is_billable_override", "isBillableOverride", "bool") in plan.fields
    assert ("action_type_id", "actionType", "link") in plan.links
    assert plan.names()[0] == "id"
    assert len(plan.names()) == len(set(plan.names()))


@pytest.mark.parametrize(
    ("wire", "taken", "expected"),
    [
        ("matterColour", set(), "matter_colour"),
        ("matterColour", {"matter_colour"}, None),
        ("_record", set(), None),
        ("links", set(), None),
        ("id", set(), None),
    ],
)
def test_unknown_column(wire: str, taken: set[str], expected: str | None) -> None:
    assert unknown_column(wire, taken) == expected
