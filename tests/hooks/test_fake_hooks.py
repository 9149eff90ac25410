"""FakeActionstep's REST hooks: the resthooks resource, which writes fire what, and delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from actionstep_async import APIError, AsyncResourceClient
from actionstep_async.testing import FakeActionstep
from actionstep_async.testing._hooks import events_for

from .conftest import SECRET


@pytest.mark.parametrize(
    ("resource", "kind", "before", "after", "expected"),
    [
        ("actions", "created", None, {}, ["ActionCreated"]),
        (
            "actions",
            "updated",
            {"links": {"step": "1--1"}},
            {"links": {"step": "1--1"}},
            ["ActionUpdated"],
        ),
        (
            "actions",
            "updated",
            {"links": {"step": "1--1"}},
            {"links": {"step": "1--2"}},
            ["ActionUpdated", "StepChanged"],
        ),
        ("actionparticipants", "created", None, {}, ["ActionParticipantAdded"]),
        ("actionparticipants", "deleted", None, {}, ["ActionParticipantDeleted"]),
        ("datacollectionrecordvalues", "updated", None, {}, ["DataCollectionRecordValueUpdated"]),
        ("datacollectionrecords", "updated", None, {}, ["DataCollectionRecordUpdated"]),
        ("participants", "deleted", None, {}, []),  # no such event is documented
        ("timeentries", "created", None, {}, ["TimeEntryCreated"]),
        ("resthooks", "created", None, {}, []),
    ],
)
def test_which_writes_fire_which_events(
    resource: str,
    kind: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    expected: list[str],
) -> None:
    assert events_for(resource, kind, before, after) == expected


@pytest.mark.parametrize(
    "fields",
    [{"eventName": "ActionCreated"}, {"eventName": 5, "targetUrl": "https://x/y"}],
)
async def test_resthooks_writes_are_validated(
    client: AsyncResourceClient, fields: dict[str, object]
) -> None:
    with pytest.raises(APIError) as caught:
        await client.create("resthooks", fields)
    assert caught.value.status in (400, 422)


async def test_a_hook_for_an_unknown_event_is_stored_and_never_fires(
    fake: FakeActionstep, client: AsyncResourceClient
) -> None:
    await client.create("resthooks", {"eventName": "Nope", "targetUrl": "https://x/y"})
    await client.update("actions", 1, {"name": "quiet"})
    assert fake.hooks.counters.queued == 0


async def test_a_new_hook_is_active_with_no_triggers(client: AsyncResourceClient) -> None:
    created = await client.create(
        "resthooks", {"eventName": "TaskCreated", "targetUrl": "https://x/y", "status": "Disabled"}
    )
    assert created["status"] == "Active"  # status is the server's to set
    assert created["triggeredCount"] == 0
    assert created["triggeredLastTimestamp"] is None


@pytest.fixture
async def answering() -> AsyncIterator[tuple[str, list[Any], list[int]]]:
    """A target that records bodies and answers the statuses queued in its list (then 200)."""
    bodies: list[Any] = []
    statuses: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/in", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/in", bodies, statuses
    await runner.cleanup()


async def test_the_payload_has_the_real_shape(
    fake: FakeActionstep,
    client: AsyncResourceClient,
    answering: tuple[str, list[Any], list[int]],
) -> None:
    url, bodies, _ = answering
    hook = await client.hooks.create("ActionUpdated", url, secret=SECRET)
    await client.update("actions", 3, {"name": "Renamed"})
    async with asyncio.timeout(30):
        await fake.hooks.drain()
    (body,) = bodies
    assert body["jsonapi"] == {"version": "1.0"}
    assert body["data"]["type"] == "actions"
    assert body["data"]["id"] == "3"
    assert body["data"]["attributes"]["name"] == "Renamed"
    assert body["data"]["relationships"]["actionType"]["data"]["type"] == "actiontypes"
    meta = body["meta"]["debug"]["resthook"]
    assert meta["id"] == str(hook.id)
    assert meta["event_name"] == "ActionUpdated"
    assert (meta["resource_type"], meta["resource_id"], meta["trigger_count"]) == (
        "actions",
        "3",
        1,
    )
    (listed,) = await client.hooks.list()
    assert listed.triggered_count == 1
    assert listed.triggered_last is not None


async def test_a_non_200_answer_disables_the_hook(
    fake: FakeActionstep,
    client: AsyncResourceClient,
    answering: tuple[str, list[Any], list[int]],
) -> None:
    url, bodies, statuses = answering
    statuses.append(500)
    await client.hooks.create("ParticipantUpdated", url, secret=SECRET)
    await client.update("participants", 1, {"firstName": "One"})
    await client.update("participants", 2, {"firstName": "Two"})
    async with asyncio.timeout(30):
        await fake.hooks.drain()
    assert len(bodies) == 1  # the second change is not sent to a disabled hook
    (listed,) = await client.hooks.list()
    assert listed.status == "Disabled"
    assert fake.hooks.counters.deliveries[("ParticipantUpdated", 500)] == 1
    assert fake.hooks.counters.disabled == 1


async def test_control_route_shows_hooks_redacted_and_sets_repeat(
    fake: FakeActionstep, client: AsyncResourceClient
) -> None:
    hook = await client.hooks.create("TaskCreated", "https://x/y", secret=SECRET)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.base_url}/_fake/hooks", json={"repeat": 2}) as response:
            document = await response.json()
        async with session.post(f"{fake.base_url}/_fake/hooks", json={"nope": 1}) as response:
            assert response.status == 400
    (shown,) = document["subscriptions"]
    assert shown["id"] == hook.id
    assert shown["targetUrl"] == "https://x/y?hook_token=..."
    assert fake.hooks.repeat == 2
    assert document["delivered"] == 0
