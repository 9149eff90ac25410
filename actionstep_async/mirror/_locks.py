"""One writer per (organisation, resource) at a time, across processes and hosts.

PostgreSQL: a session-level advisory lock on a connection of its own, held for the run; if the
process dies the server drops the connection and the lock with it. SQLite: an ``flock`` on a
file next to the database, which the kernel releases when the process dies. Either way a second
worker waits for the first to finish, then runs against the state the first one committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["advisory_key", "hold_lock", "lock_path"]

_POLL_SECONDS: Final = 0.05
_POLL_MAX: Final = 1.0


def advisory_key(organisation: str, resource: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (Python's hash() is salted)."""
    digest = hashlib.blake2b(
        f"actionstep-mirror\0{organisation}\0{resource}".encode(), digest_size=8
    )
    return int.from_bytes(digest.digest(), "big", signed=True)


def lock_path(database: Path, organisation: str, resource: str) -> Path:
    """``actionstep.db`` -> ``actionstep.db.<resource>-<digest>.lock``, next to the database."""
    digest = hashlib.blake2b(f"{organisation}\0{resource}".encode(), digest_size=6).hexdigest()
    return database.with_name(f"{database.name}.{resource[:32]}-{digest}.lock")


@contextlib.asynccontextmanager
async def _advisory(engine: AsyncEngine, key: int) -> AsyncIterator[None]:
    async with engine.connect() as conn:
        try:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            await conn.commit()  # the lock is the session's; no transaction stays open
            yield
        finally:
            # Closing the session releases its locks whatever state it is in, even when a
            # cancellation interrupted the wait above (the lock may have been granted anyway).
            await conn.invalidate()


@contextlib.asynccontextmanager
async def _flock(path: Path) -> AsyncIterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        delay = _POLL_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # Polled, not blocked in a thread: a waiting worker stays cancellable.
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
        yield
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def hold_lock(
    engine: AsyncEngine, organisation: str, resource: str, sqlite_file: Path | None
) -> AsyncIterator[float]:
    """Hold the run lock of one resource; yields how many seconds were spent waiting for it."""
    started = time.monotonic()
    if sqlite_file is not None:
        lock = _flock(lock_path(sqlite_file, organisation, resource))
    else:
        lock = _advisory(engine, advisory_key(organisation, resource))
    async with lock:
        yield time.monotonic() - started
