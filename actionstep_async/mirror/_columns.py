"""From catalogue fields to SQL columns and values: pure functions, no I/O.

Every decision about a column (its name, its SQL type, how a wire value becomes a column value)
lives here so it can be tested with tables of cases. Values that do not convert become NULL in
their typed column; the JSON column keeps them exactly as sent, so nothing is ever lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs
from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Float, Numeric, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from .._catalogue import FieldKind, ResourceSpec

__all__ = [
    "RECORD_COLUMN",
    "RESERVED",
    "REVISION_COLUMN",
    "ColumnPlan",
    "column_value",
    "converter",
    "json_type",
    "plan_columns",
    "snake_case",
    "sql_type",
    "unknown_column",
]

RECORD_COLUMN: Final = "_record"
"""Every field exactly as the API sent it, unknown ones and links included."""
REVISION_COLUMN: Final = "_revision"
"""How many times the row was written: 1 after the first load, +1 per real change."""
RESERVED: Final = frozenset({RECORD_COLUMN, REVISION_COLUMN})

_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_UNSAFE: Final = re.compile(r"[^a-z0-9_]")
_MAX_NAME: Final = 63  # PostgreSQL truncates identifiers beyond this


def snake_case(wire: str) -> str:
    """``isBillableOverride`` -> ``is_billable_override``; anything odd becomes ``_``."""
    name = _UNSAFE.sub("_", _CAMEL.sub("_", wire).lower())
    if not name or name[0].isdigit():
        name = f"f_{name}"
    return name[:_MAX_NAME]


class DecimalText(TypeDecorator[Decimal]):
    """Exact decimals on SQLite, as their text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def sql_type(kind: FieldKind) -> TypeEngine[Any]:
    """The column type for a catalogue field kind.

    Enums are text (a value the catalogue does not list must still load); link ids are text
    (composite ids such as ``12--3`` exist, and a list link is stored as a comma list).
    Decimals keep their exact digits: NUMERIC on PostgreSQL, the decimal text on SQLite (whose
    NUMERIC is a float and would round money).
    """
    if kind == "int":
        return BigInteger()
    if kind == "bool":
        return Boolean()
    if kind == "decimal":
        return Numeric(asdecimal=True).with_variant(DecimalText(), "sqlite")
    if kind == "float":
        return Float()
    if kind == "date":
        return Date()
    if kind == "datetime":
        return DateTime(timezone=True)
    return Text()


def json_type() -> TypeEngine[Any]:
    """JSONB on PostgreSQL: it has equality, which the unchanged-row check relies on."""
    return JSON().with_variant(JSONB(), "postgresql")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"T": True, "F": False, "true": True, "false": False}.get(str(value))


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() and len(text) < 19 else None


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _datetime(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # Stored in UTC: SQLite keeps no offset, and the organisation's offset is still in the JSON.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _link(value: object) -> str | None:
    if isinstance(value, list):
        return ",".join(str(item) for item in value if item is not None)
    return str(value)


def _float(value: object) -> float | None:
    number = _decimal(value)
    return None if number is None else float(number)


_CONVERT: Final[Mapping[str, Callable[[object], Any]]] = {
    "int": _int,
    "bool": _bool,
    "decimal": _decimal,
    "float": _float,
    "date": _date,
    "datetime": _datetime,
    "link": _link,
    "str": _text,
    "enum": _text,
}
_TEXT_KINDS: Final = frozenset({"str", "enum"})


def converter(kind: FieldKind) -> Callable[[object], Any]:
    """:func:`column_value` for one kind, resolved once (the write path calls it per field)."""
    convert = _CONVERT[kind]
    if kind in _TEXT_KINDS:
        return lambda value: None if value is None else convert(value)
    return lambda value: None if value is None or value == "" else convert(value)


def column_value(kind: FieldKind, value: object) -> Any:
    """A wire value as the column of ``kind`` stores it; None when it does not convert."""
    if value is None or (value == "" and kind not in _TEXT_KINDS):
        return None
    return _CONVERT[kind](value)


@attrs.frozen
class ColumnPlan:
    """The typed columns of one resource's table: (column name, wire name, kind)."""

    id_kind: FieldKind
    fields: tuple[tuple[str, str, FieldKind], ...]
    links: tuple[tuple[str, str, FieldKind], ...]

    def names(self) -> list[str]:
        return ["id", *(c for c, _, _ in self.fields), *(c for c, _, _ in self.links)]


def plan_columns(spec: ResourceSpec) -> ColumnPlan:
    """Column names for a resource: fields by their snake_case attribute, links as ``<attr>_id``.

    A name that would collide with one already taken (or a reserved one) is skipped: the value
    is still in the JSON column.
    """
    taken = set(RESERVED) | {"id"}
    id_kind: FieldKind = "int"
    fields: list[tuple[str, str, FieldKind]] = []
    for field in spec.fields:
        if field.wire == "id":
            id_kind = "int" if field.kind == "int" else "str"
            continue
        name = snake_case(field.attr)
        if name not in taken:
            taken.add(name)
            fields.append((name, field.wire, field.kind))
    links: list[tuple[str, str, FieldKind]] = []
    for link in spec.links:
        name = snake_case(f"{link.attr}_id")
        if name not in taken:
            taken.add(name)
            links.append((name, link.wire, "link"))
    return ColumnPlan(id_kind, tuple(fields), tuple(links))


def unknown_column(wire: str, taken: Iterable[str]) -> str | None:
    """The text column a field outside the catalogue gets, or None if its name is taken."""
    if wire in ("id", "links"):
        return None
    name = snake_case(wire)
    return None if name in set(taken) or name in RESERVED else name
