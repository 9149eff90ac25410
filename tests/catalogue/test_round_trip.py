"""Every catalogue resource round-trips through list, get, iterate, create and update.

Against the real FakeActionstep over loopback, plain (generic client, wire names) and typed
(accessors, attribute names), checking the request the fake received each time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from actionstep_async import AsyncResourceClient, Model, Record, _generated, to_wire
from actionstep_async._accessors import Accessor
from actionstep_async._catalogue import CATALOGUE, FieldSpec, ResourceSpec
from actionstep_async.testing import FAST_RETRY, FakeActionstep, ReceivedRequest

pytestmark = pytest.mark.fake_actionstep(records=dict.fromkeys(CATALOGUE, 3))


def specs(when: Callable[[ResourceSpec], bool] = lambda spec: True) -> list[Any]:
    return [pytest.param(spec, id=name) for name, spec in CATALOGUE.items() if when(spec)]


SPECS = specs()
JSON_API = "application/vnd.api+json"
AEST = timezone(timedelta(hours=10))
# Composite ids (actionparticipants) must not collide with a seeded one: type 7 is unused.
LINK_IDS = {"participantType": 7}

_PYTHON_VALUES: dict[str, Callable[[FieldSpec], object]] = {
    "int": lambda f: 7,
    "str": lambda f: f"new {f.wire}",
    "bool": lambda f: True,
    "decimal": lambda f: Decimal("12.50"),
    "float": lambda f: 2.5,
    "date": lambda f: date(2024, 3, 1),
    "datetime": lambda f: datetime(2024, 3, 1, 9, 30, tzinfo=AEST),
    "enum": lambda f: f.enum[-1],
}
_WIRE_VALUES: dict[str, Callable[[FieldSpec], object]] = {
    **_PYTHON_VALUES,
    "bool": lambda f: "T",
    "decimal": lambda f: "12.50",
    "date": lambda f: "2024-03-01",
    "datetime": lambda f: "2024-03-01T09:30:00+10:00",
}


def write_args(
    spec: ResourceSpec, allowed: frozenset[str], *, wire: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values for every field and link a write may carry (by attr or wire name)."""
    values = _WIRE_VALUES if wire else _PYTHON_VALUES
    fields = {
        (f.wire if wire else f.attr): values[f.kind](f)
        for f in spec.fields
        if f.wire in allowed and f.wire != "id"
    }
    links = {
        link.wire: [1] if link.many else LINK_IDS.get(link.wire, 2)
        for link in spec.links
        if link.wire in allowed
    }
    return fields, links


def modified_attr(spec: ResourceSpec) -> str | None:
    """The attribute name of the resource's modified timestamp, if it has one."""
    found = spec.field(spec.modified_field) if spec.modified_field else None
    return found.attr if found is not None else None


def server_now() -> datetime:
    """Now, at the one-second resolution the server stamps writes with."""
    return datetime.now(AEST).replace(microsecond=0)


def assert_stamped(value: object, since: datetime, sent: object) -> None:
    """The server moved the modified timestamp to the write's time, ignoring what was sent."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    assert moment >= since
    assert value != sent


def has_id(spec: ResourceSpec) -> bool:
    return any(f.wire == "id" for f in spec.fields)


@pytest.fixture
async def client(
    make_client: Callable[..., AsyncResourceClient],
) -> AsyncResourceClient:
    return make_client(retry=FAST_RETRY)


def last(fake: FakeActionstep) -> ReceivedRequest:
    return fake.received[-1]


def check_request(
    request: ReceivedRequest, method: str, path: str, body: dict[str, Any] | None = None
) -> None:
    """The fake saw this method and path, JSON API headers, a bearer token, a wrapped body."""
    assert (request.method, request.path) == (method, path)
    assert request.authorized
    assert request.accept is not None
    assert JSON_API in request.accept
    if body is not None:
        assert request.content_type == JSON_API
        assert request.body == body


def accessor(client: AsyncResourceClient, spec: ResourceSpec) -> Any:
    # Dynamic on purpose: one test body for 35 accessor classes (tests/typing pins the types).
    found = getattr(client, spec.name)
    assert isinstance(found, Accessor)
    return found


@pytest.mark.parametrize("spec", SPECS)
async def test_reads_are_spec_shaped_plain_and_typed(
    spec: ResourceSpec, client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """list, iterate and get serve every documented field, decoded by the resource's model."""
    name = spec.name
    plain = await client.list(name, page_size=2)
    check_request(last(fake_actionstep), "GET", name)
    assert plain.paging.record_count == 3
    raw = plain.records[0]
    assert isinstance(raw, Record)
    assert {f.wire for f in spec.fields} <= set(raw)
    assert {link.wire for link in spec.links} <= set(raw.links)

    typed = accessor(client, spec)
    page = await typed.list(page_size=2)
    first = page.records[0]
    assert isinstance(first, spec.model)
    assert first.extra == {}  # every field the fake sent is a documented one
    wire = to_wire(first)
    assert set(wire) - {"links"} == {f.wire for f in spec.fields}
    everything = [record async for record in typed.iterate(page_size=2)]
    assert len(everything) == 3
    assert all(isinstance(record, spec.model) for record in everything)
    if spec.get_by_id and has_id(spec):
        got = await typed.get(first.id)
        check_request(last(fake_actionstep), "GET", f"{name}/{first.id}")
        assert got == first
        both = await typed.get_many([first.id, page.records[1].id])
        check_request(last(fake_actionstep), "GET", f"{name}/{first.id},{page.records[1].id}")
        assert both == list(page.records)


