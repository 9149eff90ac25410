"""Typed pages decoded by msgspec (the ``speed`` extra): the typed list hot path.

msgspec parses a list response straight into one private wire struct per record, checking
every documented field's JSON type in C; a compiled function per model then turns each struct
into the model exactly as the dict decoder would (``"T"``/``"F"`` flags, typed ids and links,
timestamps, dates, decimals). It is only a shortcut: a page it cannot take whole (an undocumented
field, which must land in ``extra``; a value of an unexpected type; a malformed body) is
decoded by the general path instead, which gives the same records or the error naming the field.
A test holds both paths to the same result on generated pages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from ._convert import (
    BOOL_FLAGS,
    EMPTY,
    ID_CACHE,
    DecoderSpec,
    Model,
    cached_id,
    fast_bool,
    to_date,
    to_decimal,
    to_id,
    to_int,
    to_str,
    to_timestamp,
)

try:  # the ``speed`` extra
    import msgspec

    HAVE_MSGSPEC = True
    # orjson, the general path's parser, reads integers in this range as ints and others as
    # floats, which the decoders refuse (all but record ids): so must the shortcut.
    Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    Links = dict[str, str | Int | list[str | Int] | None] | None
except ImportError:  # pragma: no cover - exercised only without the extra
    HAVE_MSGSPEC = False

__all__ = ["HAVE_MSGSPEC", "SKIP_AFTER_MISS", "FastPage", "build", "fast_page"]

SKIP_AFTER_MISS: Final = 64
"""Pages of a resource decoded the general way after one the shortcut could not take: a server
that sends undocumented fields sends them on every page, and a failed attempt costs a parse."""

_FLAGS: Final[dict[object, bool | None]] = {True: True, False: False, None: None}
_FLAGS.update(BOOL_FLAGS)  # "T"/"F", as the dict decoder reads them
_MISSES: Final = (ValueError, TypeError, KeyError, AttributeError)


def _links(value: dict[str, Any] | None) -> dict[str, Any]:
    """:func:`typed_links` of a links object msgspec has just made (``Links``), converted in
    place: it is nobody else's, and a new dict per record is a measurable share of the page."""
    if value is None:
        return {}
    get = ID_CACHE.get
    for name, ids in value.items():
        if type(ids) is str:
            value[name] = get(ids) or cached_id(ids)
        elif type(ids) is list:  # of str and int: all hashable
            found = list(map(get, ids))
            value[name] = found if None not in found else [cached_id(item) for item in ids]
    return value  # ints and None are typed already


def _wire_type(exact: type, convert: Callable[[Any], object]) -> tuple[object, str] | None:
    """A field's wire type for msgspec and how its value becomes the model's, or None when the
    shortcut does not know the converter. In the code, ``{v}`` reads the value into ``v``.

    The types admit exactly the JSON values the dict decoder takes as they are, plus those the
    code converts; any other value fails the page over to the general path.
    """
    table = getattr(convert, "__self__", None)
    if convert is fast_bool:
        return bool | Literal["T", "F"] | None, "flags[{v}]"
    if type(table) is dict and all(type(k) is str and k is value for k, value in table.items()):
        return Literal[tuple(table)] | None, "{v}"  # an enum: msgspec checks the value
    if exact is str and convert is to_str:
        return str | None, "{v}"
    if exact is int and convert is to_int:
        return Int | None, "{v}"
    if convert is to_timestamp:
        # Parsed in C; parse_timestamp reads every RFC 3339 form msgspec takes the same way. A
        # bare date (also valid in a timestamp field) fails the page over to the general path.
        return datetime | None, "{v}"
    if convert in (to_date, to_decimal):
        kind = str | None if convert is to_date else str | Int | float | None
        return kind, "None if {v} is None else {c}(v)"
    return None


