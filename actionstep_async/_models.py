"""Response decoding: the envelope, pages, plain and typed records.

Actionstep answers in a pre-1.0 JSON API style keyed by resource name, with quirks every caller
would otherwise handle by hand (survey section 5.3): 204 for "no matches", an object instead of a
one-element array, ``"T"``/``"F"`` booleans, int or string (and composite ``a--b``) ids,
timestamps with the organisation's offset or no time at all, decimal strings, side-loaded
``linked`` records. This module normalises all of that once.

Typed records are built by a private cattrs converter. Fields a model does not know are kept in
``extra``, never dropped: Actionstep adds fields without notice and "additional" fields only
appear when asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import repeat
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypeVar, overload

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._catalogue import CATALOGUE
from ._convert import DECODER_SPECS, Id, Model, Timestamp
from ._errors import ResponseDecodeError
from ._fast_page import FastPage, fast_page
from ._generated import STRUCTURERS, Action, ActionType, DecodeError, FileNote, Participant
from ._hook_tokens import redact_target

__all__ = [
    "TYPED_MODELS",
    "Action",
    "ActionType",
    "AnyRecord",
    "FileNote",
    "Id",
    "Model",
    "Page",
    "Paging",
    "Participant",
    "Record",
    "TimeRecord",
    "decode_body",
    "decode_json",
    "decode_json_exact",
    "decode_page",
    "error_details",
    "inexact_ids",
    "make_page",
    "primary_records",
    "structure_record",
]

try:  # the ``speed`` extra
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised only without the extra
    _loads = json.loads

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def decode_json(body: bytes, *, content_type: str, what: str) -> Any:
    """Parse a JSON body, or raise ResponseDecodeError naming its content type and size."""
    try:
        return _loads(body)
    # JSONDecodeError and UnicodeDecodeError are both ValueErrors; the stdlib parser raises
    # RecursionError on deeply nested input instead.
    except (ValueError, RecursionError):
        pass
    return _stdlib_or_raise(body, content_type, what)


def _stdlib_or_raise(body: bytes, content_type: str, what: str) -> Any:
    """After the fast parser refused ``body``: the stdlib parser's result or the typed error."""
    if _loads is not json.loads:  # an older orjson refuses integers beyond 64 bits
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            pass
    # Raised outside the handlers: the parser's error holds the whole body, which may echo a
    # secret, so it is not chained.
    kind = "an HTML page" if body.lstrip()[:1] == b"<" else "not valid JSON"
    raise ResponseDecodeError(
        f"{what}: the body is {kind} (content-type {content_type or 'missing'!r},"
        f" {len(body)} bytes)"
    )


def inexact_ids(resource: str, document: Any) -> bool:
    """Whether a primary record's id came out of the parser as a float.

    Ids are ints or strings; a float id is an integer beyond 64 bits that orjson turned into a
    float (or refused, in older versions). One type check per record keeps this off the profile.
    """
    if _loads is json.loads or not isinstance(document, dict):
        return False
    raw = document.get(resource)
    records = raw if isinstance(raw, list) else [raw]
    found = _float_id(records)
    if found is None:
        return any(isinstance(item, dict) and type(item.get("id")) is float for item in records)
    return found


def _float_id(records: list[Any]) -> bool | None:
    """Whether a record's id is a float; None when a record is not a plain object.

    C-level iteration (``dict.get`` refuses anything but a dict): the list decode hot path.
    """
    try:
        return float in map(type, map(dict.get, records, repeat("id")))
    except TypeError:
        return None


