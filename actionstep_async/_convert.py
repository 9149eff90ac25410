"""Wire values to Python values and back, one small function per kind of field.

The generated structure functions call these once per field, so they are written for speed: the
common case (the value already has the right type, or is ``None``) returns after one check.
Every decoder raises ValueError with a short reason; the caller adds the field name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeAlias, TypeVar

__all__ = [
    "DECODER_SPECS",
    "EMPTY",
    "ID_CACHE",
    "DecoderSpec",
    "Id",
    "Model",
    "Timestamp",
    "cached_id",
    "compile_decoder",
    "explain",
    "fast_bool",
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
M = TypeVar("M")

_BOOLS: Final[Mapping[object, bool]] = MappingProxyType({"T": True, "F": False})
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_DMY: Final = re.compile(r"(\d{1,2})-([A-Z][a-z]{2})-(\d{4})")


def to_id(value: object) -> Id:
    if type(value) is str and value:
        # Numeric ids arrive as numbers or as strings depending on the resource; one form keeps
        # ``record.id == 5`` true either way. Composite ids (and "007") stay strings. (isdigit
        # and a length check are several times faster than a regex on the decode path.)
        if value.isdigit() and value[0] != "0" and len(value) < 19 and value.isascii():
            return int(value)
        return value
    if type(value) is int:
        return value
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


_fromisoformat = datetime.fromisoformat
_FRACTION: Final = re.compile(r"(\.\d{6})(\d+)")
_MICROSECOND: Final = timedelta(microseconds=1)


def parse_timestamp(text: str) -> datetime:
    """``datetime.fromisoformat``, reading the two RFC 3339 forms it does not as msgspec does, so
    a page decodes alike on either path: a lowercase ``t``/``z``, and digits beyond
    microseconds (rounded half up on the seventh, as msgspec does; 3.11 would truncate)."""
    long = _FRACTION.search(text)
    if long is not None:
        truncated = parse_timestamp(text[: long.end(1)] + text[long.end(2) :])
        if long[2][0] < "5":
            return truncated
        try:
            return truncated + _MICROSECOND
        except OverflowError:
            raise ValueError("timestamp out of range") from None
    try:
        return _fromisoformat(text)
    except ValueError:
        upper = text.upper()
        if upper == text:
            raise
    return _fromisoformat(upper)


def to_timestamp(value: object) -> Timestamp | None:
    if type(value) is str:
        if len(value) > 10:
            return parse_timestamp(value)
        return to_date(value)
    if value is None:
        return None
    raise ValueError("expected an ISO 8601 timestamp")


BOOL_FLAGS: Final[Mapping[str, bool]] = {"T": True, "F": False}
fast_bool: Final = BOOL_FLAGS.__getitem__
"""The decode path's ``"T"``/``"F"`` converter (a C call); explain() uses to_bool for the reason."""


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


Converter: TypeAlias = Callable[[Any], object]
Plan: TypeAlias = Sequence[tuple[str, str, type, Converter, Converter]]
"""How to decode a model's fields: (attribute, wire name, type that needs no conversion, fast
converter, explaining converter). The generated module holds one plan per model."""


class _Never:
    """A type no wire value has: fields whose values always go through their converter."""


NEVER: Final = _Never
_new = object.__new__
_set = object.__setattr__


ID_CACHE: dict[object, Id] = {}
ID_CACHE_SIZE: Final = 65536


def cached_id(value: object) -> Id:
    # Link ids repeat across the records of a page (the same assignee, matter type, step), and a
    # dict hit is several times cheaper than converting again. Bounded: it stops growing, and
    # only hashable str/int values (the valid ones) are ever stored.
    found = ID_CACHE.get(value) if type(value) is str else None
    if found is None:
        found = to_id(value)
        if type(value) is str and len(ID_CACHE) < ID_CACHE_SIZE:
            ID_CACHE[value] = found
    return found


