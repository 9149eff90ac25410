"""Modified timestamps that move on every write, the filter on them, fields that appear later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .conftest import Api
from .test_fake_control import control


def _modified(result_json: dict[str, object]) -> datetime:
    record = result_json["actions"]
    assert isinstance(record, dict)
    return datetime.fromisoformat(str(record["modifiedTimestamp"]))


async def test_every_write_moves_the_modified_timestamp_and_the_body_cannot_set_it(
    api: Api,
) -> None:
    before = _modified((await api.get("actions/3")).json)
    started = datetime.now(UTC).replace(microsecond=0)
    body = {"actions": {"name": "Renamed", "modifiedTimestamp": "2001-01-01T00:00:00+10:00"}}
    updated = await api.call("PUT", "actions/3", json_body=body)
    assert updated.status == 200
    moved = _modified(updated.json)
    assert moved >= started > before
    created = await api.call("POST", "actions", json_body={"actions": {"name": "New"}})
    assert _modified(created.json) >= started
    api.fake.rest.table("actions").update(4, {"name": "In-process write"})
    assert _modified((await api.get("actions/4")).json) >= started


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
    created = await api.call("POST", "actions", json_body={"actions": {"name": "New"}})
    assert created.json["actions"]["matterColour"] == "teal"
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
