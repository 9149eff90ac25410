"""Resumable bulk export: one JSON Lines file per resource, pages fetched concurrently.

On-disk layout under ``--out DIR`` while a resource is being exported::

    DIR/.actionstep-export/lock                    flock'ed: one export per directory at a time
    DIR/.actionstep-export/<resource>/state.json   the query, page and record totals, pages done
    DIR/.actionstep-export/<resource>/page-000042.jsonl   one finished page

A page counts as done exactly when its part file exists: parts are written to a temp file, fsynced
and renamed into place, so an interruption at any moment leaves each page either complete or
absent. ``state.json`` pins the query (resuming with different filters would mix two result sets)
and lists finished pages for people and tests to watch; on resume the part files are the truth.
When every page is done the parts are concatenated in page order into ``DIR/<resource>.jsonl``
(temp file, fsync, rename, fsync of the directory) and the work directory is removed.

Memory stays flat whatever the record count: a worker holds one page at a time and records go
to disk as soon as their page arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from .._client import AsyncResourceClient
from .._query import MAX_PAGE_SIZE, build_query
from ._exits import FAILED, USAGE, CommandError

__all__ = ["ExportOptions", "ExportReporter", "ResourceResult", "export_resources"]

WORK_DIR: Final = ".actionstep-export"
STATE_FILE: Final = "state.json"
_STATE_VERSION: Final = 1
_PART_PREFIX: Final = "page-"
_PART_SUFFIX: Final = ".jsonl"
_TMP_SUFFIX: Final = ".tmp"

try:  # the ``speed`` extra
    import orjson

    def _encode(record: Mapping[str, Any]) -> bytes:
        return orjson.dumps(dict(record))

except ImportError:  # pragma: no cover - exercised only without the extra

    def _encode(record: Mapping[str, Any]) -> bytes:
        return json.dumps(dict(record), ensure_ascii=False, separators=(",", ":")).encode()


class ExportReporter(Protocol):
    """Receives progress; the CLI draws rich progress bars from it, the demo watches it."""

    def begin(self, resource: str, *, total: int, done: int) -> None: ...

    def advance(self, resource: str, records: int) -> None: ...

    def finish(self, resource: str) -> None: ...


@attrs.frozen
class ExportOptions:
    """What to export and how hard to push."""

    out: Path
    filters: Mapping[str, str] = attrs.field(factory=dict)
    sort: Sequence[str] | None = None
    page_size: int = MAX_PAGE_SIZE
    concurrency: int = 8
    restart: bool = False


@attrs.frozen
class ResourceResult:
    """One resource's finished export."""

    resource: str
    path: Path
    records: int
    pages: int
    resumed_pages: int
    elapsed: float


def _part_name(page: int) -> str:
    return f"{_PART_PREFIX}{page:06d}{_PART_SUFFIX}"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes, *, durable: bool) -> None:
    # A per-thread temp name: a write still finishing in a worker thread after a cancellation
    # must never share its temp file with the final state write made on the loop.
    tmp = path.with_name(f"{path.name}.{threading.get_ident()}{_TMP_SUFFIX}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _directory_lock(work_root: Path) -> Iterator[None]:
    """Refuse a second export into the same directory: both would write the same parts."""
    work_root.mkdir(parents=True, exist_ok=True)
    lock = work_root / "lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise CommandError(
                f"another export is writing to {work_root.parent}; wait for it or use another"
                " --out",
                USAGE,
            ) from exc
        yield
        # Finished cleanly: leave no trace but the output files. Unlinked while still held,
        # so nobody can lock it in between (a rival only ever fails fast, never waits).
        if [entry.name for entry in work_root.iterdir()] == ["lock"]:
            lock.unlink()
            work_root.rmdir()
    finally:
        os.close(fd)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that made a TaskGroup fail; the others are its siblings' consequences."""
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


class _ResourceFiles:
    """The part files and state of one resource's export (blocking I/O; run off the loop)."""

    def __init__(self, out: Path, resource: str) -> None:
        self.resource = resource
        self.final = out / f"{resource}.jsonl"
        self.work = out / WORK_DIR / resource
        self.state_path = self.work / STATE_FILE

    def prepare(self, *, restart: bool) -> dict[str, Any] | None:
        """Create the work directory, drop leftovers of a crash, return the saved state."""
        if restart and self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        for leftover in self.work.glob(f"*{_TMP_SUFFIX}"):
            leftover.unlink()
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            # Parts without a state belong to no known query: they cannot be trusted.
            for part in self.work.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"):
                part.unlink()
            return None
        except ValueError as exc:
            raise CommandError(
                f"{self.state_path} is corrupt; run again with --restart to start this resource"
                " over",
                FAILED,
            ) from exc
        return state

    def done_pages(self) -> dict[int, int]:
        """Finished pages and their record counts, read from the part files."""
        done: dict[int, int] = {}
        for part in self.work.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"):
            number = part.name[len(_PART_PREFIX) : -len(_PART_SUFFIX)]
            if number.isdigit():
                with open(part, "rb") as handle:
                    done[int(number)] = sum(1 for _ in handle)
        return done

    def write_part(self, page: int, data: bytes) -> None:
        _write_atomically(self.work / _part_name(page), data, durable=True)

    def write_state(self, state: Mapping[str, Any], *, durable: bool) -> None:
        document = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        _write_atomically(self.state_path, document, durable=durable)
        if durable:
            _fsync_directory(self.work)

    def assemble(self, page_count: int) -> int:
        """Concatenate the parts in page order into the final file, atomically; returns lines."""
        tmp = self.final.with_name(f".{self.final.name}{_TMP_SUFFIX}")
        lines = 0
        with open(tmp, "wb") as target:
            for page in range(1, page_count + 1):
                with open(self.work / _part_name(page), "rb") as source:
                    for line in source:
                        target.write(line)
                        lines += 1
            target.flush()
            os.fsync(target.fileno())
        os.replace(tmp, self.final)
        _fsync_directory(self.final.parent)
        shutil.rmtree(self.work)
        return lines


