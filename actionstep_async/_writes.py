"""Checking a write against the catalogue, and turning typed records back into wire form.

Pure functions: they take a :class:`ResourceSpec` and values, and either return the body to send
or raise :class:`InvalidRequestError` naming the field at fault, before any I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._convert import Model, wire_value
from ._errors import InvalidRequestError

if TYPE_CHECKING:
    from ._catalogue import FieldSpec, ResourceSpec

__all__ = ["check_write", "save_body", "to_wire"]


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _by_attr(spec: ResourceSpec) -> dict[str, FieldSpec]:
    return {field.attr: field for field in spec.fields}


def check_write(
    spec: ResourceSpec,
    fields: Mapping[str, Any],
    links: Mapping[str, Any] | None,
    *,
    creating: bool,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The wire body and links for a create or update given by attribute names.

    Raises InvalidRequestError for an unknown or read-only field or link, a value outside an
    enum, or (``creating``) a required field or link that is missing.
    """
    verb = "create" if creating else "update"
    allowed = spec.create_writable if creating else spec.update_writable
    attrs_ = _by_attr(spec)
    body: dict[str, Any] = {}
    for attr, value in fields.items():
        field = attrs_.get(attr)
        if field is None:
            hint = _suggest(attr, sorted(attrs_))
            raise InvalidRequestError(f"{spec.name} has no field {attr!r}{hint}")
        if field.wire not in allowed:
            raise InvalidRequestError(f"{spec.name}.{attr} is read-only: {verb} cannot set it")
        if field.kind == "enum" and value is not None and value not in field.enum:
            raise InvalidRequestError(
                f"{spec.name}.{attr} must be one of {', '.join(field.enum)}, got {value!r}"
            )
        body[field.wire] = wire_value(value)
    wire_links = _check_links(spec, links, allowed, verb)
    if creating:
        given = set(body) | set(wire_links or ())
        missing = sorted(spec.create_required - given)
        if missing:
            names = ", ".join(_describe(spec, name) for name in missing)
            raise InvalidRequestError(f"{spec.name}.create needs {names}")
    return body, wire_links


def _describe(spec: ResourceSpec, wire: str) -> str:
    field = spec.field(wire)
    if field is not None and field.kind == "link":
        return f"links[{wire!r}]"
    return field.attr if field is not None else wire


def _check_links(
    spec: ResourceSpec, links: Mapping[str, Any] | None, allowed: frozenset[str], verb: str
) -> dict[str, Any] | None:
    if links is None:
        return None
    if not isinstance(links, Mapping):
        raise InvalidRequestError("links must be a mapping of link names to ids")
    known = {link.wire for link in spec.links}
    result: dict[str, Any] = {}
    for name, value in links.items():
        if name not in known:
            hint = _suggest(str(name), sorted(known))
            raise InvalidRequestError(f"{spec.name} has no link {name!r}{hint}")
        if name not in allowed:
            raise InvalidRequestError(
                f"{spec.name} link {name!r} is read-only: {verb} cannot set it"
            )
        result[name] = wire_value(tuple(value)) if isinstance(value, list | tuple) else value
    return result


def to_wire(record: Model) -> dict[str, Any]:
    """A typed record in Actionstep's wire form: every field, ``links`` and the ``extra`` ones."""
    from ._catalogue import CATALOGUE

    spec = next((s for s in CATALOGUE.values() if isinstance(record, s.model)), None)
    if spec is None:
        raise InvalidRequestError(f"{type(record).__name__} is not a catalogue model")
    wire: dict[str, Any] = {f.wire: wire_value(getattr(record, f.attr)) for f in spec.fields}
    wire.update(record.extra)
    wire["links"] = {name: wire_value(_listed(ids)) for name, ids in record.wire_links.items()}
    return wire


def _listed(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def save_body(
    spec: ResourceSpec, record: Model, *, include_extra: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What a PUT of ``record`` carries: its writable fields that are set.

    A PUT is a partial update, so fields not sent (read-only ones, unknown ones in ``extra``)
    keep their values on the server. ``include_extra`` sends the unknown fields back too, for
    fields Actionstep added that are writable but not yet in the catalogue.
    """
    if not isinstance(record, spec.model):
        raise InvalidRequestError(f"expected a {spec.model.__name__}, got {type(record).__name__}")
    allowed = spec.update_writable
    body = {
        f.wire: wire_value(getattr(record, f.attr))
        for f in spec.fields
        if f.wire in allowed and getattr(record, f.attr) is not None
    }
    if include_extra:
        body.update(record.extra)
    links = {
        name: wire_value(_listed(ids))
        for name, ids in record.wire_links.items()
        if name in allowed and ids is not None
    }
    return body, links or None
