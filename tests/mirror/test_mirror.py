"""Mirror against the real FakeActionstep, into a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import attrs
import pytest
from sqlalchemy import inspect, select

from actionstep_async import AsyncResourceClient
from actionstep_async.mirror import Mirror, MirrorError
from actionstep_async.mirror._columns import REVISION_COLUMN
from actionstep_async.mirror._plan import delta_filters
from actionstep_async.mirror._url import parse_database_url
from actionstep_async.testing import FakeActionstep

from .conftest import assert_mirror_equals_fake, mirror_rows

RECORDS = {"actions": 3000, "participants": 300, "filenotes": 200}


@pytest.fixture
async def fake() -> AsyncIterator[FakeActionstep]:
    async with FakeActionstep(RECORDS, seed=18) as server:
        yield server


@pytest.fixture
async def client(fake: FakeActionstep) -> AsyncIterator[AsyncResourceClient]:
    async with await fake.connect(scopes=["all"]) as resource_client:
        yield resource_client


@attrs.frozen
class Event:
    resource: str
    id: object
    event_name: str


def _get_requests(fake: FakeActionstep, resource: str) -> int:
    return sum(
        n
        for (method, route, _), n in fake.counters.requests.items()
        if (method, route) == ("GET", resource)
    )


async def test_full_load_equals_the_fake_field_for_field(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    async with Mirror(client, database_url) as mirror:
        results = await mirror.sync(["actions", "participants", "filenotes"])
        assert [(r.resource, r.step) for r in results] == [
            ("actions", "full"),
            ("participants", "full"),
            ("filenotes", "reload"),
        ]
        assert [r.written for r in results] == [3000, 300, 200]
        for resource in RECORDS:
            await assert_mirror_equals_fake(mirror, fake, resource)


async def test_one_incremental_run_reflects_every_change_and_fetches_only_those(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    async with Mirror(client, database_url) as mirror:
        [first] = await mirror.sync(["actions"])
        table = fake.rest.table("actions")
        # 1,000 updates: most in-process, some through the API's writable fields.
        for ident in range(1, 981):
            table.update(ident, {"name": f"Renamed {ident}", "priority": ident % 4})
        for ident in range(981, 991):
            await client.update("actions", ident, {"name": f"Renamed {ident}", "priority": 1})
        # The API offers no POST or DELETE on actions and isDeleted is read-only: soft deletes,
        # creates and hard deletes happen in the organisation, i.e. in-process here.
        for ident in range(991, 1001):
            table.update(ident, {"isDeleted": "T"})
        for n in range(100):
            table.create({"name": f"New matter {n}", "links": {"actionType": str(1 + n % 2)}})
        for ident in range(1001, 1051):
            table.delete(ident)
        fake.counters.reset()

        [result] = await mirror.sync(["actions"], scan=True)

        await assert_mirror_equals_fake(mirror, fake, "actions")
        assert (result.step, result.written, result.deleted) == ("delta", 1100, 50)
        rows = await mirror_rows(mirror, "actions")
        assert all(rows[i]["is_deleted"] for i in range(991, 1001))
        # Only what changed came in full: the overlap re-reads at most a few seeded records.
        [(key, since)] = delta_filters(
            "modifiedTimestamp", first.checkpoint, mirror.overlap
        ).items()
        cutoff = datetime.fromisoformat(since).replace(tzinfo=UTC)
        matching = sum(
            1 for r in table.records() if datetime.fromisoformat(r["modifiedTimestamp"]) >= cutoff
        )
        assert 1100 <= matching <= 1105
        assert fake.counters.records_served["actions"] == matching == result.fetched
        live = len(table)
        assert fake.counters.records_served["actions:fields"] == 1 + live  # newest + id scan
        assert _get_requests(fake, "actions") == 1 + math.ceil(matching / 200) + math.ceil(
            live / 200
        )
        assert key == "modifiedTimestamp_gteq"


async def test_an_idle_run_fetches_nothing(
    fake: FakeActionstep, client: AsyncResourceClient, sqlite_url: str
) -> None:
    async with Mirror(client, sqlite_url, overlap=0) as mirror:
        await mirror.sync(["actions"], scan=False)
        fake.counters.reset()
        [result] = await mirror.sync(["actions"], scan=False)
        assert (result.step, result.written) == ("delta", 0)
        assert fake.counters.records_served["actions"] <= 1  # the newest record, re-read by _gteq
        assert _get_requests(fake, "actions") <= 2


async def test_a_field_that_appears_later_becomes_a_column(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    async with Mirror(client, database_url) as mirror:
        await mirror.sync(["actions"])
        fake.add_field("actions", "matterColour", "teal")
        fake.rest.table("actions").update(7, {"name": "Touched"})
        [result] = await mirror.sync(["actions"])
        # Record 7, and whatever the overlap re-read: its JSON gained the field, so it changed.
        assert result.written == result.fetched >= 1
        async with mirror.engine.connect() as conn:
            names = await conn.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("actions")]
            )
        assert "matter_colour" in names
        rows = await mirror_rows(mirror, "actions")
        assert rows[7]["matter_colour"] == "teal"
        assert rows[7]["_record"]["matterColour"] == "teal"
        assert rows[8]["matter_colour"] is None  # not re-read yet: no write moved its timestamp
    # A new process (a fresh Mirror) finds the column and keeps using it.
    async with Mirror(client, database_url) as again:
        fake.rest.table("actions").update(8, {"name": "Touched too"})
        await again.sync(["actions"])
        assert (await mirror_rows(again, "actions"))[8]["matter_colour"] == "teal"


async def test_two_workers_at_once_one_waits_and_no_row_is_written_twice(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    async with Mirror(client, database_url) as one, Mirror(client, database_url) as two:
        results = await asyncio.gather(one.sync(["actions"]), two.sync(["actions"]))
        first, second = sorted((r for [r] in results), key=lambda r: r.waited)
        assert (first.step, first.written) == ("full", 3000)
        assert (second.step, second.written) == ("delta", 0)
        assert second.waited > 0.05
        async with one.engine.connect() as conn:
            revisions = (
                (await conn.execute(select(one.table("actions").table.c[REVISION_COLUMN])))
                .scalars()
                .all()
            )
        assert len(revisions) == 3000
        assert set(revisions) == {1}


class _Crash(Exception):
    pass


class _CrashAfter:
    """A reporter that kills the run after some batches were committed."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def begin(self, resource: str, *, total: int, done: int) -> None:
        pass

    def advance(self, resource: str, records: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise _Crash

    def finish(self, resource: str) -> None:
        pass


async def test_an_interrupted_full_load_resumes_after_the_last_committed_id(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    async with Mirror(client, database_url, batch_size=500, reporter=_CrashAfter(3)) as mirror:
        with pytest.raises(_Crash):
            await mirror.sync(["actions"])
        assert len(await mirror_rows(mirror, "actions")) == 1500
        fake.rest.table("actions").update(10, {"name": "Changed while we were down"})
        fake.rest.table("actions").update(2999, {"name": "Changed before we got there"})
        mirror.reporter = _CrashAfter(0)
        fake.counters.reset()
        [resumed] = await mirror.sync(["actions"], scan=False)
        assert resumed.step == "resume"
        # The other 1,500, then record 10 (changed below the cursor) by the delta of that run.
        assert resumed.written == 1501
        assert fake.counters.records_served["actions"] == resumed.fetched <= 1500 + 3
        [delta] = await mirror.sync(["actions"], scan=False)
        assert delta.written == 0
        await assert_mirror_equals_fake(mirror, fake, "actions")
        revisions = {
            row[REVISION_COLUMN] for row in (await mirror_rows(mirror, "actions")).values()
        }
        assert revisions <= {1, 2}


async def test_apply_refetches_and_upserts_or_deletes(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    table = fake.rest.table("actions")
    async with Mirror(client, database_url) as mirror:
        await mirror.sync(["actions"])
        table.update(5, {"name": "Hooked"})
        assert await mirror.apply(Event("actions", 5, "ActionUpdated")) == "written"
        assert await mirror.apply(Event("actions", 5, "ActionUpdated")) == "unchanged"
        created = table.create({"name": "Hooked new"})
        assert await mirror.apply(Event("actions", created["id"], "ActionCreated")) == "written"
        table.delete(6)
        assert await mirror.apply(Event("actions", 6, "ActionDeleted")) == "deleted"
        table.delete(7)  # an update event for a record gone by the time we read it
        assert await mirror.apply(Event("actions", 7, "ActionUpdated")) == "deleted"
        assert await mirror.apply(Event("actions", 7, "ActionDeleted")) == "unchanged"
        await assert_mirror_equals_fake(mirror, fake, "actions")


async def test_a_resource_without_modified_timestamps_reloads_and_drops_deleted_rows(
    fake: FakeActionstep, client: AsyncResourceClient, database_url: str
) -> None:
    table = fake.rest.table("filenotes")
    async with Mirror(client, database_url) as mirror:
        await mirror.sync(["filenotes"])
        table.update(4, {"text": "Edited"})
        table.delete(3)
        table.create({"text": "Fresh note", "links": {"action": "1"}})
        [result] = await mirror.sync(["filenotes"])
        assert (result.step, result.written, result.deleted) == ("reload", 2, 1)
        await assert_mirror_equals_fake(mirror, fake, "filenotes")


async def test_a_database_mirrors_one_organisation(
    client: AsyncResourceClient, sqlite_url: str
) -> None:
    async with Mirror(client, sqlite_url) as mirror:
        await mirror.sync(["participants"])
    async with Mirror(client, sqlite_url, organisation="another-firm") as other:
        with pytest.raises(MirrorError, match="another-firm"):
            await other.sync(["participants"])


async def test_unknown_resources_are_refused(client: AsyncResourceClient, sqlite_url: str) -> None:
    async with Mirror(client, sqlite_url) as mirror:
        with pytest.raises(MirrorError, match="nosuchthing"):
            await mirror.sync(["nosuchthing"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/db", "unsupported database"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
        ("no url at all", "not a database URL"),
        ("postgresql+psycopg://u@h/db", "unsupported database"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(MirrorError, match=message):
        parse_database_url(url)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///actionstep.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_plain_urls_get_async_drivers(url: str, driver: str) -> None:
    assert parse_database_url(url).url.drivername == driver


def test_repr_hides_the_database_password(client: AsyncResourceClient) -> None:
    mirror = Mirror(client, "postgresql://user:sentinel-db-password@127.0.0.1/db")
    assert "sentinel-db-password" not in repr(mirror)