def decode_json_exact(body: bytes, *, content_type: str, what: str) -> Any:
    """Like :func:`decode_json` with the stdlib parser, which keeps every integer exact."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        pass
    raise ResponseDecodeError(f"{what}: the body is not valid JSON ({len(body)} bytes)")


def decode_body(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    method: str,
    url: str,
    resource: str | None = None,
) -> Any:
    """The document of a response (None for a 204 or an empty body), exact when ``resource``'s
    ids need it: :func:`decode_json`, then :func:`inexact_ids` and the stdlib re-parse.

    The error text (method, URL, content type) is only built when parsing fails.
    """
    if status == 204 or not body:
        return None
    try:
        document = _loads(body)
    except (ValueError, RecursionError):
        return _stdlib_or_raise(body, headers.get("Content-Type", ""), f"{method} {url}")
    if resource is not None and inexact_ids(resource, document):
        return _exact(body, headers, method, url)
    return document


def _exact(body: bytes, headers: Mapping[str, str], method: str, url: str) -> Any:
    return decode_json_exact(
        body, content_type=headers.get("Content-Type", ""), what=f"{method} {url}"
    )


class Record(Mapping[str, Any]):
    """One record as decoded from JSON, read-only; ``record["name"]``, ``record.id``.

    The values are exactly what the server sent (``"T"``/``"F"``, strings for link ids); use
    ``typed=True`` on the client for converted values on the resources that have a model.
    """

    __slots__ = ("_data", "resource")

    def __init__(self, resource: str, data: Mapping[str, Any]) -> None:
        self.resource = resource
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        data = self._data
        if "targetUrl" in data:  # a REST hook's target URL carries its secret token
            data = {**data, "targetUrl": redact_target(str(data["targetUrl"]))}
        return f"Record({self.resource!r}, {data!r})"

    @property
    def id(self) -> Any:
        """The record's id as sent (int, numeric string or composite string), or None."""
        return self._data.get("id")

    @property
    def links(self) -> Mapping[str, Any]:
        """Ids of related records by link name (strings, lists of strings or null)."""
        links = self._data.get("links")
        return MappingProxyType(links) if isinstance(links, dict) else _EMPTY


# -- typed models ------------------------------------------------------------------------------


def _mapping() -> Mapping[str, Any]:
    return _EMPTY


@attrs.frozen
class TimeRecord(Model):
    """Time recorded against a matter (``timerecords``); hours and amounts are Decimals.

    Hand-written: ``timerecords`` has no published description (``timeentries`` is its
    documented successor).
    """

    id: Id
    description: str | None = None
    timestamp_date: Timestamp | None = None
    actual_hours: Decimal | None = None
    billable_hours: Decimal | None = None
    billable_amount: Decimal | None = None
    is_billable: bool | None = None
    billing_status: str | None = None
    created_timestamp: Timestamp | None = None
    links: Mapping[str, Any] = attrs.field(factory=_mapping)
    extra: Mapping[str, Any] = attrs.field(factory=_mapping)


TYPED_MODELS: Final[Mapping[str, type[Model]]] = MappingProxyType(
    {
        **{name: spec.model for name, spec in CATALOGUE.items()},
        "timerecords": TimeRecord,
    }
)
"""The typed model of every resource that has one: the catalogue plus hand-written ones."""

# -- the private converter ----------------------------------------------------------------------

_converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)
_DIGITS: Final = re.compile(r"[1-9][0-9]{0,17}")
_EXTRA_KEY: Final = "\x00extra"


def _id(value: object, _: object) -> Id:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        # Numeric ids arrive as numbers or as strings depending on the resource; one form keeps
        # ``record.id == 5`` true either way. Composite ids stay strings.
        return int(value) if _DIGITS.fullmatch(value) else value
    raise ValueError("expected an int or non-empty string id")


def _bool(value: object, _: object) -> bool:
    if value == "T" or value is True:
        return True
    if value == "F" or value is False:
        return False
    raise ValueError("expected 'T' or 'F'")