class _ResourceExport:
    """Fetches one resource's remaining pages with a pool of workers."""

    def __init__(
        self,
        client: AsyncResourceClient,
        resource: str,
        options: ExportOptions,
        reporter: ExportReporter,
        warn: Callable[[str], None],
    ) -> None:
        self.client = client
        self.resource = resource
        self.options = options
        self.reporter = reporter
        self.warn = warn
        self.files = _ResourceFiles(options.out, resource)
        self.query = build_query(
            filters=options.filters, sort=options.sort, page_size=options.page_size
        )
        self.state: dict[str, Any] = {}
        self.done: dict[int, int] = {}
        self.warned = False

    async def run(self) -> ResourceResult:
        started = time.monotonic()
        saved = await asyncio.to_thread(self.files.prepare, restart=self.options.restart)
        if saved is not None and saved.get("query") != self.query:
            raise CommandError(
                f"{self.files.work} holds an unfinished export of {self.resource} with a different"
                " query; run with --restart to discard it, or use another --out",
                USAGE,
            )
        self.state = saved or {
            "version": _STATE_VERSION,
            "resource": self.resource,
            "query": self.query,
            "page_size": self.options.page_size,
        }
        self.done = await asyncio.to_thread(self.files.done_pages) if saved else {}
        resumed = len(self.done)
        try:
            if "page_count" not in self.state:
                await self._first_page()
            page_count = int(self.state["page_count"])
            self.reporter.begin(
                self.resource,
                total=int(self.state["record_count"]),
                done=sum(self.done.values()),
            )
            todo = [page for page in range(1, page_count + 1) if page not in self.done]
            await self._fetch_all(todo)
        finally:
            # Whatever happened, leave an up-to-date list of finished pages for the next run.
            self._save_state(durable=False)
        records = await asyncio.to_thread(self.files.assemble, page_count)
        self.reporter.finish(self.resource)
        if records != self.state["record_count"]:
            self.warn(
                f"{self.resource}: wrote {records:,} records but the server reported"
                f" {self.state['record_count']:,}; records changed during the export"
            )
        return ResourceResult(
            resource=self.resource,
            path=self.files.final,
            records=records,
            pages=page_count,
            resumed_pages=resumed,
            elapsed=time.monotonic() - started,
        )

    async def _first_page(self) -> None:
        page = await self._list(1)
        self.state["page_count"] = max(page.paging.page_count, 1)
        self.state["record_count"] = page.paging.record_count
        await self._store(1, page.records)
        # Durable before any other part exists: parts are only trusted alongside this query.
        await asyncio.to_thread(self._save_state, durable=True)

    async def _fetch_all(self, todo: list[int]) -> None:
        pending = iter(todo)

        async def worker() -> None:
            for number in pending:
                page = await self._list(number)
                self._check_total(page.paging.record_count, page.paging.page_count)
                await self._store(number, page.records)
                self.reporter.advance(self.resource, len(page.records))

        workers = min(self.options.concurrency, len(todo))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None

    async def _list(self, number: int) -> Any:
        return await self.client.list(
            self.resource,
            filters=self.options.filters,
            sort=None if self.options.sort is None else tuple(self.options.sort),
            page=number,
            page_size=self.options.page_size,
        )

    async def _store(self, number: int, records: Sequence[Mapping[str, Any]]) -> None:
        data = b"".join(_encode(record) + b"\n" for record in records)
        await asyncio.to_thread(self.files.write_part, number, data)
        self.done[number] = len(records)
        self._save_state(durable=False)

    def _check_total(self, record_count: int, page_count: int) -> None:
        expected = self.state["record_count"]
        if record_count == expected or not record_count:
            return
        change = f"{self.resource} changed during the export ({expected:,} -> {record_count:,})"
        if page_count != self.state["page_count"]:
            # Offsets moved by whole pages: continuing would surely skip or repeat records.
            raise CommandError(f"{change}; run again with --restart", FAILED)
        if not self.warned:
            self.warned = True
            self.warn(f"{change}; records near page boundaries may be missed or repeated")

    def _save_state(self, *, durable: bool) -> None:
        if "page_count" not in self.state:
            return
        self.state["pages_done"] = sorted(self.done)
        self.state["records_done"] = sum(self.done.values())
        # Small and advisory (the parts are the truth), so written on the loop without fsync.
        self.files.write_state(self.state, durable=durable)


async def export_resources(
    client: AsyncResourceClient,
    resources: Sequence[str],
    options: ExportOptions,
    reporter: ExportReporter,
    warn: Callable[[str], None],
) -> list[ResourceResult]:
    """Export every resource concurrently into ``options.out``; resumes unfinished ones."""
    options.out.mkdir(parents=True, exist_ok=True)
    with _directory_lock(options.out / WORK_DIR):
        jobs = [_ResourceExport(client, name, options, reporter, warn) for name in resources]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(job.run()) for job in jobs]
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
    return [task.result() for task in tasks]
