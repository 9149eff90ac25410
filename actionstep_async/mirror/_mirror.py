"""``Mirror``: keeps a SQLite or PostgreSQL copy of Actionstep resources current."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, TypeVar

import attrs
from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .._catalogue import CATALOGUE, ResourceSpec
from .._client import AsyncResourceClient
from .._errors import NotFoundError
from ._errors import MirrorError
from ._locks import hold_lock
from ._plan import (
    State,
    Step,
    advance_cursor,
    delta_filters,
    event_deletes,
    later,
    plan_step,
    resume_filters,
    scan_due,
)
from ._store import ResourceTable, load_state, save_state, state_table
from ._url import parse_database_url

__all__ = ["HookEvent", "Mirror", "SyncReporter", "SyncResult"]

_SCHEMA_LOCK: Final = "-schema"  # no resource name starts with "-"
_GET_CHUNK: Final = 50  # a GET of an id list is paged like any list (50 per page)
_T = TypeVar("_T")
DEFAULT_OVERLAP: Final = 120.0
DEFAULT_SCAN_INTERVAL: Final = 86_400.0


class SyncReporter(Protocol):
    """Progress of a run (the CLI draws progress bars from it)."""

    def begin(self, resource: str, *, total: int, done: int) -> None: ...

    def advance(self, resource: str, records: int) -> None: ...

    def finish(self, resource: str) -> None: ...


class HookEvent(Protocol):
    """What :meth:`Mirror.apply` needs from a REST-hook event."""

    @property
    def resource(self) -> str: ...

    @property
    def id(self) -> object: ...


@attrs.frozen
class SyncResult:
    """What one run did to one resource."""

    resource: str
    step: Step
    fetched: int
    written: int
    deleted: int
    scanned: bool
    waited: float
    elapsed: float
    checkpoint: str | None


class _Quiet:
    def begin(self, resource: str, *, total: int, done: int) -> None:
        pass

    def advance(self, resource: str, records: int) -> None:
        pass

    def finish(self, resource: str) -> None:
        pass


@attrs.define
class _Run:
    """Counters of one resource's run."""

    fetched: int = 0
    written: int = 0
    deleted: int = 0
    scanned: bool = False


try:  # the ``speed`` extra: the JSON column is a third of the cost of writing a row
    import orjson

    def _json_text(value: object) -> str:
        return orjson.dumps(value).decode()

