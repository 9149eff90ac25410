"""The database side: tables per resource, the state table, upserts, deletes, new columns.

Thin I/O around the pure column plan of ``_columns``. Every method takes the connection of the
caller's transaction, so records and state always commit (or vanish) together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateColumn

from .._catalogue import ResourceSpec
from .._models import Record
from ._columns import (
    RECORD_COLUMN,
    REVISION_COLUMN,
    ColumnPlan,
    column_value,
    json_type,
    plan_columns,
    sql_type,
    unknown_column,
)
from ._plan import State
from ._writer import Writer, build_writer

__all__ = ["STATE_TABLE", "ResourceTable", "load_state", "save_state", "state_table"]

STATE_TABLE: Final = "actionstep_mirror_state"
_DELETE_CHUNK: Final = 500


def state_table(metadata: MetaData) -> Table:
    return Table(
        STATE_TABLE,
        metadata,
        Column("resource", Text, primary_key=True),
        Column("organisation", Text, nullable=False),
        Column("phase", Text, nullable=False),
        Column("cursor", Text),
        Column("since", Text),
        Column("checkpoint", Text),
        Column("scanned_at", Float),
    )


_STATE: Final = state_table(MetaData())


def _insert(conn: AsyncConnection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def load_state(conn: AsyncConnection, resource: str) -> State | None:
    row = (await conn.execute(select(_STATE).where(_STATE.c.resource == resource))).first()
    if row is None:
        return None
    return State(
        resource=row.resource,
        organisation=row.organisation,
        phase="delta" if row.phase == "delta" else "full",
        cursor=row.cursor,
        since=row.since,
        checkpoint=row.checkpoint,
        scanned_at=row.scanned_at,
    )


async def save_state(conn: AsyncConnection, state: State) -> None:
    values = {
        "resource": state.resource,
        "organisation": state.organisation,
        "phase": state.phase,
        "cursor": state.cursor,
        "since": state.since,
        "checkpoint": state.checkpoint,
        "scanned_at": state.scanned_at,
    }
    statement = _insert(conn, _STATE).values(values)
    update = {name: statement.excluded[name] for name in values if name != "resource"}
    await conn.execute(statement.on_conflict_do_update(index_elements=["resource"], set_=update))


class ResourceTable:
    """One resource's table: its typed columns, the columns added for unknown fields, writes."""

    def __init__(self, spec: ResourceSpec, name: str | None = None) -> None:
        self.spec = spec
        self.name = name or spec.name
        self.plan: ColumnPlan = plan_columns(spec)
        self._known = set(self.plan.names())
        self._catalogued = {"id", "links", *(wire for _, wire, _ in self.plan.fields)}
        self.extra: dict[str, str] = {}
        """Wire names outside the catalogue -> their text columns."""
        self._existing: set[str] = set()
        self._writers: dict[tuple[str, tuple[str, ...]], Writer] = {}
        self.table = self._build()

    def _typed_columns(self) -> list[Column[Any]]:
        id_type = BigInteger() if self.plan.id_kind == "int" else Text()
        columns: list[Column[Any]] = [Column("id", id_type, primary_key=True, autoincrement=False)]
        for name, _, kind in (*self.plan.fields, *self.plan.links):
            columns.append(Column(name, sql_type(kind)))
        columns.append(Column(RECORD_COLUMN, json_type(), nullable=False))
        columns.append(Column(REVISION_COLUMN, Integer, nullable=False))
        return columns

    def _build(self) -> Table:
        columns = self._typed_columns()
        for column_name in sorted(self._existing - {c.name for c in columns}):
            columns.append(Column(column_name, Text))
        return Table(self.name, MetaData(), *columns)

    async def prepare(self, conn: AsyncConnection) -> None:
        """Create the table, or add the catalogue columns an older version did not have."""
        await conn.run_sync(lambda sync: self.table.metadata.create_all(sync))
        names = await conn.run_sync(
            lambda sync: [c["name"] for c in inspect(sync).get_columns(self.name)]
        )
        self._existing = set(names)
        for column in self._typed_columns():
            if column.name not in self._existing:
                await self._add_column(conn, column)
        self.table = self._build()

    async def _add_column(self, conn: AsyncConnection, column: Column[Any]) -> None:
        ddl = CreateColumn(column).compile(dialect=conn.dialect)
        table = conn.dialect.identifier_preparer.quote(self.name)
        await conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {ddl}")
        self._existing.add(column.name)

    async def _learn_fields(
        self, conn: AsyncConnection, records: Iterable[Mapping[str, Any]]
    ) -> None:
        """Give fields the catalogue does not know a text column each (a new API release)."""
        grown = False
        wires: set[str] = set()
        for record in records:  # set operations in C: this runs for every batch
            wires.update(record._data if isinstance(record, Record) else record)
        for wire in sorted(wires - self._catalogued - self.extra.keys()):
            column = unknown_column(wire, self._known)
            if column is None:
                self._catalogued.add(wire)  # its name is taken: the JSON column has it
                continue
            if column not in self._existing:
                await self._add_column(conn, Column(column, Text))
                grown = True
            self.extra[wire] = column
            self._known.add(column)
        if grown:
            self.table = self._build()

    async def upsert(self, conn: AsyncConnection, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert or update by id; rows whose JSON did not change are left alone. Returns rows
        written (each write bumps the row's ``_revision``)."""
        if not records:
            return 0
        await self._learn_fields(conn, records)
        return await self._write(conn, records)

    async def _write(self, conn: AsyncConnection, records: Sequence[Mapping[str, Any]]) -> int:
        dialect = conn.dialect
        key = (dialect.name, tuple(self.table.columns.keys()))
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = build_writer(self.table, self.plan, self.extra, dialect)
        params = writer.params(records)
        result = await conn.exec_driver_sql(writer.statement, params)
        return max(result.rowcount, 0)

    async def delete(self, conn: AsyncConnection, ids: Iterable[object]) -> int:
        wanted = list(ids)
        removed = 0
        for start in range(0, len(wanted), _DELETE_CHUNK):
            chunk = wanted[start : start + _DELETE_CHUNK]
            result = await conn.execute(delete(self.table).where(self.table.c.id.in_(chunk)))
            removed += result.rowcount
        return removed

    async def ids(self, conn: AsyncConnection) -> set[int | str]:
        return set((await conn.execute(select(self.table.c.id))).scalars())

    def key(self, ident: object) -> int | str:
        """An id as this table stores it (ints for numeric ids)."""
        key = column_value(self.plan.id_kind, ident)
        if not isinstance(key, int | str):
            raise ValueError(f"{self.name}: record id {ident!r} is not a {self.plan.id_kind}")
        return key
