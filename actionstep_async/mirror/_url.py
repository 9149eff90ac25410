"""Database URLs: the plain forms people write, mapped to SQLAlchemy's async drivers."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ._errors import MirrorError

__all__ = ["Target", "parse_database_url"]

_ASYNC_DRIVERS: Final = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
# asyncpg only for PostgreSQL: the write path hands it whole columns as arrays in one statement.
_SUPPORTED: Final = frozenset({"sqlite+aiosqlite", "postgresql+asyncpg"})


@attrs.frozen
class Target:
    """Where a mirror writes: the async SQLAlchemy URL, and the file when it is SQLite."""

    url: URL
    sqlite_file: Path | None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()


def parse_database_url(text: str) -> Target:
    """``sqlite:///actionstep.db`` or ``postgresql://user@host/db`` (explicit drivers kept)."""
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise MirrorError(f"not a database URL: {exc}") from None
    name = _ASYNC_DRIVERS.get(url.drivername, url.drivername)
    if name not in _SUPPORTED:
        raise MirrorError(
            f"unsupported database {url.drivername!r}: use sqlite:///FILE or postgresql://..."
        )
    url = url.set(drivername=name)
    if url.get_backend_name() != "sqlite":
        return Target(url, None)
    if not url.database or url.database == ":memory:":
        raise MirrorError("a SQLite mirror needs a file: sqlite:///actionstep.db")
    return Target(url, Path(url.database).absolute())
