"""Wire values to Python values and back, one small function per kind of field.

The generated structure functions call these once per field, so they are written for speed: the
common case (the value already has the right type, or is ``None``) returns after one check.
Every decoder raises ValueError with a short reason; the caller adds the field name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, TypeAlias

__all__ = [
    "EMPTY",
    "Id",
    "Model",
    "Timestamp",
    "explain",
    "to_bool",
    "to_date",
    "to_decimal",
    "to_float",
    "to_id",
    "to_int",
    "to_mapping",
    "to_str",
    "to_timestamp",
    "wire_value",
]

Id: TypeAlias = int | str
"""A record id: an int for most resources, a string like ``"1024--31--11"`` for composite ones."""

Timestamp: TypeAlias = datetime | date
"""A timestamp with the organisation's offset, or a bare date when the server sends one."""

EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

_DIGITS: Final = re.compile(r"[1-9][0-9]{0,17}")
_BOOLS: Final[Mapping[object, bool]] = MappingProxyType({"T": True, "F": False})
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_DMY: Final = re.compile(r"(\d{1,2})-([A-Z][a-z]{2})-(\d{4})")


def to_id(value: object) -> Id:
    if type(value) is int:
        return value
    if isinstance(value, str) and value:
        # Numeric ids arrive as numbers or as strings depending on the resource; one form keeps
        # ``record.id == 5`` true either way. Composite ids (and "007") stay strings.
        return int(value) if _DIGITS.fullmatch(value) else value
    raise ValueError("expected an int or non-empty string id")


def to_bool(value: object) -> bool | None:
    if value is None or value is True or value is False:
        return value
    if type(value) is str:
        flag = _BOOLS.get(value)
        if flag is not None:
            return flag
    raise ValueError("expected 'T' or 'F'")


def to_str(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError("expected a string")


def to_int(value: object) -> int | None:
    if value is None or type(value) is int:
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise ValueError("expected an integer")


def to_float(value: object) -> float | None:
    if value is None or type(value) is float:
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError("expected a number")


def to_decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = Decimal(value if type(value) is not float else str(value))
        except InvalidOperation as exc:
            raise ValueError("expected a decimal number") from exc
        if number.is_finite():
            return number
    raise ValueError("expected a decimal number")


def to_timestamp(value: object) -> Timestamp | None:
    if value is None:
        return None
    if type(value) is str:
        if len(value) > 10:
            return datetime.fromisoformat(value)
        return to_date(value)
    raise ValueError("expected an ISO 8601 timestamp")


def to_date(value: object) -> date | None:
    """``2024-03-01``, or the ``23-May-1987`` form some date fields use."""
    if value is None:
        return None
    if type(value) is str:
        if len(value) == 10 and value[4] == "-":
            return date.fromisoformat(value)
        if len(value) > 10 and value[4] == "-" and value[10] == "T":
            return date.fromisoformat(value[:10])  # a date sent with a midnight time part
        match = _DMY.fullmatch(value)
        if match is not None and match[2] in _MONTHS:
            return date(int(match[3]), _MONTHS[match[2]], int(match[1]))
    raise ValueError("expected a date")


def to_mapping(value: object) -> Mapping[str, Any]:
    if value is None:
        return EMPTY
    if type(value) is dict:
        return MappingProxyType(value)
    raise ValueError("expected an object")


def wire_value(value: object) -> object:
    """A Python value as Actionstep expects it in a request body."""
    if value is True:
        return "T"
    if value is False:
        return "F"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return [wire_value(item) for item in value]
    return value


class Model:
    """The base of every typed model: ``id``, typed ``links`` and ``extra`` for unknown fields.

    Subclasses are frozen attrs classes; this class only gives them a common name for typing
    (``Page[Model]``, ``isinstance(record, Model)``).
    """

    __slots__ = ()

    id: Id | None
    """None only for the few lookup lists whose records have no id (``culturalidentity``)."""
    extra: Mapping[str, Any]

    @property
    def wire_links(self) -> Mapping[str, Any]:
        """The links as a plain mapping (for code that handles any model)."""
        links: Mapping[str, Any] = getattr(self, "links", EMPTY)
        return links


Converter: TypeAlias = Callable[[object], object]


def explain(resource: str, raw: object, fields: Sequence[tuple[str, str, Converter]]) -> str:
    """Why ``raw`` does not decode: the first field whose converter refuses its value."""
    if not isinstance(raw, dict):
        return "expected an object"
    problems = []
    for wire, attr, convert in fields:
        try:
            convert(raw.get(wire))
        except (ValueError, TypeError) as exc:
            problems.append(f"{attr} ({wire}): {_short(str(exc))}")
    links = raw.get("links")
    if links is not None and not isinstance(links, dict):
        problems.append("links: expected an object")
    return _short("; ".join(problems), 600) or "unexpected value"


def _short(text: str, limit: int = 160) -> str:
    # Values can be huge (a 200 kB string in a timestamp field); errors quote only the start.
    return text if len(text) <= limit else text[: limit - 3] + "..."
