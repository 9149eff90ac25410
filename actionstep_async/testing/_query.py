"""Actionstep's query language: filters, sort, fieldsets, includes and paging parameters.

Everything here is pure: parsing raises :class:`QueryError` (rendered as a 400 by the server) and
evaluation reaches other tables only through the small :class:`Resolver` protocol.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import attrs

from ._data import RawRecord, ResourceSchema

__all__ = [
    "OPERATORS",
    "Query",
    "QueryError",
    "QueryFilter",
    "Resolver",
    "link_ids",
    "parse_query",
    "project",
    "sort_records",
]

OPERATORS: Final = (
    "eq", "nteq", "lt", "lteq", "gt", "gteq", "like", "ilike", "ntlike", "ntilike", "in", "ntin",
)  # fmt: skip
_NEGATED: Final = frozenset({"nteq", "ntlike", "ntilike", "ntin"})
_POSITIVE: Final = {"nteq": "eq", "ntlike": "like", "ntilike": "ilike", "ntin": "in"}
_NULL: Final = ":NULL"
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
_RESERVED: Final = frozenset({"page", "pageSize", "include", "fields", "sort"})
_KEY: Final = re.compile(r"([A-Za-z][A-Za-z0-9_]*)((?:\[[A-Za-z][A-Za-z0-9_]*\])*)")
_SEGMENT: Final = re.compile(r"\[([^\]]+)\]")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


class QueryError(ValueError):
    """A query parameter the real API would reject with 400."""


class Resolver(Protocol):
    """How query evaluation reaches the tables a link points into."""

    def schema(self, resource: str) -> ResourceSchema: ...

    def lookup(self, resource: str, ids: Iterable[str]) -> list[RawRecord]: ...


def link_ids(value: object) -> list[str]:
    """The ids a link value names: link values are a string, a list of strings or null."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value if item is not None]
    return [str(value)]


def _coerce(value: object) -> tuple[int, Any]:
    """A comparable form: numbers (and numeric strings such as "1.50") compare as numbers, ISO
    dates as aware datetimes (naive ones are UTC, as the real server treats them), else text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 1, float(value)
    text = str(value)
    try:
        return 1, float(text)
    except ValueError:
        pass
    if _DATE.match(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return 3, text
        return 2, moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return 3, text


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@attrs.frozen
class QueryFilter:
    """One ``field_op=value`` filter, possibly through links: ``action[actionType][name_ilike]``."""

    path: tuple[str, ...]
    field: str
    op: str
    value: str
    _raw: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)
    _items: tuple[tuple[int, Any], ...] = attrs.field(init=False, eq=False, repr=False)
    _pattern: re.Pattern[str] | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        base = _POSITIVE.get(self.op, self.op)
        raw = tuple(self.value.split(",")) if base == "in" else (self.value,)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_items", tuple(_coerce(item) for item in raw))
        pattern = None
        if base in ("like", "ilike"):
            pattern = _wildcard(self.value, ignore_case=base == "ilike")
        object.__setattr__(self, "_pattern", pattern)

    @classmethod
    def parse(cls, key: str, value: str) -> QueryFilter:
        match = _KEY.fullmatch(key)
        if match is None:
            raise QueryError(f"Unsupported filter parameter '{key}'")
        segments = [match.group(1), *_SEGMENT.findall(match.group(2))]
        head, sep, op = segments[-1].rpartition("_")
        if sep and head and op in OPERATORS:
            field = head
        else:
            field = segments[-1]
            # A bare field=a,b,c is an IN list (the demo app filters on `action=1,2,3`).
            op = "in" if "," in value else "eq"
        return cls(tuple(segments[:-1]), field, op, value)

    def _test(self, value: object) -> bool:
        """The operator without negation, for one scalar value."""
        base = _POSITIVE.get(self.op, self.op)
        if self._pattern is not None:
            return value is not None and self._pattern.fullmatch(str(value)) is not None
        if base in ("eq", "in"):
            return any(
                _equal(value, item, raw) for item, raw in zip(self._items, self._raw, strict=True)
            )
        if value is None:
            return False
        left, right = _coerce(value), self._items[0]
        if left[0] != right[0]:
            left, right = (3, str(value)), (3, self.value)
        if base == "lt":
            return bool(left[1] < right[1])
        if base == "lteq":
            return bool(left[1] <= right[1])
        if base == "gt":
            return bool(left[1] > right[1])
        return bool(left[1] >= right[1])

    def matches_value(self, value: object) -> bool:
        """Lists (such as ``primaryParticipants``) match when any element does."""
        values = value if isinstance(value, list) else [value]
        hit = any(self._test(item) for item in values) if values else self._test(None)
        return not hit if self.op in _NEGATED else hit


def _equal(value: object, item: tuple[int, Any], raw: str) -> bool:
    if raw == _NULL:
        return value is None or value == ""
    if value is None:
        return False
    left = _coerce(value)
    if left[0] == item[0] and left[0] != 3:
        return bool(left[1] == item[1])
    return str(value) == raw


def field_value(record: RawRecord, field: str) -> object:
    """A record attribute, falling back to a link of that name (filters treat links as fields)."""
    if field in record and field != "links":
        return record[field]
    links = record.get("links")
    if isinstance(links, dict):
        return links.get(field)
    return None


@attrs.frozen
class Include:
    """A dotted include path such as ``action.assignedTo``."""

    path: tuple[str, ...]


@attrs.frozen
class Query:
    """Everything a GET can ask for, parsed and validated against the resource's schema."""

    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    filters: tuple[QueryFilter, ...] = ()
    sort: tuple[tuple[str, bool], ...] = ()
    fields: Mapping[str, frozenset[str] | None] = attrs.field(factory=dict)
    includes: tuple[Include, ...] = ()

    @property
    def plain(self) -> bool:
        """True when the page is a straight slice of the table in id order."""
        return not self.filters and not self.sort


