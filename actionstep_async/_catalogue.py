"""The resource catalogue: every documented resource, its fields, links and methods.

The data comes from ``_generated.py`` (written by ``tools/generate_models.py`` from Actionstep's
OpenAPI descriptions); this module gives it types and a lookup. Accessors check writes against
it, the fake serves it, and the CLI uses it to name resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

import attrs

from . import _generated
from ._convert import Model

__all__ = ["CATALOGUE", "FieldKind", "FieldSpec", "ResourceSpec", "resource_spec"]

FieldKind = Literal["int", "str", "bool", "decimal", "float", "date", "datetime", "enum", "link"]


@attrs.frozen
class FieldSpec:
    """One attribute or link of a resource, as the wire and the typed model name it."""

    wire: str
    """Name on the wire, e.g. ``isBillableOverride``."""
    attr: str
    """Attribute name on the typed model (snake_case)."""
    kind: FieldKind
    read_only: bool = False
    """True when no documented write (POST or PUT) may carry it."""
    nullable: bool = True
    enum: tuple[str, ...] = ()
    """Allowed values when ``kind == "enum"``."""
    target: str | None = None
    """For ``kind == "link"``: the resource the id points to."""
    many: bool = False
    """For ``kind == "link"``: the link holds a list of ids."""


@attrs.frozen
class ResourceSpec:
    """One documented resource family."""

    name: str
    """The key in responses and the URL segment, e.g. ``actions``."""
    path: str
    """URL path relative to ``<api_endpoint>rest/``."""
    methods: frozenset[str]
    """A subset of GET, POST, PUT, PATCH and DELETE."""
    fields: tuple[FieldSpec, ...]
    """Attributes, ``id`` first; links are not included."""
    links: tuple[FieldSpec, ...]
    """``kind == "link"``, named as under ``links``."""
    create_required: frozenset[str]
    """Wire names (fields and links) a POST must carry."""
    writable: frozenset[str]
    """Wire names (fields and links) a POST or PUT may carry."""
    modified_field: str | None
    """Wire name of the last-modified timestamp, if the resource has one."""
    deleted_field: str | None
    """``isDeleted`` where the resource soft-deletes."""
    model: type[Model]
    """The generated attrs model class."""
    create_writable: frozenset[str] = frozenset()
    """Wire names a POST may carry."""
    update_writable: frozenset[str] = frozenset()
    """Wire names a PUT may carry."""
    get_by_id: bool = True
    """Whether ``GET <path>/<id>`` is documented (a few resources only list)."""

    def field(self, wire: str) -> FieldSpec | None:
        """The attribute or link with this wire name, or None."""
        for spec in self.fields:
            if spec.wire == wire:
                return spec
        for spec in self.links:
            if spec.wire == wire:
                return spec
        return None


def _field(row: _generated.FieldRow) -> FieldSpec:
    wire, attr, kind, read_only, enum, target, many = row
    nullable = wire != "id"
    return FieldSpec(wire, attr, kind, read_only, nullable, enum, target, many)


def _resource(row: _generated.ResourceRow) -> ResourceSpec:
    fields = tuple(_field(item) for item in row.fields)
    links = tuple(_field(item) for item in row.links)
    names = {spec.wire for spec in fields}
    return ResourceSpec(
        name=row.name,
        path=row.name,
        methods=frozenset(row.methods),
        fields=fields,
        links=links,
        create_required=frozenset(row.create_required),
        writable=frozenset(row.create_writable) | frozenset(row.update_writable),
        modified_field=row.modified_field,
        deleted_field="isDeleted" if "isDeleted" in names else None,
        model=row.model,
        create_writable=frozenset(row.create_writable),
        update_writable=frozenset(row.update_writable),
        get_by_id=row.get_by_id,
    )


CATALOGUE: Final[Mapping[str, ResourceSpec]] = MappingProxyType(
    {row.name: _resource(row) for row in sorted(_generated.RESOURCES, key=lambda r: r.name)}
)
"""Every documented resource by name, sorted by name."""


def resource_spec(name: str) -> ResourceSpec | None:
    """The catalogue entry for ``name``, or None for a resource outside the catalogue."""
    return CATALOGUE.get(name)
