"""TEMPORARY stub of the resource catalogue (branch i14-api owns the real one).

Only the three resources the mirror's tests use, matching CATALOGUE-INTERFACE.md exactly. Dropped
when i14-api's catalogue is merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs

from ._models import Record

__all__ = ["CATALOGUE", "FieldKind", "FieldSpec", "ResourceSpec", "resource_spec"]

FieldKind = Literal["int", "str", "bool", "decimal", "float", "date", "datetime", "enum", "link"]


@attrs.frozen
class FieldSpec:
    wire: str
    attr: str
    kind: FieldKind
    read_only: bool = False
    nullable: bool = True
    enum: tuple[str, ...] = ()
    target: str | None = None


@attrs.frozen
class ResourceSpec:
    name: str
    path: str
    methods: frozenset[str]
    fields: tuple[FieldSpec, ...]
    links: tuple[FieldSpec, ...]
    create_required: frozenset[str]
    writable: frozenset[str]
    modified_field: str | None
    deleted_field: str | None
    model: type


_ALL: Final = frozenset({"GET", "POST", "PUT", "DELETE"})


def _f(wire: str, attr: str, kind: FieldKind, **extra: object) -> FieldSpec:
    return FieldSpec(wire, attr, kind, **extra)  # type: ignore[arg-type]


def _link(wire: str, attr: str, target: str) -> FieldSpec:
    return FieldSpec(wire, attr, "link", target=target)


_ACTIONS: Final = ResourceSpec(
    name="actions",
    path="actions",
    methods=_ALL,
    fields=(
        _f("id", "id", "int", read_only=True, nullable=False),
        _f("name", "name", "str"),
        _f("reference", "reference", "str"),
        _f("priority", "priority", "int"),
        _f("status", "status", "enum", enum=("Active", "Closed", "Inactive")),
        _f("isBillable", "is_billable", "bool"),
        _f("isDeleted", "is_deleted", "bool", read_only=True),
        _f("isFavorite", "is_favorite", "bool"),
        _f("createdTimestamp", "created_timestamp", "datetime", read_only=True),
        _f("modifiedTimestamp", "modified_timestamp", "datetime", read_only=True),
    ),
    links=(
        _link("actionType", "action_type", "actiontypes"),
        _link("assignedTo", "assigned_to", "participants"),
        _link("primaryParticipants", "primary_participants", "participants"),
        _link("step", "step", "steps"),
    ),
    create_required=frozenset({"name", "actionType"}),
    writable=frozenset({"name", "reference", "priority", "isBillable", "isFavorite"}),
    modified_field="modifiedTimestamp",
    deleted_field="isDeleted",
    model=Record,
)

_PARTICIPANTS: Final = ResourceSpec(
    name="participants",
    path="participants",
    methods=_ALL,
    fields=(
        _f("id", "id", "int", read_only=True, nullable=False),
        _f("displayName", "display_name", "str", read_only=True),
        _f("isCompany", "is_company", "bool"),
        _f("companyName", "company_name", "str"),
        _f("firstName", "first_name", "str"),
        _f("lastName", "last_name", "str"),
        _f("email", "email", "str"),
        _f("phone1Number", "phone1_number", "str"),
        _f("physicalAddressLine1", "physical_address_line1", "str"),
        _f("createdTimestamp", "created_timestamp", "datetime", read_only=True),
        _f("modifiedTimestamp", "modified_timestamp", "datetime", read_only=True),
    ),
    links=(),
    create_required=frozenset(),
    writable=frozenset({"isCompany", "companyName", "firstName", "lastName", "email"}),
    modified_field="modifiedTimestamp",
    deleted_field=None,
    model=Record,
)

_FILENOTES: Final = ResourceSpec(
    name="filenotes",
    path="filenotes",
    methods=_ALL,
    fields=(
        _f("id", "id", "int", read_only=True, nullable=False),
        _f("text", "text", "str"),
        _f("enteredTimestamp", "entered_timestamp", "datetime", read_only=True),
        _f("noteTimestamp", "note_timestamp", "datetime"),
        _f("enteredBy", "entered_by", "str", read_only=True),
        _f("source", "source", "str", read_only=True),
    ),
    links=(
        _link("action", "action", "actions"),
        _link("participant", "participant", "participants"),
    ),
    create_required=frozenset({"text", "action"}),
    writable=frozenset({"text", "noteTimestamp", "action", "participant"}),
    modified_field=None,
    deleted_field=None,
    model=Record,
)

CATALOGUE: Final[Mapping[str, ResourceSpec]] = {
    spec.name: spec for spec in sorted((_ACTIONS, _FILENOTES, _PARTICIPANTS), key=lambda s: s.name)
}


def resource_spec(name: str) -> ResourceSpec | None:
    return CATALOGUE.get(name)
