"""The real databases the mirror tests write to: a SQLite file, or a fresh PostgreSQL database.

Shared by ``tests/mirror`` and ``tests/cli/test_sync.py`` (both import ``database_url``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["create_postgres_database", "database_url", "drop_postgres_database"]

POSTGRES_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _admin(statement: str) -> None:
    engine = create_async_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def create_postgres_database() -> str:
    """A fresh database with a unique name (parallel helpers and runs never collide)."""
    name = f"mirror_test_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return name


async def drop_postgres_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mirror.db'}"
        return
    name = await create_postgres_database()
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await drop_postgres_database(name)