def typed_links(value: object) -> Any:
    """Link ids as typed ids (numeric strings become ints; lists stay lists)."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise ValueError("links: expected an object")
    # A cached id is never falsy (ints start at 1: "0" stays a string), so ``or`` falls back
    # only on a miss; a list is looked up with one C-level map and converted item by item only
    # when one of its ids is not cached yet (or is not a string: a miss too).
    get = ID_CACHE.get
    links: dict[str, Any] = {}
    for name, ids in value.items():
        if type(ids) is str:
            links[name] = get(ids) or cached_id(ids)
        elif type(ids) is list:
            try:
                found = list(map(get, ids))
            except TypeError:  # an unhashable item: cached_id refuses it below
                found = [None]
            links[name] = found if None not in found else [cached_id(item) for item in ids]
        else:
            links[name] = None if ids is None else to_id(ids)
    return links


def _extra(raw: dict[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    return MappingProxyType({k: raw[k] for k in raw.keys() - known})


def _field_code(
    index: int, wire: str, exact: type, convert: Converter, full: bool
) -> tuple[str, object]:
    """One field's expression in a compiled decoder (``v`` holds the wire value), and what its
    name ``c<index>`` stands for there. ``full``: the key is known to be present (subscript)."""
    table: object = getattr(convert, "__self__", None)
    target: object = convert
    if type(table) is dict and getattr(convert, "__name__", "") == "__getitem__":
        # A flag or enum table: subscripting it is cheaper than calling its bound __getitem__.
        converted, target = f"c{index}[v]", table
    elif convert is to_timestamp and full:
        # Most timestamps carry a time part and no fraction: parse those without a Python-level
        # call. Up to 26 characters there is no room for a seventh fractional digit, the one
        # form parse_timestamp reads differently from fromisoformat when both accept it. (A
        # non-string fails either way: len() or iso() raises, and so would the converter; so
        # does a lowercase "t", which the general path then reads.)
        converted = f"(iso(v) if 10 < len(v) < 27 else c{index}(v))"
    else:
        converted = f"c{index}(v)"
    get = f"(v := raw[{wire!r}])" if full else f"(v := get({wire!r}))"
    if exact is NEVER:
        return f"None if {get} is None else {converted}", target
    return f"v if {get} is None or type(v) is t{index} else {converted}", target


_CAUGHT: Final = "(KeyError, ValueError, TypeError, AttributeError)"


def _values_code(has_id: bool, plan: Plan, full: bool) -> tuple[list[str], dict[str, Any]]:
    """The dict display of a decoder's values, one line per field, and the names it uses."""
    names: dict[str, Any] = {}
    ident = "i if type(i := raw['id']) is int else to_id(i)" if has_id else "None"
    lines = ["        values = {", f"            'id': {ident},"]
    for index, (attr, wire, exact, convert, _) in enumerate(plan):
        code, names[f"c{index}"] = _field_code(index, wire, exact, convert, full)
        names[f"t{index}"] = exact
        lines.append(f"            {attr!r}: {code},")
    links = "raw['links']" if full else "get('links')"
    # On the full path every known key was found, so only a longer record has extra fields.
    extra = "len(raw) == size" if full else "raw.keys() <= known"
    lines += [
        f"            'links': links({links}),",
        f"            'extra': EMPTY if {extra} else extra(raw, known),",
        "        }",
    ]
    return lines, names


def _decoder_source(has_id: bool, plan: Plan, full: bool) -> tuple[str, dict[str, Any]]:
    general, names = _values_code(has_id, plan, False)
    lines = ["def general(raw):", "    try:", "        get = raw.get", *general]
    lines += [
        f"    except {_CAUGHT} as exc:",
        "        raise fail(resource, raw, has_id, plan) from exc",
        "    record = new(cls)",
        "    set(record, '__dict__', values)",
        "    return record",
    ]
    if not full:
        return "\n".join([*lines, "decode = general"]), names
    # Records usually carry every documented field (nulls included): then each key is a
    # subscript and the unknown-field check a length comparison. Anything unusual (a missing
    # key, a bad value) goes through the general decoder, which decodes it or names the field.
    fast, _ = _values_code(has_id, plan, True)
    lines += ["def decode(raw):", "    if type(raw) is dict and len(raw) >= size:", "        try:"]
    lines += ["    " + line for line in fast]
    lines += [
        f"        except {_CAUGHT}:",
        "            pass",
        "        else:",
        "            record = new(cls)",
        "            set(record, '__dict__', values)",
        "            return record",
        "    return general(raw)",
    ]
    return "\n".join(lines), names


class DecoderSpec(NamedTuple):
    """What a compiled decoder was made from, for other decoders of the same model."""

    cls: type[Model]
    has_id: bool
    plan: Plan
    known: frozenset[str]


DECODER_SPECS: Final[dict[str, DecoderSpec]] = {}
"""Every :func:`compile_decoder` call's model and plan, by resource (``_fast_page`` reads it)."""


def compile_decoder(
    cls: type[M],
    resource: str,
    has_id: bool,
    plan: Plan,
    known: frozenset[str],
    fail: Callable[[str, Any, bool, Plan], Exception],
) -> Callable[[Any], M]:
    """A decoder for ``cls`` specialised to its plan: the typed decode hot path.

    It decodes exactly as following the plan field by field would, written out as one
    expression per field (a dict lookup, a type check, a converter only when needed) so no loop
    or tuple unpacking runs per field; the instance is built by setting its ``__dict__`` at once
    (the models are frozen attrs classes; ``__init__`` would set each attribute separately).
    Any failure becomes ``fail(resource, raw, has_id, plan)``, which names the field that
    does not fit.
    """
    # The full-record path subscripts exactly the known keys; only then does a record of
    # len(known) keys that has them all have no others.
    subscripted = {wire for _, wire, *_ in plan} | {"links"} | ({"id"} if has_id else set())
    source, namespace = _decoder_source(has_id, plan, subscripted == known)
    namespace.update({
        "cls": cls, "new": _new, "set": _set, "iso": _fromisoformat, "to_id": to_id,
        "links": typed_links, "EMPTY": EMPTY, "known": known, "extra": _extra, "fail": fail,
        "resource": resource, "has_id": has_id, "plan": plan, "size": len(known),
    })  # fmt: skip
    exec(compile(source, f"<decoder of {cls.__qualname__}>", "exec"), namespace)
    decode: Callable[[Any], M] = namespace["decode"]
    if issubclass(cls, Model):
        DECODER_SPECS[resource] = DecoderSpec(cls, has_id, plan, known)
    return decode


def explain(resource: str, raw: object, has_id: bool, plan: Plan) -> str:
    """Why ``raw`` does not decode: every field whose converter refuses its value."""
    if not isinstance(raw, dict):
        return "expected an object"
    fields = [(wire, attr, convert) for attr, wire, _, _, convert in plan]
    if has_id:
        fields.insert(0, ("id", "id", to_id))
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