except ImportError:  # pragma: no cover - exercised only without the extra
    import json

    def _json_text(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@contextlib.asynccontextmanager
async def _closing(iterator: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async iterator when the block ends, not when the garbage collector finds it:
    a cancelled run (Ctrl-C) cancels and awaits the page requests still in flight first."""
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _sqlite_pragmas(dbapi_connection: Any, _: object) -> None:
    # WAL: readers never block the writer and a killed process loses only its open
    # transaction. NORMAL is durable against process crashes (not power loss) and much faster.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Mirror:
    """A local copy of Actionstep resources, in SQLite (``sqlite:///actionstep.db``) or
    PostgreSQL (``postgresql://user@host/db``).

    ``await mirror.sync(["actions"])``: the first run loads everything, later runs fetch only
    what was modified since the last one (re-reading ``overlap`` seconds before it), and every
    ``scan_interval`` seconds a run also lists all ids (``fields=id``) to find hard deletes.
    Records and progress commit in the same transaction, so a run killed at any moment resumes
    with nothing duplicated or missed. One worker per organisation and resource writes at a
    time; others wait. ``organisation`` defaults to the token's ``orgkey``.
    """

    def __init__(
        self,
        client: AsyncResourceClient,
        database_url: str,
        *,
        organisation: str | None = None,
        overlap: float = DEFAULT_OVERLAP,
        scan_interval: float = DEFAULT_SCAN_INTERVAL,
        batch_size: int = 1000,
        concurrency: int = 4,
        catalogue: Mapping[str, ResourceSpec] = CATALOGUE,
        reporter: SyncReporter | None = None,
    ) -> None:
        if overlap < 0 or scan_interval < 0 or batch_size < 1 or concurrency < 1:
            raise MirrorError("overlap and scan_interval must be >= 0, batch_size/concurrency >= 1")
        self.client = client
        self.target = parse_database_url(database_url)
        self.overlap = overlap
        self.scan_interval = scan_interval
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.catalogue = catalogue
        self.reporter: SyncReporter = reporter or _Quiet()
        self._organisation = organisation
        self._tables: dict[str, ResourceTable] = {}
        self._engine: AsyncEngine | None = None

    def __repr__(self) -> str:
        url = self.target.url.render_as_string(hide_password=True)
        return f"Mirror({url!r}, organisation={self._organisation!r})"

    async def __aenter__(self) -> Mirror:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (created on first use), for reading the mirror."""
        if self._engine is None:
            sqlite = self.target.sqlite_file is not None
            args = {"timeout": 60} if sqlite else {}
            self._engine = create_async_engine(
                self.target.url, connect_args=args, json_serializer=_json_text
            )
            if sqlite:
                event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        return self._engine

    async def organisation(self) -> str:
        if self._organisation is None:
            token = await self.client.manager.token(self.client.key)
            self._organisation = token.orgkey or "default"
        return self._organisation

    def spec(self, resource: str) -> ResourceSpec:
        spec = self.catalogue.get(resource)
        if spec is None or "GET" not in spec.methods:
            raise MirrorError(f"{resource!r} is not a resource the catalogue can read")
        return spec

    def table(self, resource: str) -> ResourceTable:
        """The table of a prepared resource (after a sync or apply touched it)."""
        return self._tables[resource]

    # -- runs ------------------------------------------------------------------------------

    async def sync(
        self, resources: Sequence[str] | None = None, *, scan: bool | None = None
    ) -> list[SyncResult]:
        """Bring each resource up to date (all readable catalogue resources by default).

        ``scan`` forces (True) or skips (False) the id scan that finds hard deletes; by default
        it runs when ``scan_interval`` has passed since the last one.
        """
        names = (
            list(resources)
            if resources
            else [n for n, s in self.catalogue.items() if "GET" in s.methods]
        )
        specs = [self.spec(name) for name in names]
        return [await self._sync_one(spec, scan) for spec in specs]

    async def _sync_one(self, spec: ResourceSpec, scan: bool | None) -> SyncResult:
        started = time.monotonic()
        organisation = await self.organisation()
        table = await self._prepare(spec)
        async with self._lock(spec.name) as waited:
            await self._refresh(table)
            state = await self._state(spec.name, organisation)
            step = plan_step(state, has_modified=spec.modified_field is not None)
            run = _Run()
            if step == "reload":
                state = await self._reload(table, state or State(spec.name, organisation), run)
            else:
                if step in ("full", "resume"):
                    state = await self._full(table, state, organisation, run)
                # After a load too: what changed while it ran (or while it lay interrupted) is
                # in by the time the run returns.
                state = await self._delta(table, state, run)
                if scan_due(state, now=time.time(), interval=self.scan_interval, requested=scan):
                    state = await self._scan(table, state, run)
        self.reporter.finish(spec.name)
        return SyncResult(
            resource=spec.name,
            step=step,
            fetched=run.fetched,
            written=run.written,
            deleted=run.deleted,
            scanned=run.scanned,
            waited=waited,
            elapsed=time.monotonic() - started,
            checkpoint=state.checkpoint,
        )

    def _lock(self, resource: str) -> Any:
        organisation = self._organisation or "default"
        return hold_lock(self.engine, organisation, resource, self.target.sqlite_file)

    async def _prepare(self, spec: ResourceSpec) -> ResourceTable:
        table = self._tables.get(spec.name)
        if table is not None:
            return table
        table = ResourceTable(spec)
        # DDL from two workers at once can collide (PostgreSQL's catalog is not IF NOT EXISTS
        # safe under concurrency), so table creation has a lock of its own.
        async with self._lock(_SCHEMA_LOCK), self.engine.begin() as conn:
            await conn.run_sync(lambda sync: state_table(MetaData()).create(sync, checkfirst=True))
            await table.prepare(conn)
        self._tables[spec.name] = table
        return table

    async def _refresh(self, table: ResourceTable) -> None:
        # Under the run lock: another worker may have added columns since we last looked.
        async with self.engine.begin() as conn:
            await table.prepare(conn)

    async def _state(self, resource: str, organisation: str) -> State | None:
        async with self.engine.connect() as conn:
            state = await load_state(conn, resource)
        if state is not None and state.organisation != organisation:
            raise MirrorError(
                f"this database mirrors organisation {state.organisation!r}, not"
                f" {organisation!r}; use one database per organisation"
            )
        return state

    async def _newest(
        self, spec: ResourceSpec, filters: Mapping[str, str]
    ) -> tuple[str | None, int]:
        """The newest modified timestamp matching ``filters``, and how many records match."""
        field = spec.modified_field
        assert field is not None
        page = await self.client.list(
            spec.name, filters=filters, sort=[f"-{field}"], fields=["id", field], page_size=1
        )
        newest = page.records[0].get(field) if page.records else None
        return (str(newest) if newest is not None else None), page.paging.record_count

    def _iterate(
        self, spec: ResourceSpec, filters: Mapping[str, str], **options: Any
    ) -> AsyncIterator[Any]:
        return self.client.iterate(
            spec.name, filters=filters, concurrency=self.concurrency, **options
        )

    async def _batches(
        self, spec: ResourceSpec, filters: Mapping[str, str], run: _Run, **options: Any
    ) -> AsyncIterator[list[Mapping[str, Any]]]:
        batch: list[Mapping[str, Any]] = []
        async with _closing(self._iterate(spec, filters, **options)) as records:
            async for record in records:
                batch.append(record)
                if len(batch) >= self.batch_size:
                    run.fetched += len(batch)
                    yield batch
                    self.reporter.advance(spec.name, len(batch))
                    batch = []
        if batch:
            run.fetched += len(batch)
            yield batch
            self.reporter.advance(spec.name, len(batch))

    async def _full(
        self, table: ResourceTable, state: State | None, organisation: str, run: _Run
    ) -> State:
        """First load, committed batch by batch with the id to resume after."""
        spec = table.spec
        since, total = await self._newest(spec, {})
        if state is None or state.since is None:
            state = State(spec.name, organisation, phase="full", since=since)
        else:
            since = state.since  # the older mark is the safe one
        async with self.engine.begin() as conn:
            await save_state(conn, state)
        self.reporter.begin(spec.name, total=total, done=0)
        ordered = True
        batches = self._batches(spec, resume_filters(state.cursor), run)
        async with _closing(batches):
            async for batch in batches:
                cursor = state.cursor
                if ordered:
                    cursor, ordered = advance_cursor(cursor, (r.get("id") for r in batch))
                state = attrs.evolve(state, cursor=cursor if ordered else None)
                async with self.engine.begin() as conn:
                    run.written += await table.upsert(conn, batch)
                    await save_state(conn, state)
        state = State(spec.name, organisation, phase="delta", checkpoint=state.since)
        async with self.engine.begin() as conn:
            await save_state(conn, state)
        return state

    async def _delta(self, table: ResourceTable, state: State | None, run: _Run) -> State:
        """Everything modified since the checkpoint, and the new checkpoint, in one transaction."""
        spec = table.spec
        assert spec.modified_field is not None
        assert state is not None
        filters = delta_filters(spec.modified_field, state.checkpoint, self.overlap)
        newest, total = await self._newest(spec, filters)
        self.reporter.begin(spec.name, total=total, done=0)
        state = attrs.evolve(state, checkpoint=later(state.checkpoint, newest))
        if total == 0:
            return state
        batches = self._batches(spec, filters, run)
        async with self.engine.begin() as conn, _closing(batches):
            async for batch in batches:
                run.written += await table.upsert(conn, batch)
            await save_state(conn, state)
        return state

    async def _reload(self, table: ResourceTable, state: State, run: _Run) -> State:
        """No modified timestamp to filter on: read everything, drop what is gone, at once."""
        spec = table.spec
        self.reporter.begin(spec.name, total=0, done=0)
        seen: set[int | str] = set()
        state = attrs.evolve(state, phase="delta", scanned_at=time.time())
        batches = self._batches(spec, {}, run)
        async with self.engine.begin() as conn, _closing(batches):
            async for batch in batches:
                seen.update(table.key(record.get("id")) for record in batch)
                run.written += await table.upsert(conn, batch)
            run.deleted += await table.delete(conn, await table.ids(conn) - seen)
            await save_state(conn, state)
        run.scanned = True
        return state

    async def _scan(self, table: ResourceTable, state: State, run: _Run) -> State:
        """List every id (``fields=id``): drop rows the server no longer has, fetch any missing."""
        spec = table.spec
        remote: set[int | str] = set()
        async with _closing(self._iterate(spec, {}, fields=["id"])) as records:
            async for record in records:
                remote.add(table.key(record.get("id")))
        state = attrs.evolve(state, scanned_at=time.time())
        async with self.engine.begin() as conn:
            local = await table.ids(conn)
            missing = sorted(remote - local, key=str)
            for start in range(0, len(missing), _GET_CHUNK):
                fetched = await self.client.get(spec.name, missing[start : start + _GET_CHUNK])
                run.fetched += len(fetched)
                run.written += await table.upsert(conn, fetched)
            run.deleted += await table.delete(conn, local - remote)
            await save_state(conn, state)
        run.scanned = True
        return state

    async def _fetch(self, spec: ResourceSpec, ident: object) -> Any:
        try:
            return await self.client.get(spec.name, str(ident))
        except NotFoundError:
            return None

    # -- push --------------------------------------------------------------------------------

    async def apply(self, event: HookEvent) -> Literal["written", "unchanged", "deleted"]:
        """Apply one REST-hook event: re-fetch the record and upsert it, or delete it.

        The event needs ``resource`` and ``id``, and ``event_name`` (``...Deleted`` deletes) or
        a ``deleted`` flag. The record is re-read rather than trusted from the payload, so a
        late or replayed event never writes stale data.
        """
        spec = self.spec(event.resource)
        await self.organisation()
        table = await self._prepare(spec)
        deletes = event_deletes(getattr(event, "event_name", None), getattr(event, "deleted", None))
        async with self._lock(spec.name):
            await self._refresh(table)
            # Read under the lock: a sync run writing an older copy cannot land after ours.
            record = None if deletes else await self._fetch(spec, event.id)
            async with self.engine.begin() as conn:
                if record is None:
                    gone = await table.delete(conn, [table.key(event.id)])
                    return "deleted" if gone else "unchanged"
                written = await table.upsert(conn, [record])
        return "written" if written else "unchanged"


async def read_rows(conn: AsyncConnection, table: ResourceTable) -> list[dict[str, Any]]:
    """Every row of a mirrored table (tests and small tools)."""
    result = await conn.execute(table.table.select())
    return [dict(row._mapping) for row in result]
