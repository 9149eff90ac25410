"""The fast write path: rows built by precompiled per-column functions, one driver statement.

SQLAlchemy's per-row parameter handling cost more than the database itself. Here each table
gets, once per column set, a tuple of functions (wire value -> column value -> what the driver
takes, using SQLAlchemy's own bind processors, so what lands is what ``insert()`` would have
written) and one upsert statement in the driver's own SQL:

- SQLite: ``INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE _record IS NOT excluded._record``,
  run with ``executemany`` (one prepared statement; ``rowcount`` counts the rows written);
- PostgreSQL (asyncpg): one ``INSERT ... SELECT * FROM unnest($1::bigint[], ...)`` with one
  array per column, so a batch is a single round trip; the status line counts the rows written.

Both run on the caller's connection, inside its transaction: records and checkpoint still
commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from sqlalchemy import Table
from sqlalchemy.engine import Dialect

from .._models import Record
from ._columns import (
    RECORD_COLUMN,
    REVISION_COLUMN,
    ColumnPlan,
    _date,
    _link,
    _text,
    converter,
)

__all__ = ["Writer", "build_writer"]

RowBuilder = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[Any, ...]]
"""(record, its links) -> the row's values, as the driver takes them, in column order."""


@attrs.frozen
class Writer:
    """One table's upsert for one dialect: ``statement`` and how to turn records into params."""

    columns: tuple[str, ...]
    statement: str
    build: RowBuilder
    columnar: bool
    """PostgreSQL: one array per column (``params``); SQLite: one tuple per row."""

    def rows(self, records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """A tuple per record, a repeated id keeping its last copy (pages can overlap)."""
        rows: dict[Any, tuple[Any, ...]] = {}
        build = self.build
        for record in records:
            # A plain dict: Record's Mapping methods run in Python, several times slower.
            raw = record._data if isinstance(record, Record) else record
            links = raw.get("links")
            links = links if isinstance(links, dict) else {}
            row = build(raw, links)
            rows[row[0]] = row
        return list(rows.values())

    def params(self, records: Sequence[Mapping[str, Any]]) -> Any:
        rows = self.rows(records)
        if self.columnar:
            return tuple(list(column) for column in zip(*rows, strict=True))
        return rows


def _sqlite_datetime(value: object) -> str | None:
    # What SQLAlchemy's SQLite DATETIME stores (naive UTC text), without its slow formatter.
    try:
        moment = datetime.fromisoformat(value if isinstance(value, str) else str(value))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def _sqlite_date(value: object) -> str | None:
    day = _date(value)
    return None if day is None else day.isoformat()


def _expression(
    n: int, wire: str, kind: str, *, link: bool, bind: Callable[[Any], Any] | None, sqlite: bool
) -> tuple[str, dict[str, Any]]:
    """Python source for one column's value (and the names it uses): None and '' checks inline,
    one call for the conversion, one for the driver's bind processor if it has one."""
    source = f"{'links' if link else 'raw'}.get({wire!r})"
    names: dict[str, Any] = {}
    if kind in ("str", "enum") or link:
        names[f"c{n}"] = _link if link else _text
        empty = " or v == ''" if link else ""
        value = f"(v if v.__class__ is str else c{n}(v))"
    else:
        native = {"datetime": _sqlite_datetime, "date": _sqlite_date}.get(kind) if sqlite else None
        names[f"c{n}"] = native or converter(kind)  # type: ignore[arg-type]
        bind = None if native else bind
        empty = " or v == ''"
        value = f"c{n}(v)"
    if bind is not None:
        names[f"b{n}"] = bind
        value = f"b{n}({value})"
    return f"(None if (v := {source}) is None{empty} else {value})", names


def _compile(expressions: Sequence[str], names: Mapping[str, Any]) -> RowBuilder:
    # Generated once per table and column set, as dataclasses and attrs do: a single function
    # with every column inline runs several times faster than a loop over per-column closures.
    source = (
        "def build(raw, links):\n    return (\n"
        + "".join(f"        {expression},\n" for expression in expressions)
        + "    )\n"
    )
    namespace: dict[str, Any] = dict(names)
    exec(compile(source, "<mirror row builder>", "exec"), namespace)
    build: RowBuilder = namespace["build"]
    return build


def _sources(plan: ColumnPlan, extra: Mapping[str, str]) -> dict[str, tuple[str, str, bool]]:
    """Column -> (wire name, kind, whether it is read from ``links``)."""
    sources: dict[str, tuple[str, str, bool]] = {"id": ("id", plan.id_kind, False)}
    sources.update({column: (wire, kind, False) for column, wire, kind in plan.fields})
    sources.update({column: (wire, kind, True) for column, wire, kind in plan.links})
    sources.update({column: (wire, "str", False) for wire, column in extra.items()})
    return sources


def build_writer(
    table: Table, plan: ColumnPlan, extra: Mapping[str, str], dialect: Dialect
) -> Writer:
    """The upsert of ``table`` (every column but ``_revision``, which the statement sets)."""
    sources = _sources(plan, extra)
    columns = [c for c in table.columns if c.name != REVISION_COLUMN]
    sqlite = dialect.name == "sqlite"
    expressions: list[str] = []
    namespace: dict[str, Any] = {}
    for n, column in enumerate(columns):
        bind = column.type.dialect_impl(dialect).bind_processor(dialect)
        if column.name == RECORD_COLUMN:
            namespace[f"b{n}"] = bind or (lambda record: record)
            expressions.append(f"b{n}(raw)")
            continue
        wire, kind, link = sources.get(column.name, (column.name, "str", False))
        expression, used = _expression(n, wire, kind, link=link, bind=bind, sqlite=sqlite)
        expressions.append(expression)
        namespace.update(used)
    build = _compile(expressions, namespace)
    names = tuple(column.name for column in columns)
    postgres = dialect.name == "postgresql"
    quote = dialect.identifier_preparer.quote
    target = quote(table.name)
    listed = ", ".join(quote(name) for name in (*names, REVISION_COLUMN))
    if postgres:
        arrays = ", ".join(
            f"${n}::{column.type.compile(dialect)}[]" for n, column in enumerate(columns, 1)
        )
        source = f"SELECT *, 1 FROM unnest({arrays})"
        differs = "IS DISTINCT FROM"
    else:
        source = f"VALUES ({', '.join('?' for _ in names)}, 1)"
        differs = "IS NOT"
    updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n != "id")
    revision = quote(REVISION_COLUMN)
    record = quote(RECORD_COLUMN)
    statement = (
        f"INSERT INTO {target} ({listed}) {source} ON CONFLICT ({quote('id')}) DO UPDATE SET"
        f" {updates}, {revision} = {target}.{revision} + 1"
        f" WHERE {target}.{record} {differs} excluded.{record}"
    )
    return Writer(names, statement, build, columnar=postgres)
