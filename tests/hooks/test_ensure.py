"""``client.hooks.ensure`` against the fake: idempotent, owner-aware, and it reports changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actionstep_async import AsyncResourceClient, HookSecret, InvalidRequestError
from actionstep_async.testing import FakeActionstep

from .conftest import SECRET

TARGET = "https://example.com/hooks"


async def test_second_call_changes_nothing(client: AsyncResourceClient) -> None:
    first = await client.hooks.ensure(["ActionCreated", "TaskUpdated"], TARGET, secret=SECRET)
    assert [h.event_name for h in first.created] == ["ActionCreated", "TaskUpdated"]
    again = await client.hooks.ensure(["TaskUpdated", "ActionCreated"], TARGET, secret=SECRET)
    assert not again.changed
    assert {h.id for h in again.unchanged} == {h.id for h in first.created}
    hooks = await client.hooks.list()
    assert len(hooks) == 2
    assert all(SECRET.owns(h.target_url) for h in hooks)
    tokens = {h.target_url for h in hooks}
    assert len(tokens) == 2  # one token per subscription


async def test_new_target_is_a_retarget_and_unwanted_events_are_removed(
    client: AsyncResourceClient,
) -> None:
    first = await client.hooks.ensure(["ActionCreated", "TaskUpdated"], TARGET, secret=SECRET)
    moved = await client.hooks.ensure(["ActionCreated"], "https://new.example.com/h", secret=SECRET)
    assert [h.id for h in moved.retargeted] == [first.created[0].id]
    assert [h.event_name for h in moved.removed] == ["TaskUpdated"]
    (hook,) = await client.hooks.list()
    assert hook.target.startswith("https://new.example.com/h?hook_token=")


async def test_hooks_of_another_secret_are_left_alone(client: AsyncResourceClient) -> None:
    other = HookSecret.generate()
    theirs = await client.hooks.ensure(["ActionCreated"], TARGET, secret=other)
    mine = await client.hooks.ensure(["TaskCreated"], TARGET, secret=SECRET)
    assert not mine.removed
    assert {h.id for h in await client.hooks.list()} == {
        theirs.created[0].id,
        mine.created[0].id,
    }


async def test_disabled_hook_is_recreated(
    fake: FakeActionstep, client: AsyncResourceClient
) -> None:
    (hook,) = (await client.hooks.ensure(["ActionUpdated"], TARGET, secret=SECRET)).created
    fake.hooks.disable(hook.id)
    result = await client.hooks.ensure(["ActionUpdated"], TARGET, secret=SECRET)
    (fresh,) = result.recreated
    assert fresh.id != hook.id
    assert fresh.active
    assert [h.id for h in await client.hooks.list()] == [fresh.id]
    assert result.active == (fresh,)


async def test_bad_arguments_are_refused_before_any_request(
    fake: FakeActionstep, client: AsyncResourceClient
) -> None:
    for events, target in ((["Nope"], TARGET), (["ActionCreated"], "not a url")):
        with pytest.raises(InvalidRequestError):
            await client.hooks.ensure(events, target, secret=SECRET)  # type: ignore[arg-type]
    assert sum(fake.counters.requests.values()) == 0


async def test_reconcile_refuses_resources_without_a_modified_time(
    client: AsyncResourceClient,
) -> None:
    with pytest.raises(InvalidRequestError, match="no modified timestamp"):
        client.hooks.reconcile("filenotes", since=datetime.now(UTC))
    with pytest.raises(InvalidRequestError, match="aware"):
        client.hooks.reconcile("actions", since=datetime(2024, 1, 1))


async def test_rotating_the_secret(fake: FakeActionstep, client: AsyncResourceClient) -> None:
    """Subscribe under the new secret, then retire the old hooks with an empty wish list."""
    old, new = SECRET, HookSecret.generate()
    await client.hooks.ensure(["ActionUpdated"], TARGET, secret=old)
    created = (await client.hooks.ensure(["ActionUpdated"], TARGET, secret=new)).created
    retired = (await client.hooks.ensure([], TARGET, secret=old)).removed
    assert [h.event_name for h in retired] == ["ActionUpdated"]
    assert [h.id for h in await client.hooks.list()] == [created[0].id]


async def test_delete_says_whether_there_was_a_hook(client: AsyncResourceClient) -> None:
    hook = await client.hooks.create("TaskCreated", TARGET, secret=SECRET)
    assert await client.hooks.delete(hook)
    assert not await client.hooks.delete(hook.id)
    assert await client.hooks.list() == []