def _str(value: object, _: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError("expected a string")


def _int(value: object, _: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise ValueError("expected an integer")


def _decimal(value: object, _: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError("expected a decimal number") from exc
        if number.is_finite():
            return number
    raise ValueError("expected a decimal number")


def _timestamp(value: object, _: object) -> Timestamp | None:
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value)
    raise ValueError("expected an ISO 8601 timestamp")


def _read_only(value: object, _: object) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY
    if isinstance(value, dict):
        return MappingProxyType(value)
    raise ValueError("expected an object")


_converter.register_structure_hook(Id, _id)
_converter.register_structure_hook(bool, _bool)
_converter.register_structure_hook(str, _str)
_converter.register_structure_hook(int, _int)
_converter.register_structure_hook(Decimal | None, _decimal)
_converter.register_structure_hook(Timestamp | None, _timestamp)
_converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], _read_only)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _register(model: type[TimeRecord]) -> None:
    names = [field.name for field in attrs.fields(model)]
    renames = {name: override(rename=_camel(name)) for name in names if name != "extra"}
    renames["extra"] = override(rename=_EXTRA_KEY)
    base = make_dict_structure_fn(model, _converter, **renames)  # type: ignore[arg-type]
    known = frozenset(_camel(name) for name in names if name != "extra")

    def structure(data: Any, _: object) -> TimeRecord:
        if not isinstance(data, dict):
            raise ValueError("expected an object")
        extra = {key: value for key, value in data.items() if key not in known}
        if extra:
            data = {**data, _EXTRA_KEY: extra}
        record: TimeRecord = base(data, model)
        return record

    _converter.register_structure_hook(model, structure)


_register(TimeRecord)


def structure_record(resource: str, data: object, *, typed: bool) -> Record | Model:
    """One record: a typed model when ``typed`` and the resource has one, else a Record."""
    if typed:
        structure = STRUCTURERS.get(resource)
        if structure is not None:
            try:
                return structure(data)
            except DecodeError as exc:
                raise ResponseDecodeError(str(exc)) from exc.__cause__
        if resource == "timerecords":
            try:
                return _converter.structure(data, TimeRecord)
            except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
                problems = (
                    "; ".join(cattrs.transform_error(exc))
                    if isinstance(exc, cattrs.BaseValidationError)
                    else str(exc)
                )
                raise ResponseDecodeError(f"unexpected {resource} record: {problems}") from exc
    if type(data) is not dict:
        raise ResponseDecodeError(f"unexpected {resource} record: expected an object")
    return Record(resource, data)


_DICT_ONLY: Final = frozenset({dict})


def _structure_all(
    resource: str, raws: list[Any], typed: bool, *, dicts: bool = False
) -> tuple[AnyRecord, ...]:
    """:func:`structure_record` for every record of a page, with the per-record lookups and
    checks hoisted out of the loop (the list decode hot path); the same records and errors.

    ``dicts``: the caller already knows every raw record is a ``dict`` (not a subclass).
    """
    structure = STRUCTURERS.get(resource) if typed else None
    if structure is not None:
        try:
            return tuple(map(structure, raws))
        except DecodeError as exc:
            raise ResponseDecodeError(str(exc)) from exc.__cause__
    if (not typed or resource != "timerecords") and (dicts or set(map(type, raws)) <= _DICT_ONLY):
        return tuple(map(Record, repeat(resource, len(raws)), raws))
    return tuple(structure_record(resource, raw, typed=typed) for raw in raws)


# -- the envelope -------------------------------------------------------------------------------


@attrs.frozen
class Paging:
    """``meta.paging.<resource>``: totals for the whole query and where this page sits."""

    record_count: int
    page_count: int
    page: int
    page_size: int
    reported: bool = True
    """False when the response had no paging block and these numbers are only what was seen."""


def primary_records(resource: str, document: object) -> list[Any]:
    """The raw primary records of a 2xx document, always a list (an object becomes ``[object]``)."""
    if document is None:
        return []
    if not isinstance(document, dict):
        raise ResponseDecodeError(f"{resource} response is not a JSON object")
    if resource not in document:
        raise ResponseDecodeError(f"{resource} response has no {resource!r} member")
    raw = document[resource]
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict):
        return [raw]
    if raw is None:
        return []
    raise ResponseDecodeError(f"{resource} response has an unusable {resource!r} member")


def _paging(resource: str, document: Mapping[str, Any], count: int, page: int, size: int) -> Paging:
    meta = document.get("meta")
    paging = meta.get("paging") if isinstance(meta, dict) else None
    block = paging.get(resource) if isinstance(paging, dict) else None
    if not isinstance(block, dict):
        pages = 1 if count else 0
        return Paging(
            record_count=count, page_count=pages, page=page, page_size=size, reported=False
        )
    key = (
        block.get("recordCount", count),
        block.get("pageCount", 1),
        block.get("page", page),
        block.get("pageSize", size),
    )
    # Exact ints (what the API sends) need no conversion; anything else goes through _int,
    # which takes numeric strings and refuses True, 1.5 and the like.
    if type(key[0]) is type(key[1]) is type(key[2]) is type(key[3]) is int:
        return Paging(*key)
    try:
        total, pages, number, per_page = (_int(value, None) for value in key)
    except ValueError as exc:
        raise ResponseDecodeError(f"{resource} response has malformed meta.paging") from exc
    return Paging(total, pages, number, per_page)


