"""The five-line integration test that README promises, using the bundled pytest fixtures."""

from __future__ import annotations

import pytest

from actionstep_async import AsyncResourceClient, Page
from actionstep_async.testing import FakeActionstep


async def test_actionstep_client_fixture_reads_a_matter(
    actionstep_client: AsyncResourceClient,
) -> None:
    """The actionstep_client fixture is authorized and reads seeded records."""
    action = await actionstep_client.get("actions", 1)
    assert action["id"] == 1


@pytest.mark.fake_actionstep(records={"participants": 7})
async def test_connect_gives_a_ready_client(fake_actionstep: FakeActionstep) -> None:
    """fake.connect() returns a client whose manager holds a token for the fake."""
    async with await fake_actionstep.connect("firm", scopes=("participants",)) as client:
        page = await client.list("participants")
        assert isinstance(page, Page)
        assert page.paging.record_count == 7
        assert (await client.manager.token("firm")).api_endpoint == fake_actionstep.api_endpoint


async def test_readme_example(actionstep_client: AsyncResourceClient) -> None:
    """The README's example runs as written."""
    action = await actionstep_client.get("actions", 1)  # a read-only mapping
    assert action["id"] == 1
    assert action["isDeleted"] in ("T", "F")
    typed = await actionstep_client.actions.get(1)  # an Action model
    assert typed.is_deleted in (True, False)  # Actionstep's "T"/"F", decoded
    assert actionstep_client.manager.refresh_count == 0


def test_plugin_is_registered_for_users() -> None:
    """Installing the package registers the fixtures' plugin under pytest's entry point group."""
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins["actionstep_async"] == "actionstep_async.testing.pytest_plugin"
