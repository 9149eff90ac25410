"""Modified timestamps that move on every write, the filter on them, fields that appear later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actionstep_async._catalogue import CATALOGUE

from .conftest import Api
from .test_fake_control import control

EARLY = "2001-01-01T00:00:00+10:00"
# Resources whose catalogue lets a write carry the modified timestamp, with a valid create body.
WRITABLE_MODIFIED = [
    pytest.param("participants", {"displayName": "New"}, id="participants"),
    pytest.param(
        "tasks",
        {
            "name": "New",
            "status": "Incomplete",
            "dueTimestamp": "2024-03-01T09:30:00+10:00",
            "links": {"action": "1", "assignee": "1"},
        },
        id="tasks",
    ),
]


def _modified(result_json: dict[str, Any], resource: str = "actions") -> datetime:
    record = result_json[resource]
    assert isinstance(record, dict)
    field = CATALOGUE[resource].modified_field
    assert field is not None
    return datetime.fromisoformat(str(record[field]))


async def test_every_write_moves_the_modified_timestamp_and_a_read_only_one_is_refused(
    api: Api,
) -> None:
    assert "modifiedTimestamp" not in CATALOGUE["actions"].update_writable  # the premise
    before = (await api.get("actions/3")).json
    started = datetime.now(UTC).replace(microsecond=0)
    body = {"actions": {"name": "Renamed", "modifiedTimestamp": EARLY}}
    refused = await api.call("PUT", "actions/3", json_body=body)
    assert refused.status == 422
    [error] = refused.json["errors"]
    assert (error["code"], error["source"]["pointer"]) == (
        "read_only_field",
        "/actions/modifiedTimestamp",
    )
    assert (await api.get("actions/3")).json["actions"] == before["actions"]  # nothing written
    updated = await api.call("PUT", "actions/3", json_body={"actions": {"name": "Renamed"}})
    assert updated.status == 200
    assert _modified(updated.json) >= started > _modified(before)
    api.fake.rest.table("actions").update(4, {"name": "In-process write"})
    assert _modified((await api.get("actions/4")).json) >= started
    created = api.fake.rest.table("actions").create({"name": "In-process create"})
    assert _modified((await api.get(f"actions/{created['id']}")).json) >= started


@pytest.mark.parametrize(("resource", "create"), WRITABLE_MODIFIED)
async def test_a_writable_modified_timestamp_is_still_stamped_by_the_server(
    api: Api, resource: str, create: dict[str, Any]
) -> None:
    spec = CATALOGUE[resource]
    field = spec.modified_field
    assert field is not None
    assert field in spec.create_writable & spec.update_writable  # the premise
    started = datetime.now(UTC).replace(microsecond=0)
    created = await api.call("POST", resource, json_body={resource: {**create, field: EARLY}})
    assert created.status in (200, 201), created.json
    assert _modified(created.json, resource) >= started
    ident = created.json[resource]["id"]
    updated = await api.call("PUT", f"{resource}/{ident}", json_body={resource: {field: EARLY}})
    assert updated.status == 200, updated.json
    assert _modified(updated.json, resource) >= started
    assert _modified((await api.get(f"{resource}/{ident}")).json, resource) >= started


async def test_the_modified_filter_takes_utc_without_an_offset(api: Api) -> None:
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    for ident in (5, 9, 11):
        await api.call("PUT", f"actions/{ident}", json_body={"actions": {"priority": 1}})
    since = started.strftime("%Y-%m-%dT%H:%M:%S")
    result = await api.get("actions", modifiedTimestamp_gteq=since, sort="id")
    assert [record["id"] for record in result.json["actions"]] == [5, 9, 11]
    assert (await api.get("actions", modifiedTimestamp_gt="2099-01-01T00:00:00")).status == 204


async def test_a_new_field_appears_on_every_record_without_moving_timestamps(api: Api) -> None:
    before = (await api.get("actions/2")).json["actions"]
    status, _ = await control(
        api.session,
        api.fake.base_url,
        "POST",
        "fields",
        {"resource": "actions", "field": "matterColour", "value": "teal"},
    )
    assert status == 200
    after = (await api.get("actions/2")).json["actions"]
    assert after == {**before, "matterColour": "teal"}
    # Records created later carry it too, in-process and over HTTP (actions have no POST).
    assert api.fake.rest.table("actions").create({"name": "New"})["matterColour"] == "teal"
    status, _ = await control(
        api.session,
        api.fake.base_url,
        "POST",
        "fields",
        {"resource": "participants", "field": "matterColour", "value": "teal"},
    )
    assert status == 200
    body = {"participants": {"displayName": "New"}}
    created = await api.call("POST", "participants", json_body=body)
    assert created.json["participants"]["matterColour"] == "teal"
    # Known now: it can be filtered on, and adding it twice is refused.
    assert (await api.get("actions", matterColour="teal", pageSize="1")).status == 200
    status, error = await control(
        api.session,
        api.fake.base_url,
        "POST",
        "fields",
        {"resource": "actions", "field": "matterColour"},
    )
    assert status == 400
    assert "already" in error["error"]


async def test_records_served_counts_full_and_fieldset_records(api: Api) -> None:
    await api.get("actions", pageSize="30")
    await api.get("actions", fields="id", pageSize="7")
    served = api.fake.counters.records_served
    assert (served["actions"], served["actions:fields"]) == (30, 7)
    _, counters = await control(api.session, api.fake.base_url, "GET", "counters")
    assert counters["records_served"] == {"actions": 30, "actions:fields": 7}
    api.fake.counters.reset()
    assert not api.fake.counters.records_served