def _positive_int(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise QueryError(f"'{name}' must be a positive integer")
    return int(text)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_query(resource: str, params: Iterable[tuple[str, str]], resolver: Resolver) -> Query:
    """Parse a GET query string for ``resource``; raises QueryError where the API would 400."""
    schema = resolver.schema(resource)
    page, page_size = 1, DEFAULT_PAGE_SIZE
    filters: list[QueryFilter] = []
    sort: list[tuple[str, bool]] = []
    fields: dict[str, frozenset[str] | None] = {}
    includes: list[Include] = []
    for key, value in params:
        if key == "page":
            page = _positive_int(key, value)
        elif key == "pageSize":
            # Larger sizes are silently capped, not rejected: that is what the real API does.
            page_size = min(_positive_int(key, value), MAX_PAGE_SIZE)
        elif key == "sort":
            for name in _split(value):
                field = name.lstrip("-")
                if schema.typed and not schema.known(field):
                    raise QueryError(f"Cannot sort {resource} by unknown field '{field}'")
                sort.append((field, name.startswith("-")))
        elif key == "include":
            for name in _split(value):
                includes.append(Include(_check_include(resource, tuple(name.split(".")), resolver)))
        elif key == "fields" or (key.startswith("fields[") and key.endswith("]")):
            kind = resource if key == "fields" else key[7:-1]
            names = frozenset(_split(value))
            fields[kind] = None if names <= {":default"} else names - {":default"}
        elif key.startswith("sort[") or key in _RESERVED:
            continue  # sort[type] orders included records; the fake keeps them in id order
        else:
            filters.append(_check_filter(resource, QueryFilter.parse(key, value), resolver))
    return Query(page, page_size, tuple(filters), tuple(sort), fields, tuple(includes))


def _check_include(resource: str, path: tuple[str, ...], resolver: Resolver) -> tuple[str, ...]:
    kind = resource
    for link in path:
        schema = resolver.schema(kind)
        if link not in schema.link_types:
            if not schema.typed:
                return path
            raise QueryError(f"Cannot include '{link}': {kind} has no such link")
        kind = schema.link_types[link]
    return path


def _check_filter(resource: str, filt: QueryFilter, resolver: Resolver) -> QueryFilter:
    kind = resource
    for link in filt.path:
        schema = resolver.schema(kind)
        if link not in schema.link_types:
            if not schema.typed:
                return filt
            raise QueryError(f"Cannot filter through '{link}': {kind} has no such link")
        kind = schema.link_types[link]
    schema = resolver.schema(kind)
    if schema.typed and not schema.known(filt.field):
        raise QueryError(f"Unknown filter field '{filt.field}' on {kind}")
    return filt


def matches(
    record: RawRecord, resource: str, filt: QueryFilter, resolver: Resolver, depth: int = 0
) -> bool:
    """Whether one record passes one filter, following link paths into related tables."""
    if depth == len(filt.path):
        return filt.matches_value(field_value(record, filt.field))
    link = filt.path[depth]
    target = resolver.schema(resource).link_types.get(link)
    if target is None:
        return False
    related = resolver.lookup(target, link_ids(field_value(record, link)))
    return any(matches(item, target, filt, resolver, depth + 1) for item in related)


def _sort_key(field: str) -> Any:
    def key(record: RawRecord) -> tuple[int, Any]:
        value = field_value(record, field)
        if value is None:
            return 0, 0
        rank, coerced = _coerce(value)
        # Dates sort as their ISO text: same offset everywhere, and it keeps keys homogeneous.
        return (1, coerced) if rank == 1 else (2, str(value))

    return key


def sort_records(records: list[RawRecord], sort: Sequence[tuple[str, bool]]) -> list[RawRecord]:
    """Multi-key sort: the last key is applied first so Python's stable sort does the rest."""
    for field, descending in reversed(sort):
        records.sort(key=_sort_key(field), reverse=descending)
    return records


def project(record: RawRecord, selected: frozenset[str] | None) -> RawRecord:
    """Apply a fieldset: ``id`` always survives; links are kept only if named."""
    if selected is None:
        return record
    result: RawRecord = {k: v for k, v in record.items() if k == "id" or k in selected}
    links = record.get("links")
    if isinstance(links, dict):
        kept = {k: v for k, v in links.items() if k in selected}
        if kept:
            result["links"] = kept
    return result