def _parsed_paging(
    resource: str, document: Mapping[str, Any], count: int, page: int, size: int
) -> Paging:
    """:func:`_paging` of a document straight from the JSON parser, by subscripts alone: there
    every level is a dict, a list or a scalar, so a missing or non-object level raises KeyError
    or TypeError, and that (or a total that is not an exact int) leaves it to _paging."""
    try:
        block = document["meta"]["paging"][resource]
        totals = (block["recordCount"], block["pageCount"], block["page"], block["pageSize"])
    except (KeyError, TypeError):
        return _paging(resource, document, count, page, size)
    if tuple(map(type, totals)) == _EXACT_INTS:
        return Paging(*totals)
    return _paging(resource, document, count, page, size)


_EXACT_INTS: Final = (int, int, int, int)


def _link_types(links: object) -> dict[str, str]:
    """``{"actions.assignedTo": "participants"}`` from the top-level ``links`` templates."""
    if not isinstance(links, dict):
        return {}
    return {
        key: kind
        for key, template in links.items()
        if isinstance(template, dict) and isinstance(kind := template.get("type"), str)
    }


class _LinkTypes(Mapping[str, str]):
    """:func:`_link_types` of a response's templates, worked out when first read: only
    :meth:`Page.related` needs them, and most pages are never asked."""

    __slots__ = ("_links", "_types")

    def __init__(self, links: object) -> None:
        self._links = links
        self._types: dict[str, str] | None = None

    def _resolved(self) -> dict[str, str]:
        types = self._types
        if types is None:
            types = self._types = _link_types(self._links)
        return types

    def __getitem__(self, key: str) -> str:
        return self._resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())

    def __repr__(self) -> str:
        return repr(self._resolved())


AnyRecord: TypeAlias = "Record | Model"
"""A decoded record: a plain :class:`Record` or a typed model."""

R = TypeVar("R", covariant=True)


def _links(record: AnyRecord) -> Mapping[str, Any]:
    return record.links if isinstance(record, Record) else record.wire_links


