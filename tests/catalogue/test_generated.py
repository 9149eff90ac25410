"""The generated module is what the generator makes of Actionstep's published descriptions."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from actionstep_async import Action, Participant
from actionstep_async._catalogue import CATALOGUE, FieldSpec, ResourceSpec, resource_spec
from actionstep_async._errors import ResponseDecodeError
from actionstep_async._models import TYPED_MODELS, structure_record

ROOT = Path(__file__).resolve().parents[2]
# CI checks the repository out beside the shared reference folder; a worktree elsewhere can
# point at the YAMLs with ACTIONSTEP_OPENAPI_DIR.
OPENAPI = Path(
    os.environ.get("ACTIONSTEP_OPENAPI_DIR") or ROOT.parent / "shared" / "reference" / "openapi"
)


@pytest.mark.slow
@pytest.mark.skipif(
    not OPENAPI.is_dir(),
    reason=f"Actionstep's OpenAPI YAMLs are not at {OPENAPI} (CI keeps them at ../shared)",
)
def test_committed_output_matches_a_fresh_generation() -> None:
    """Regenerating from ../shared/reference/openapi changes nothing that is committed."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_models.py"), str(OPENAPI), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_the_catalogue_has_every_documented_family_sorted() -> None:
    """35 resource families, keyed by name, in name order, each with its own model."""
    assert len(CATALOGUE) == 35
    assert list(CATALOGUE) == sorted(CATALOGUE)
    assert len({spec.model for spec in CATALOGUE.values()}) == 35
    for name, spec in CATALOGUE.items():
        assert isinstance(spec, ResourceSpec)
        assert spec.name == spec.path == name
        assert TYPED_MODELS[name] is spec.model
        assert spec.methods <= {"GET", "POST", "PUT", "PATCH", "DELETE"}
        assert "GET" in spec.methods
        assert all(f.kind != "link" for f in spec.fields)
        assert all(link.kind == "link" and link.target for link in spec.links)
        known = {f.wire for f in (*spec.fields, *spec.links)}
        assert spec.create_required <= spec.create_writable <= known
        assert spec.writable == spec.create_writable | spec.update_writable
        assert ("POST" in spec.methods) or not spec.create_writable


@pytest.mark.parametrize(
    ("resource", "wire", "expected"),
    [
        ("actions", "id", FieldSpec("id", "id", "int", read_only=True, nullable=False)),
        ("actions", "isBillableOverride",
         FieldSpec("isBillableOverride", "is_billable_override", "bool")),
        ("actions", "status", FieldSpec("status", "status", "enum",
                                        enum=("Active", "Inactive", "Template", "Closed"))),
        ("filenotes", "enteredBy", FieldSpec("enteredBy", "entered_by", "str", read_only=True)),
        ("filenotes", "noteTimestamp", FieldSpec("noteTimestamp", "note_timestamp", "datetime")),
        ("participants", "birthTimestamp", FieldSpec("birthTimestamp", "birth_timestamp", "date")),
        ("participants", "phone1Number", FieldSpec("phone1Number", "phone1_number", "str")),
        ("tasks", "actualHours", FieldSpec("actualHours", "actual_hours", "decimal")),
        ("filenotes", "action", FieldSpec("action", "action", "link", target="actions")),
        ("filenotes", "participant",
         FieldSpec("participant", "participant", "link", read_only=True, target="participants")),
        ("filenotes", "tags", FieldSpec("tags", "tags", "link", target="tags", many=True)),
        ("actionfolders", "parentFolder",
         FieldSpec("parentFolder", "parent_folder", "link", read_only=True,
                   target="actionfolders")),
    ],
)  # fmt: skip
def test_fields_carry_the_documented_facts(resource: str, wire: str, expected: FieldSpec) -> None:
    """Kinds, read-only markers, enums and link targets come through from the YAMLs."""
    spec = resource_spec(resource)
    assert spec is not None
    assert spec.field(wire) == expected


@pytest.mark.parametrize(
    ("resource", "methods", "required", "modified"),
    [
        ("actions", {"GET", "PUT", "PATCH"}, set(), "modifiedTimestamp"),
        ("filenotes", {"GET", "POST", "PUT", "DELETE"}, {"text", "action"}, None),
        ("tasks", {"GET", "POST", "PUT", "DELETE"},
         {"name", "status", "dueTimestamp", "action", "assignee"}, "lastModifiedTimestamp"),
        ("actionparticipants", {"GET", "POST", "DELETE"}, set(), None),
        ("participantrelationshiptypes", {"GET", "POST", "DELETE"}, {"category"}, None),
        ("bills", {"GET"}, set(), "modifiedTimestamp"),
    ],
)  # fmt: skip
def test_methods_and_create_requirements(
    resource: str, methods: set[str], required: set[str], modified: str | None
) -> None:
    """Methods (with the PUT fix for actions), create requirements, last-modified fields."""
    spec = resource_spec(resource)
    assert spec is not None
    assert spec.methods == methods
    assert spec.create_required == required
    assert spec.modified_field == modified


def test_resources_outside_the_catalogue_have_no_spec() -> None:
    """timerecords and users are undocumented: no spec (timerecords keeps its own model)."""
    assert resource_spec("timerecords") is None
    assert resource_spec("users") is None
    assert "timerecords" in TYPED_MODELS


def test_actions_soft_delete_and_the_aliases_keep_old_names() -> None:
    """isDeleted marks soft deletes; is_billable and date_of_birth alias the YAML names."""
    actions, participants = resource_spec("actions"), resource_spec("participants")
    assert actions is not None
    assert participants is not None
    assert actions.deleted_field == "isDeleted"
    assert actions.model is Action
    assert participants.model is Participant
    assert Action(id=1, is_billable_override=True).is_billable is True
    born = date(1987, 5, 23)
    assert Participant(id=2, birth_timestamp=born).date_of_birth == born


BAD_VALUES = {"int": "many", "bool": "Y", "decimal": "lots", "float": "x", "date": "soon",
              "datetime": "yesterday", "enum": "Undocumented", "str": {"a": 1}}  # fmt: skip


@pytest.mark.parametrize("spec", [pytest.param(s, id=n) for n, s in CATALOGUE.items()])
def test_values_that_do_not_fit_name_their_field(spec: ResourceSpec) -> None:
    """Every field's decoder refuses a value of the wrong kind, and the error names the field."""
    base = {"id": 1} if any(f.wire == "id" for f in spec.fields) else {}
    for field in spec.fields:
        if field.wire == "id":
            continue
        with pytest.raises(ResponseDecodeError, match=field.attr):
            structure_record(spec.name, {**base, field.wire: BAD_VALUES[field.kind]}, typed=True)
    with pytest.raises(ResponseDecodeError, match="links"):
        structure_record(spec.name, {**base, "links": ["x"]}, typed=True)
