"""Spec-shaped records and near misses of them, for tests that hold two decoders to one result."""

from __future__ import annotations

from typing import Any

from actionstep_async._catalogue import ResourceSpec

WIRE_FORMS: dict[str, tuple[object, ...]] = {
    "int": ("7", 7), "str": ("x", 5), "bool": ("T", "F", True), "decimal": ("1.50", 2),
    "float": ("2.5", 3, 1.25), "date": ("23-May-1987", "2024-03-01", "2024-03-01T00:00:00+10:00"),
    "datetime": ("2024-03-01T09:30:00+10:00", "2024-03-01", "2024-03-01T09:30:00Z"),
}  # fmt: skip
NATIVE_FORMS: dict[str, object] = {
    "int": 7, "str": "x", "bool": "T", "decimal": "1.50", "float": 2.5, "date": "23-May-1987",
    "datetime": "2024-03-01T09:30:00+10:00",
}  # fmt: skip
"""A value of each kind as Actionstep sends it, of the JSON type the decoders take directly."""

STAMPS: tuple[object, ...] = (
    "2024-03-01", "2024-03-01T09:30:00Z", "2024-03-01T09:30:00.5-05:30", "2024-03-01T09:30",
    "23-May-1987", "soon", "not a timestamp at all", 20240301, ["2024-03-01"] * 11,
    "2024-03-01t09:30:00z", "2024-03-01T09:30:00.1234567+10:00", "2024-12-31T23:59:59.9999995Z",
    "9999-12-31T23:59:59.9999999", "2024-03-01T09:30:00.123456+10:00",
)  # fmt: skip


def full_record(spec: ResourceSpec, *, native: bool = False) -> dict[str, Any]:
    """A record with every documented field and ``links``: the decoders' full-record path.

    ``native``: every value of the JSON type its field takes without conversion (ints as
    numbers), the form a typed page decoded by msgspec takes whole."""
    raw: dict[str, Any] = {}
    for field in spec.fields:
        if field.wire == "id":
            raw["id"] = 12 if native else "12"
        elif native and field.kind in NATIVE_FORMS:
            raw[field.wire] = NATIVE_FORMS[field.kind]
        else:
            raw[field.wire] = (WIRE_FORMS.get(field.kind) or field.enum)[0]
    raw["links"] = {"a": "5", "b": ["6", "x--1"], "c": None}
    return raw


def first(spec: ResourceSpec, kinds: tuple[str, ...]) -> str | None:
    return next((f.wire for f in spec.fields if f.kind in kinds and f.wire != "id"), None)


def variants(spec: ResourceSpec, *, native: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """Full records and near misses of them; each must decode (or fail) as the general path."""
    full = full_record(spec, native=native)
    out = [("full", full), ("nulls", {k: None if k != "id" else v for k, v in full.items()})]
    out.append(("extra", {**full, "undocumentedField": 1}))
    flags = [field.wire for field in spec.fields if field.kind == "bool"]
    out.append(("flags F", {**full, **dict.fromkeys(flags, "F")}))
    out.append(("flags as JSON booleans", {**full, **dict.fromkeys(flags, False)}))
    some = first(spec, ("str", "int", "bool", "datetime", "date", "decimal", "float"))
    if some is not None:
        # As long as a full record, but one documented key swapped for an unknown one.
        swapped = {k: v for k, v in full.items() if k != some}
        out.append(("swapped", {**swapped, "undocumentedField": 1}))
        out.append(("bad value", {**full, some: {"not": "a value"}}))
    for wire in filter(None, (first(spec, ("datetime",)), first(spec, ("date",)))):
        for stamp in STAMPS:
            out.append((f"{wire}={stamp!r}", {**full, wire: stamp}))
    out.append(("links not an object", {**full, "links": ["5"]}))
    out.append(("bad link", {**full, "links": {"a": 1.5}}))
    out.append(("no links", {k: v for k, v in full.items() if k != "links"}))
    if "id" in full:
        out.append(("bad id", {**full, "id": ""}))
    return out
