"""Query strings for Actionstep list requests: filters, include, fields, sort and paging.

Everything is validated before a request is built, so a typo or hostile value is an
:class:`InvalidRequestError` here rather than a confusing 400 (or a silently different query)
from the server. The API is case-sensitive and names are camelCase; ``_`` only introduces an
operator suffix (``name_ilike``), which is also how the server reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final, TypeAlias
from urllib.parse import quote

import attrs

from ._errors import InvalidRequestError

__all__ = [
    "MAX_PAGE_SIZE",
    "OPERATORS",
    "F",
    "FieldsArg",
    "Filter",
    "FilterValue",
    "FiltersArg",
    "Names",
    "NamesByResource",
    "build_query",
    "encode_filters",
    "plain_page_query",
]

OPERATORS: Final = frozenset(
    {"eq", "nteq", "lt", "lteq", "gt", "gteq", "like", "ilike", "ntlike", "ntilike", "in", "ntin"}
)
_LIST_OPERATORS: Final = frozenset({"in", "ntin"})
MAX_PAGE_SIZE: Final = 200
NULL: Final = ":NULL"

_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_FIELD: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED: Final = frozenset({"page", "pageSize", "include", "fields", "sort"})
_MAX_VALUE: Final = 2048

Scalar: TypeAlias = str | int | float | Decimal | bool | date | None
FilterValue: TypeAlias = Scalar | Sequence[Scalar]
FiltersArg: TypeAlias = "Mapping[str, object] | Iterable[Filter] | None"
"""A mapping such as ``{"name_ilike": "*smith*", "id_in": [1, 2]}``, or ``F(...)`` filters."""
Names: TypeAlias = "list[str] | tuple[str, ...]"
"""Field, include or sort names: a list or tuple, never a bare ``str`` (which is a sequence of
letters, and a classic mistake the type checker now catches)."""
NamesByResource: TypeAlias = "Mapping[str, list[str] | tuple[str, ...]]"
FieldsArg: TypeAlias = "Names | NamesByResource | None"


def _scalar(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, datetime):
        # The server reads timestamps without an offset as UTC, so aware values are converted.
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="seconds")
    if isinstance(value, int) and value.bit_length() > 200:
        raise InvalidRequestError("filter value is an int too large for any Actionstep field")
    if isinstance(value, date | int | Decimal):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidRequestError("filter values must be finite numbers")
        return repr(value)
    if isinstance(value, str):
        if len(value) > _MAX_VALUE:
            raise InvalidRequestError(f"filter value longer than {_MAX_VALUE} characters")
        if value.strip().upper() == NULL:
            # On the wire the two are the same text: refused so a string never silently means null.
            raise InvalidRequestError("the string ':NULL' would match null; pass None for that")
        return value
    raise InvalidRequestError(f"unsupported filter value type {type(value).__name__}")


def _value(op: str, value: object) -> str:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        if op in _LIST_OPERATORS:
            return _scalar(value)
        if value is None and op not in ("eq", "nteq"):
            raise InvalidRequestError(f"operator {op!r} cannot compare with null")
        return _scalar(value)
    if op not in _LIST_OPERATORS:
        raise InvalidRequestError(f"a list value needs the 'in' or 'ntin' operator, not {op!r}")
    items = [_scalar(item) for item in value]
    if not items:
        raise InvalidRequestError(f"operator {op!r} needs at least one value")
    if any("," in item for item in items):
        # The list is sent comma-joined; a comma inside an item would split it.
        raise InvalidRequestError("values of an 'in' list cannot contain commas")
    return ",".join(items)


@attrs.frozen
class Filter:
    """One ``key=value`` filter parameter, already validated; build it with :class:`F`."""

    key: str
    value: str


class F:
    """A filter builder: ``F("name").ilike("*smith*")``, ``F("action", "actionType").eq(5)``.

    Several names form a path through links: ``F("action", "actionType").eq(5)`` becomes
    ``action[actionType]=5``. Each method returns a :class:`Filter` for ``filters=[...]``.
    """

    __slots__ = ("path",)

    def __init__(self, *path: str) -> None:
        if not path:
            raise InvalidRequestError("F() needs at least one field name")
        for name in path:
            _check_name(name, what="filter field")
        self.path: tuple[str, ...] = path

    def __repr__(self) -> str:
        return f"F({', '.join(map(repr, self.path))})"

    def _make(self, op: str, value: object) -> Filter:
        head, *rest = self.path
        suffix = "" if op == "eq" else f"_{op}"
        key = head + "".join(f"[{name}]" for name in rest)
        key = key[:-1] + suffix + "]" if rest else key + suffix
        return Filter(key, _value(op, value))

    def eq(self, value: Scalar) -> Filter:
        """Equal (the server's default comparison)."""
        return self._make("eq", value)

    def nteq(self, value: Scalar) -> Filter:
        """Not equal."""
        return self._make("nteq", value)

    def lt(self, value: Scalar) -> Filter:
        """Less than."""
        return self._make("lt", value)

    def lteq(self, value: Scalar) -> Filter:
        """Less than or equal."""
        return self._make("lteq", value)

    def gt(self, value: Scalar) -> Filter:
        """Greater than."""
        return self._make("gt", value)

    def gteq(self, value: Scalar) -> Filter:
        """Greater than or equal."""
        return self._make("gteq", value)

    def like(self, pattern: str) -> Filter:
        """Case-sensitive match with ``*`` wildcards."""
        return self._make("like", pattern)

    def ilike(self, pattern: str) -> Filter:
        """Case-insensitive match with ``*`` wildcards."""
        return self._make("ilike", pattern)

    def ntlike(self, pattern: str) -> Filter:
        """Negated :meth:`like`."""
        return self._make("ntlike", pattern)

    def ntilike(self, pattern: str) -> Filter:
        """Negated :meth:`ilike`."""
        return self._make("ntilike", pattern)

    def in_(self, values: Iterable[Scalar]) -> Filter:
        """Any of ``values`` (``None`` matches null)."""
        return self._make("in", values)

    def ntin(self, values: Iterable[Scalar]) -> Filter:
        """None of ``values``."""
        return self._make("ntin", values)


def _shown(text: object) -> str:
    return repr(text) if isinstance(text, str) and len(text) <= 80 else "(too long to show)"


def _check_name(name: object, *, what: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise InvalidRequestError(
            f"invalid {what} {_shown(name)}: use letters and digits, starting with a letter"
        )
    return name


def _filter_from_item(key: object, value: object) -> Filter:
    if not isinstance(key, str):
        raise InvalidRequestError("filter keys must be strings")
    if key in _RESERVED:
        raise InvalidRequestError(f"{key!r} is a query option, not a filter; use its argument")
    names = [key]
    if "[" in key:
        head, _, rest = key.partition("[")
        if not rest.endswith("]"):
            raise InvalidRequestError(f"invalid filter {_shown(key)}: unbalanced brackets")
        names = [head, *rest[:-1].split("][")]
    names[-1], sep, op = names[-1].partition("_")
    for name in names:
        _check_name(name, what="filter field")
    if not sep:
        op = "eq"
    elif op not in OPERATORS:
        raise InvalidRequestError(
            f"unknown filter operator {_shown(op)} in {_shown(key)};"
            f" use one of {', '.join(sorted(OPERATORS))}"
        )
    return Filter(key, _value(op, value))


def encode_filters(filters: FiltersArg) -> list[Filter]:
    """Validate filters given as a mapping (``{"name_ilike": "*x*"}``) or as :class:`Filter`s."""
    if filters is None:
        return []
    if isinstance(filters, Mapping):
        return [_filter_from_item(key, value) for key, value in filters.items()]
    given: object = filters  # callers without a type checker pass anything
    if isinstance(given, Filter):
        raise InvalidRequestError("filters takes a list of F(...) filters: filters=[F(...)]")
    if isinstance(given, str | bytes) or not isinstance(given, Iterable):
        raise InvalidRequestError(
            f"filters must be a mapping or a list of F(...) filters, not {type(given).__name__}"
        )
    result: list[Filter] = []
    for item in filters:
        if not isinstance(item, Filter):
            raise InvalidRequestError("filters must be a mapping or Filter objects from F(...)")
        result.append(item)
    return result


def _names(items: object, *, what: str, pattern: re.Pattern[str] = _FIELD) -> list[str]:
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise InvalidRequestError(f"{what} must be a list of names, not a single string")
    names = list(items)
    if not names:
        raise InvalidRequestError(f"{what} must not be empty")
    return [_check_name(name, what=what[:-1], pattern=pattern) for name in names]


_INCLUDE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_SORT: Final = re.compile(r"-?[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_FIELD_OR_DEFAULT: Final = re.compile(r":default|[A-Za-z][A-Za-z0-9_]*")
_RESOURCE_KEY: Final = re.compile(r"[a-z][a-z0-9]*")


def _fields(fields: FieldsArg) -> list[tuple[str, str]]:
    if fields is None:
        return []
    if isinstance(fields, Mapping):
        if not fields:
            raise InvalidRequestError("fields must not be empty")
        pairs = []
        for resource, names in fields.items():
            _check_name(resource, what="fields resource", pattern=_RESOURCE_KEY)
            listed = _names(names, what="fields", pattern=_FIELD_OR_DEFAULT)
            pairs.append((f"fields[{resource}]", ",".join(listed)))
        return pairs
    return [("fields", ",".join(_names(fields, what="fields", pattern=_FIELD_OR_DEFAULT)))]


def _int(name: str, value: object, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an int")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequestError(f"{name} must be {bound}, got {value}")
    return value


def _quote(text: str) -> str:
    # Wildcards, commas and colons are part of the query language; keep them readable.
    return quote(text, safe="*,:-._~")


def plain_page_query(page: object, page_size: object) -> str | None:
    """What ``build_query(page=page, page_size=page_size)`` gives when both are plain ints in
    range (the list hot path, without the checks' calls); None when the checks must look."""
    if (
        type(page) is int
        and type(page_size) is int
        and page >= 1
        and 1 <= page_size <= MAX_PAGE_SIZE
    ):
        return f"page={page}&pageSize={page_size}"
    return None


def build_query(
    *,
    filters: FiltersArg = None,
    include: Sequence[str] | None = None,
    fields: FieldsArg = None,
    sort: Sequence[str] | None = None,
    page: int | None = None,
    page_size: int | None = None,
) -> str:
    """The encoded query string (without ``?``), ready to append to a resource URL."""
    if filters is None and include is None and fields is None and sort is None:
        # A plain page request (the list hot path): digits need no quoting.
        quick = plain_page_query(page, page_size)
        if quick is not None:
            return quick
        plain = []
        if page is not None:
            plain.append(f"page={int(_int('page', page, 1, None))}")
        if page_size is not None:
            plain.append(f"pageSize={int(_int('page_size', page_size, 1, MAX_PAGE_SIZE))}")
        return "&".join(plain)
    pairs: list[tuple[str, str]] = [(f.key, f.value) for f in encode_filters(filters)]
    if include is not None:
        pairs.append(("include", ",".join(_names(include, what="includes", pattern=_INCLUDE))))
    pairs.extend(_fields(fields))
    if sort is not None:
        pairs.append(("sort", ",".join(_names(sort, what="sort keys", pattern=_SORT))))
    if page is not None:
        pairs.append(("page", str(_int("page", page, 1, None))))
    if page_size is not None:
        pairs.append(("pageSize", str(_int("page_size", page_size, 1, MAX_PAGE_SIZE))))
    # Keys are validated to letters, digits, _ and [] so they need no escaping.
    return "&".join(f"{key}={_quote(value)}" for key, value in pairs)