@attrs.frozen(eq=False)
class Page(Sequence[R]):
    """One page of a list request: the records, what was side-loaded with them, and paging.

    A Page is a sequence of its records (``Page[Action]`` from ``client.actions.list()``).
    ``linked`` holds side-loaded records by resource name (``include=[...]``); :meth:`related`
    follows a record's link to them.
    """

    resource: str
    records: tuple[R, ...]
    paging: Paging
    linked: Mapping[str, tuple[AnyRecord, ...]] = attrs.field(factory=dict)
    link_types: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    _index: dict[str, dict[str, AnyRecord]] = attrs.field(factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[R, ...]: ...

    def __getitem__(self, index: int | slice) -> R | tuple[R, ...]:
        return self.records[index]

    def linked_record(self, resource: str, id: Id) -> AnyRecord | None:
        """The side-loaded ``resource`` record with ``id``, or None if it was not included."""
        index = self._index.get(resource)
        if index is None:
            index = self._index[resource] = {str(r.id): r for r in self.linked.get(resource, ())}
        return index.get(str(id))

    def related(
        self, record: AnyRecord, link: str, *, resource: str | None = None
    ) -> list[AnyRecord]:
        """The side-loaded records ``record``'s ``link`` points to (empty when not included).

        The target resource comes from the response's link templates; pass ``resource`` when the
        server sent none (``page.related(action, "assignedTo", resource="participants")``).
        """
        value = _links(record).get(link)
        if value is None:
            return []
        target = resource or self.link_types.get(f"{self.resource}.{link}") or _guess(link)
        ids = value if isinstance(value, list) else [value]
        found = (self.linked_record(target, i) for i in ids if i is not None)
        return [r for r in found if r is not None]


def _guess(link: str) -> str:
    # Without a template, Actionstep's own naming is the best guess: actionType -> actiontypes.
    return link.lower() + "s"


def make_page(
    resource: str,
    document: object,
    *,
    typed: bool,
    page: int,
    page_size: int,
) -> Page[AnyRecord]:
    """Decode a list response (``None`` for a 204) into a Page."""
    raws = primary_records(resource, document)
    records = _structure_all(resource, raws, typed)
    if not isinstance(document, dict):
        return Page(resource, records, Paging(0, 0, page, page_size))
    return _envelope(resource, document, records, typed, page, page_size)


def decode_page(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    method: str,
    url: str,
    resource: str,
    *,
    typed: bool,
    page: int,
    page_size: int,
) -> Page[AnyRecord]:
    """A list response as a Page: :func:`decode_body` then :func:`make_page`, the same pages and
    errors, with the usual body (a list of objects, no float id) checked in one pass and a
    typed page of documented fields decoded by msgspec when it is installed (``_fast_page``)."""
    fast = fast_page(resource, DECODER_SPECS) if typed and body and status != 204 else None
    shortcut = _shortcut_page(fast, body, resource, page, page_size) if fast else None
    if shortcut is not None:
        return shortcut
    document = decode_body(status, body, headers, method, url)
    raws = document.get(resource) if type(document) is dict else None
    if type(raws) is list and _float_id(raws) is False:
        # The parsers make plain dicts only, so the records need no second type check.
        records = _structure_all(resource, raws, typed, dicts=True)
        return _envelope(resource, document, records, typed, page, page_size, parsed=True)
    if inexact_ids(resource, document):
        document = _exact(body, headers, method, url)
    return make_page(resource, document, typed=typed, page=page, page_size=page_size)


def _shortcut_page(
    fast: FastPage, body: bytes, resource: str, page: int, page_size: int
) -> Page[AnyRecord] | None:
    """The typed page msgspec decoded, or None when the general path must decode it."""
    decoded = fast.decode(body)
    if decoded is None:
        return None
    records, linked, meta, links = decoded
    document: dict[str, Any] = {"links": links}
    try:  # the parser the general path uses: side-loads and paging read exactly as there
        if linked is not None:
            document["linked"] = _loads(linked)
        if meta is not None:
            document["meta"] = _loads(meta)
    except ValueError:
        return None
    return _envelope(resource, document, records, True, page, page_size, parsed=True)


def _envelope(
    resource: str,
    document: Mapping[str, Any],
    records: tuple[AnyRecord, ...],
    typed: bool,
    page: int,
    page_size: int,
    *,
    parsed: bool = False,
) -> Page[AnyRecord]:
    """The Page of ``records``: side-loaded records, paging and link templates from ``document``
    (``parsed``: straight from the JSON parser, so made of plain dicts and lists only)."""
    linked: dict[str, tuple[AnyRecord, ...]] = {}
    side = document.get("linked")
    if isinstance(side, dict):
        for kind, items in side.items():
            listed = items if isinstance(items, list) else [items]
            linked[kind] = _structure_all(kind, listed, typed)
    count = len(records)
    if parsed:
        paging = _parsed_paging(resource, document, count, page, page_size)
    else:
        paging = _paging(resource, document, count, page, page_size)
    links = document.get("links")
    return Page(resource, records, paging, linked, _LinkTypes(links) if links else {})


def error_details(document: object) -> tuple[list[Mapping[str, Any]], str | None]:
    """The ``errors`` of an error body (a list or one object) and a short message from them."""
    if not isinstance(document, dict):
        return [], None
    raw = document.get("errors")
    if raw is None and isinstance(document.get("error"), str):
        # A 401 from the resource server is OAuth-style: {"error": "expired_token", ...}.
        description = document.get("error_description")
        raw = {"code": document["error"], "title": document["error"]}
        if isinstance(description, str):
            raw["detail"] = description
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    errors: list[Mapping[str, Any]] = [item for item in items if isinstance(item, dict)]
    for item in errors:
        for key in ("detail", "title", "message", "code"):
            text = item.get(key)
            if isinstance(text, str) and text:
                return errors, text[:300]
    return errors, None