@pytest.mark.parametrize(
    "spec",
    # A contact document is created by attaching an uploaded file, which the fake checks and
    # completes with the server's fields: tests/documents round-trips that create instead.
    specs(lambda spec: "POST" in spec.methods and spec.name != "contactdocuments"),
)
async def test_create_plain_and_typed(
    spec: ResourceSpec, client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """A create carrying every writable field reaches the fake wrapped, and comes back."""
    name = spec.name
    fields, links = write_args(spec, spec.create_writable, wire=True)
    since = server_now()
    created = await client.create(name, fields, links=links or None)
    wrapped = {name: {**fields, **({"links": links} if links else {})}}
    check_request(last(fake_actionstep), "POST", name, wrapped)
    assert isinstance(created, Record)
    for wire_name, value in fields.items():
        if wire_name == spec.modified_field:  # the server owns it: stamped on every write
            assert_stamped(created[wire_name], since, value)
        else:
            assert created[wire_name] == value

    if "participantType" in links:
        LINK_IDS["participantType"] += 1  # the next composite id must differ again
        links["participantType"] = LINK_IDS["participantType"]
    kwargs, _ = write_args(spec, spec.create_writable, wire=False)
    since = server_now()
    model = await accessor(client, spec).create(links=links or None, **kwargs)
    assert isinstance(model, spec.model)
    sent = last(fake_actionstep)
    check_request(sent, "POST", name)
    assert sent.body[name].get("links", {}) == links
    for attr, value in kwargs.items():
        if attr == modified_attr(spec):
            assert_stamped(getattr(model, attr), since, value)
        else:
            assert getattr(model, attr) == value


@pytest.mark.parametrize(
    "spec",
    specs(lambda spec: "PUT" in spec.methods and has_id(spec)),
)
async def test_update_plain_typed_and_save(
    spec: ResourceSpec, client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """An update of every writable field, then a read-modify-write that keeps ``extra``."""
    name = spec.name
    first = (await client.list(name, page_size=1)).records[0]
    assert isinstance(first, Record)
    ident = first.id
    fields, links = write_args(spec, spec.update_writable, wire=True)
    since = server_now()
    updated = await client.update(name, ident, fields, links=links or None)
    wrapped = {name: {**fields, **({"links": links} if links else {})}}
    check_request(last(fake_actionstep), "PUT", f"{name}/{ident}", wrapped)
    assert isinstance(updated, Record)
    for wire_name, value in fields.items():
        if wire_name == spec.modified_field:  # the server owns it: stamped on every write
            assert_stamped(updated[wire_name], since, value)
            assert updated[wire_name] != first[wire_name]
        else:
            assert updated[wire_name] == value

    typed = accessor(client, spec)
    kwargs, _ = write_args(spec, spec.update_writable, wire=False)
    since = server_now()
    model = await typed.update(ident, **kwargs)
    check_request(last(fake_actionstep), "PUT", f"{name}/{ident}")
    for attr, value in kwargs.items():
        if attr == modified_attr(spec):
            assert_stamped(getattr(model, attr), since, value)
        else:
            assert getattr(model, attr) == value

    # save(): the writable fields go back; unknown and read-only ones stay as they are.
    fake_actionstep.rest.table(name).update(
        int(str(ident)) if str(ident).isdigit() else ident, {"shinyNewField": "kept"}
    )
    fresh = await typed.get(ident) if spec.get_by_id else model
    if spec.get_by_id:
        assert fresh.extra == {"shinyNewField": "kept"}
    saved = await typed.save(fresh)
    check_request(last(fake_actionstep), "PUT", f"{name}/{ident}")
    body = last(fake_actionstep).body[name]
    assert set(body) - {"links"} <= spec.update_writable
    assert saved.extra == {"shinyNewField": "kept"}


@pytest.mark.parametrize(
    "spec",
    specs(lambda spec: "DELETE" in spec.methods and has_id(spec)),
)
async def test_delete(
    spec: ResourceSpec, client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    """delete sends DELETE <path>/<id>; the record is gone afterwards."""
    name = spec.name
    first = (await client.list(name, page_size=1)).records[0]
    assert isinstance(first, Record)
    await accessor(client, spec).delete(first.id)
    check_request(last(fake_actionstep), "DELETE", f"{name}/{first.id}")
    remaining = await client.list(name)
    assert first.id not in [record.id for record in remaining]


def test_every_accessor_has_only_its_resources_methods() -> None:
    """create/update/save/delete exist exactly where the resource documents the method."""
    for spec in CATALOGUE.values():
        cls = getattr(_generated, spec.model.__name__ + "Accessor")
        assert hasattr(cls, "create") == ("POST" in spec.methods)
        assert hasattr(cls, "update") == ("PUT" in spec.methods)
        assert hasattr(cls, "delete") == ("DELETE" in spec.methods)
        assert hasattr(cls, "get") == spec.get_by_id


def test_models_turn_back_into_wire_form_without_losing_unknown_fields() -> None:
    """to_wire gives T/F, ISO timestamps, decimal strings, links and the extra fields."""
    from actionstep_async._models import structure_record

    raw = {
        "id": 5,
        "name": "Smith v Jones",
        "isDeleted": "F",
        "createdTimestamp": "2024-03-01T09:30:00+10:00",
        "shinyNewField": [1, 2],
        "links": {"assignedTo": "12", "step": "3--1"},
    }
    action = structure_record("actions", raw, typed=True)
    assert isinstance(action, Model)
    wire = to_wire(action)
    assert wire["isDeleted"] == "F"
    assert wire["createdTimestamp"] == "2024-03-01T09:30:00+10:00"
    assert wire["shinyNewField"] == [1, 2]
    assert wire["links"] == {"assignedTo": 12, "step": "3--1"}
