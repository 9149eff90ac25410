"""Fixtures for the mirror tests: a real SQLite file and a real PostgreSQL database each."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actionstep_async._catalogue import CATALOGUE
from actionstep_async.mirror import Mirror
from actionstep_async.mirror._columns import RECORD_COLUMN, column_value, plan_columns
from actionstep_async.mirror._mirror import read_rows
from actionstep_async.testing import FakeActionstep

from .databases import database_url as database_url  # the fixture, for every mirror test


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mirror.db'}"


def _normalise(value: Any) -> Any:
    # SQLite hands DateTime(timezone=True) back naive; the mirror stored it in UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def expected_row(resource: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The typed columns a record must produce, straight from the catalogue."""
    plan = plan_columns(CATALOGUE[resource])
    links = record.get("links") or {}
    row = {"id": record["id"], RECORD_COLUMN: dict(record)}
    row.update({c: column_value(k, record.get(w)) for c, w, k in plan.fields})
    row.update({c: column_value(k, links.get(w)) for c, w, k in plan.links})
    return row


async def mirror_rows(mirror: Mirror, resource: str) -> dict[Any, dict[str, Any]]:
    table = await mirror._prepare(mirror.spec(resource))
    async with mirror.engine.connect() as conn:
        rows = await read_rows(conn, table)
    return {row["id"]: {k: _normalise(v) for k, v in row.items()} for row in rows}


async def assert_mirror_equals_fake(mirror: Mirror, fake: FakeActionstep, resource: str) -> None:
    """Same ids, the JSON column equal to the record as served, every typed column right."""
    served = {record["id"]: record for record in fake.rest.table(resource).records()}
    rows = await mirror_rows(mirror, resource)
    assert set(rows) == set(served), "the mirror and the fake hold different ids"
    for ident, record in served.items():
        row = rows[ident]
        for column, value in expected_row(resource, record).items():
            assert row[column] == value, (resource, ident, column)