class FastPage:
    """The msgspec decoder of one resource's list pages and its struct-to-model converter."""

    __slots__ = ("_convert", "_decoder", "_skip")

    def __init__(self, resource: str, record: type, convert: Callable[[Any], Model]) -> None:
        self._skip = 0
        self._convert = convert
        fields: list[tuple[str, Any, Any]] = [("records", list[record], msgspec.NODEFAULT)]  # type: ignore[valid-type]
        # Side-loads and paging are left as raw JSON for the general path's parser, so their
        # values are exactly what it would read; link templates are only read for strings.
        fields += [
            ("linked", msgspec.Raw, msgspec.Raw()),
            ("meta", msgspec.Raw, msgspec.Raw()),
            ("links", Any, None),
        ]
        page = msgspec.defstruct(f"{record.__name__}Page", fields, rename={"records": resource})
        self._decoder = msgspec.json.Decoder(page)

    def decode(
        self, body: bytes
    ) -> tuple[tuple[Model, ...], bytes | None, bytes | None, object] | None:
        """The page's models, its raw ``linked`` and ``meta`` JSON and its ``links``, or None:
        the general path decodes this one."""
        if self._skip:
            self._skip -= 1
            return None
        try:
            document: Any = self._decoder.decode(body)
            records = tuple(map(self._convert, document.records))
        except (msgspec.DecodeError, *_MISSES):
            self._skip = SKIP_AFTER_MISS
            return None
        return records, bytes(document.linked) or None, bytes(document.meta) or None, document.links


def _compile(resource: str, spec: DecoderSpec) -> tuple[type, Callable[[Any], Model]] | None:
    """The wire struct of ``spec``'s records and the function that makes a model of one."""
    fields: list[tuple[str, Any, Any]] = []
    names: dict[str, Any] = {}
    lines = ["def convert(w):", "    record = new(cls)", "    set(record, '__dict__', {"]
    if spec.has_id:
        fields.append(("id", int | str, msgspec.NODEFAULT))
        lines.append("        'id': i if type(i := w.id) is int else to_id(i),")
    else:
        lines.append("        'id': None,")
    rename = {}
    for index, (attr, wire, exact, convert, _) in enumerate(spec.plan):
        typed = _wire_type(exact, convert)
        if typed is None:
            return None
        name = f"f{index}"  # the wire name may not be an identifier, nor clash with 'id'
        fields.append((name, typed[0], None))
        rename[name] = wire
        names[f"c{index}"] = convert
        lines.append(f"        {attr!r}: {typed[1].format(v=f'(v := w.{name})', c=f'c{index}')},")
    decoded = {wire for _, wire, *_ in spec.plan} | {"id", "links"}
    for index, wire in enumerate(sorted(spec.known - decoded)):
        # Known keys that no field takes: accepted and dropped, as the dict decoder does.
        fields.append((f"k{index}", Any, None))
        rename[f"k{index}"] = wire
    fields.append(("links", Links, None))
    lines += ["        'links': links(w.links),", "        'extra': EMPTY,", "    })"]
    lines.append("    return record")
    record = msgspec.defstruct(
        f"{spec.cls.__name__}Wire", fields, rename=rename, forbid_unknown_fields=True
    )
    names.update({
        "cls": spec.cls, "new": object.__new__, "set": object.__setattr__, "to_id": to_id,
        "flags": _FLAGS, "links": _links, "EMPTY": EMPTY,
    })  # fmt: skip
    exec(compile("\n".join(lines), f"<wire converter of {resource}>", "exec"), names)
    return record, names["convert"]


def build(resource: str, spec: DecoderSpec | None) -> FastPage | None:
    """A shortcut for ``resource``'s pages, or None without msgspec or for a plan it cannot do."""
    if not HAVE_MSGSPEC or spec is None:
        return None
    compiled = _compile(resource, spec)
    return None if compiled is None else FastPage(resource, *compiled)


_PAGES: dict[str, FastPage | None] = {}


def fast_page(resource: str, specs: Mapping[str, DecoderSpec]) -> FastPage | None:
    """The shortcut for ``resource``'s typed pages (built on first use), or None without one."""
    try:
        return _PAGES[resource]
    except KeyError:
        found = _PAGES[resource] = build(resource, specs.get(resource))
        return found
