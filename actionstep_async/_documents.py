"""Documents: upload a file in parts, attach it to a matter or contact, download it in parts.

Every request goes through :meth:`AsyncResourceClient._call`, so documents share the token
handling, the 401 refresh, the retry decisions and the limiter of every other call. What is
particular to files lives here: the part arithmetic, the multipart body, which failures may be
repeated (part k of a known file id may be re-sent; part 1 and the attach may not), and the
disk I/O (through aiofiles, off the event loop) with at most a couple of parts in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import secrets
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import aiofiles
import aiofiles.os
import aiofiles.tempfile
import attrs

from ._errors import (
    BadRequestError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    ResponseDecodeError,
    TransientError,
)
from ._models import decode_json

if TYPE_CHECKING:
    from ._client import AsyncResourceClient

__all__ = [
    "PART_SIZE",
    "REFUSED_EXTENSIONS",
    "Documents",
    "RefusedFileError",
    "UploadInterruptedError",
    "UploadResume",
    "multipart_body",
    "part_count",
    "part_length",
    "refused_extension",
]

PART_SIZE: Final = 5 * 1024 * 1024
"""Actionstep takes and serves files in parts of at most 5 MB."""
REFUSED_EXTENSIONS: Final = frozenset(
    {"com", "sh", "exe", "bat", "cmd", "vbs", "src", "msi", "jar", "dll", "tpl"}
)
_ANSWER_LIMIT: Final = 1024 * 1024
"""An upload's answer is a few hundred bytes of JSON."""
_OCTETS: Final = "application/octet-stream"
_IO: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="actionstep-documents")
"""One thread for all document file I/O: each thread that allocates a 5 MB buffer keeps a
malloc arena of that size, so spreading parts over the default pool's threads grows RSS."""

Source: TypeAlias = "str | os.PathLike[str] | AsyncIterable[bytes]"
Progress: TypeAlias = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None when the size is not known)."""


class RefusedFileError(InvalidRequestError):
    """Actionstep refuses files with this extension; nothing was sent."""


@attrs.frozen
class UploadResume:
    """Where an interrupted upload stands: the file id and how many parts the server took."""

    file_id: str
    part_count: int
    parts_done: int


class UploadInterruptedError(TransientError):
    """An upload stopped before its last part was acknowledged; nothing was attached.

    ``resume`` (None when not even part 1 was acknowledged: start over) goes back to
    :meth:`Documents.upload` to send only the remaining parts. The failure is the ``__cause__``.
    """

    def __init__(self, message: str, *, resume: UploadResume | None) -> None:
        super().__init__(message)
        self.resume = resume


# -- pure decisions ---------------------------------------------------------------------------


def part_count(size: int) -> int:
    """Parts for a file of ``size`` bytes; an empty file is still one (empty) part."""
    return max(1, -(-size // PART_SIZE))


def part_length(size: int, number: int) -> int:
    """Bytes in part ``number`` (1-based) of a file of ``size`` bytes."""
    return max(0, min(PART_SIZE, size - (number - 1) * PART_SIZE))


def refused_extension(filename: str) -> str | None:
    """The extension if Actionstep refuses it (``exe``), else None."""
    _, dot, extension = filename.rpartition(".")
    extension = extension.lower()
    return extension if dot and extension in REFUSED_EXTENSIONS else None


def _header_filename(filename: str) -> str:
    # Quotes, backslashes and line breaks would end or split the header parameter.
    safe = filename.replace("\\", "%5C").replace('"', "%22").replace("\r", "%0D")
    return safe.replace("\n", "%0A")


def multipart_body(filename: str, data: bytes, boundary: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one part named ``file``, and its Content-Type."""
    kind = mimetypes.guess_type(filename)[0] or _OCTETS
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_header_filename(filename)}"'
        f"\r\nContent-Type: {kind}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return b"".join((head, data, tail)), f"multipart/form-data; boundary={boundary}"


def _links(
    action: int | str | None, folder: int | str | None, contact: int | str | None
) -> tuple[str, dict[str, int | str]]:
    """The attach resource and its links: a matter (and folder) or a contact (and folder)."""
    if (action is None) == (contact is None):
        raise InvalidRequestError("attach a document to exactly one of action= or contact=")
    links: dict[str, int | str] = {}
    if action is not None:
        resource, links["action"] = "actiondocuments", action
    else:
        assert contact is not None
        resource, links["participant"] = "contactdocuments", contact
    if folder is not None:
        links["folder"] = folder
    return resource, links


def _identify(document: Mapping[str, Any] | str) -> tuple[str, int | None]:
    """The download identifier and, for a document record, its size in bytes."""
    if isinstance(document, str):
        return document, None
    identifier = document.get("file")
    if not isinstance(identifier, str) or not identifier:
        raise InvalidRequestError("the document record has no 'file' identifier")
    size = document.get("fileSize")
    try:
        return identifier, None if size in (None, "") else int(size)
    except (TypeError, ValueError):
        return identifier, None


def partial_path(dest: Path, identifier: str) -> Path:
    """The temp file next to ``dest``; named after the identifier so a resume finds its own."""
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:16]
    return dest.with_name(f".{dest.name}.{digest}.partial")


# -- reading parts ----------------------------------------------------------------------------


class _Parts:
    """Reads a source part by part: a file through aiofiles, or an async byte stream."""

    def __init__(self, handle: Any, stream: AsyncIterator[bytes] | None) -> None:
        self._handle = handle
        self._stream = stream
        self._pending = bytearray()

    async def skip(self, count: int) -> None:
        if self._handle is not None:
            await self._handle.seek(count)
            return
        while count > 0:
            skipped = len(await self.read(min(count, PART_SIZE)))
            if not skipped:
                return  # the stream is shorter; the next read reports it
            count -= skipped

    async def read(self, length: int) -> bytes:
        if self._handle is not None:
            data: bytes = await self._handle.read(length)
            return data
        assert self._stream is not None
        pending = self._pending
        while len(pending) < length:
            chunk = await anext(self._stream, None)
            if chunk is None:
                break
            pending += chunk
        data = bytes(pending[:length])
        del pending[:length]
        return data


async def _bodies(
    parts: _Parts, total: int, first: int, filename: str
) -> AsyncGenerator[tuple[int, bytes, str], None]:
    """Each part's number and multipart body, the next part read while this one is sent."""
    count = part_count(total)
    boundary = secrets.token_hex(16)
    reading = asyncio.ensure_future(parts.read(part_length(total, first)))
    try:
        for number in range(first, count + 1):
            data = await reading
            if len(data) != part_length(total, number):
                raise InvalidRequestError(f"the source ended early (part {number} of {count})")
            body, content_type = multipart_body(filename, data, boundary)
            del data
            if number < count:
                reading = asyncio.ensure_future(parts.read(part_length(total, number + 1)))
            yield number, body, content_type
            del body
    finally:
        if not reading.done():
            reading.cancel()
        # Collected even when nobody needs it, so a failed read-ahead is never reported later.
        with contextlib.suppress(BaseException):
            await reading


@contextlib.asynccontextmanager
async def _open_parts(source: Source, size: int | None) -> AsyncIterator[tuple[_Parts, int]]:
    """The source's parts and size; a stream of unknown size is spooled to a temp file first."""
    if isinstance(source, str | os.PathLike):
        async with aiofiles.open(os.fspath(source), "rb", executor=_IO) as handle:
            stat = await aiofiles.os.stat(os.fspath(source), executor=_IO)
            yield _Parts(handle, None), stat.st_size
        return
    stream = aiter(source)
    if size is not None:
        yield _Parts(None, stream), size
        return
    # part_count goes on every request, part 1 included: the size must be known up front.
    async with aiofiles.tempfile.TemporaryFile("w+b", executor=_IO) as spool:
        total = 0
        async for chunk in stream:
            await spool.write(chunk)
            total += len(chunk)
        await spool.seek(0)
        yield _Parts(spool, None), total


# -- the client -------------------------------------------------------------------------------


class Documents:
    """``client.documents``: files in and out of Actionstep, through the client's request path."""

    def __init__(
        self, client: AsyncResourceClient[Any], *, last_part_timeout: float = 600.0
    ) -> None:
        self._client = client
        # The last part is answered only after the virus scan: give it far longer.
        self._last = client.with_options(timeout=max(client.timeout, last_part_timeout))

    async def upload(
        self,
        source: Source,
        *,
        name: str,
        action: int | str | None = None,
        folder: int | str | None = None,
        contact: int | str | None = None,
        filename: str | None = None,
        size: int | None = None,
        resume: UploadResume | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """Upload ``source`` (a path, or an async byte stream) and attach it; returns the record.

        ``filename`` (with its extension) defaults to the path's name, else ``name``. A stream
        of unknown ``size`` is spooled to a temp file first. Raises RefusedFileError before
        sending anything for a refused extension, UploadInterruptedError (pass its ``resume``
        back to continue) when a part failed, OutcomeUnknownError (with ``file_id``) when the
        attach may or may not have happened.
        """
        resource, links = _links(action, folder, contact)
        if filename is None:
            filename = (
                Path(os.fspath(source)).name if isinstance(source, str | os.PathLike) else name
            )
        refused = refused_extension(filename)
        if refused is not None:
            raise RefusedFileError(f"Actionstep does not accept .{refused} files ({filename!r})")
        async with _open_parts(source, size) as (parts, total):
            file_id = await self._send_parts(parts, total, filename, resume, progress)
        return await self._attach(resource, file_id, filename, name, links)

    async def attach(
        self,
        file_id: str,
        *,
        filename: str,
        name: str,
        action: int | str | None = None,
        folder: int | str | None = None,
        contact: int | str | None = None,
    ) -> Any:
        """Attach an uploaded file (after an OutcomeUnknownError you checked); sent once."""
        resource, links = _links(action, folder, contact)
        return await self._attach(resource, file_id, filename, name, links)

    async def _attach(
        self, resource: str, file_id: str, filename: str, name: str, links: dict[str, int | str]
    ) -> Any:
        fields = {"name": name, "file": f"{file_id};{filename}"}
        try:
            return await self._client.create(resource, fields, links=links)
        except OutcomeUnknownError as exc:
            exc.file_id = file_id
            raise

    async def _send_parts(
        self,
        parts: _Parts,
        total: int,
        filename: str,
        resume: UploadResume | None,
        progress: Progress | None,
    ) -> str:
        count = part_count(total)
        file_id: str | None = None
        first = 1
        if resume is not None:
            if resume.part_count != count:
                raise InvalidRequestError(
                    f"cannot resume: the upload had {resume.part_count} parts, this file has"
                    f" {count}; is it the same file?"
                )
            file_id, first = resume.file_id, resume.parts_done + 1
            await parts.skip(resume.parts_done * PART_SIZE)
        status = "Pending"
        async with contextlib.aclosing(_bodies(parts, total, first, filename)) as bodies:
            async for number, body, content_type in bodies:
                try:
                    file_id, status = await self._send_part(
                        file_id, number, count, body, content_type
                    )
                except TransientError as exc:
                    done = number - 1
                    state = UploadResume(file_id, count, done) if file_id and done else None
                    raise UploadInterruptedError(
                        f"upload of {filename!r} stopped at part {number} of {count}: {exc}",
                        resume=state,
                    ) from exc
                del body  # before the next part is built: two parts in memory, not three
                if progress is not None:
                    progress(min(total, number * PART_SIZE), total)
        if status != "Uploaded" or file_id is None:
            raise ResponseDecodeError(f"the last part of {filename!r} was not acknowledged")
        return file_id

    async def _send_part(
        self, file_id: str | None, number: int, count: int, body: bytes, content_type: str
    ) -> tuple[str, str]:
        query = f"?part_count={count}&part_number={number}"
        path = f"files/{file_id}{query}" if file_id else f"files{query}"
        client = self._last if number == count else self._client
        # Part 1 makes a new file: a lost answer would leave an orphan, so it is never repeated.
        # Part k of a known file id overwrites itself, so it may be.
        answer = await client._call(
            "POST",
            path,
            body,
            resource="files",
            headers={"Content-Type": content_type},
            max_body_bytes=_ANSWER_LIMIT,
            idempotent=file_id is not None,
        )
        kind = answer.headers.get("Content-Type", "")
        document = decode_json(answer.body, content_type=kind, what=f"POST {answer.url}")
        files = document.get("files") if isinstance(document, Mapping) else None
        if isinstance(files, list) and len(files) == 1:
            files = files[0]
        if not isinstance(files, Mapping) or not files.get("id"):
            raise ResponseDecodeError(f"POST {answer.url}: no file id in the answer")
        return str(files["id"]), str(files.get("status", ""))

    async def download(
        self,
        document: Mapping[str, Any] | str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        concurrency: int = 2,
    ) -> Path:
        """Download a document (its record, or the ``file`` identifier) to ``dest``.

        Parts are fetched ``concurrency`` at a time and written in order to a temp file next to
        ``dest``, which is renamed onto ``dest`` once complete (and, for a record, its size
        checked). An interrupted download resumes from the parts already in the temp file.
        Memory holds about ``concurrency`` + 1 parts.
        """
        if concurrency < 1:
            raise InvalidRequestError("concurrency must be at least 1")
        from ._client import format_ids  # the client imports this module

        identifier, size = _identify(document)
        format_ids(identifier)  # an identifier such as DL::Actions::65::2531 goes unencoded
        target = Path(os.fspath(dest))
        partial = partial_path(target, identifier)
        done = await _resume_point(partial, size)
        try:
            written = await self._fetch_into(partial, identifier, done, size, concurrency, progress)
        except BaseException:
            with contextlib.suppress(OSError):  # leave no empty temp file behind
                if (await aiofiles.os.stat(partial, executor=_IO)).st_size == 0:
                    await aiofiles.os.remove(partial, executor=_IO)
            raise
        if size is not None and written != size:
            raise ResponseDecodeError(f"{identifier}: got {written} bytes, expected {size}")
        await aiofiles.os.replace(partial, target, executor=_IO)
        return target

    async def _fetch_into(
        self,
        partial: Path,
        identifier: str,
        done: int,
        size: int | None,
        concurrency: int,
        progress: Progress | None,
    ) -> int:
        async with aiofiles.open(partial, "r+b" if done else "wb", executor=_IO) as handle:
            await handle.truncate(done)
            await handle.seek(done)
            if size is None:
                written = await self._fetch_sequential(identifier, handle, done, progress)
            else:
                written = await self._fetch_window(
                    identifier, handle, done, size, concurrency, progress
                )
            await handle.flush()
            await asyncio.get_running_loop().run_in_executor(_IO, os.fsync, handle.fileno())
        return written

    async def _part(self, identifier: str, number: int) -> bytes:
        answer = await self._client._call(
            "GET",
            f"files/{identifier}?part_number={number}",
            None,
            resource="files",
            headers={"Accept": "*/*"},
            max_body_bytes=PART_SIZE,
        )
        return answer.body

    async def _fetch_window(
        self,
        identifier: str,
        handle: Any,
        done: int,
        size: int,
        concurrency: int,
        progress: Progress | None,
    ) -> int:
        count = part_count(size)
        upcoming = done // PART_SIZE + 1
        window: deque[asyncio.Task[bytes]] = deque()
        try:
            while upcoming <= count or window:
                while upcoming <= count and len(window) < concurrency:
                    window.append(asyncio.ensure_future(self._part(identifier, upcoming)))
                    upcoming += 1
                number = upcoming - len(window)
                data = await window.popleft()
                if len(data) != part_length(size, number):
                    raise ResponseDecodeError(
                        f"{identifier}: part {number} has {len(data)} bytes, expected"
                        f" {part_length(size, number)}"
                    )
                await handle.write(data)
                done += len(data)
                del data
                if progress is not None:
                    progress(done, size)
        finally:
            for task in window:
                task.cancel()
            if window:
                await asyncio.gather(*window, return_exceptions=True)
        return done

    async def _fetch_sequential(
        self, identifier: str, handle: Any, done: int, progress: Progress | None
    ) -> int:
        """Without a size: parts until a short one (a full last part leaves one extra 4xx)."""
        number = done // PART_SIZE + 1
        while True:
            try:
                data = await self._part(identifier, number)
            except (BadRequestError, NotFoundError):
                if number == 1:
                    raise
                return done  # past the last part of a file that is a multiple of 5 MB
            await handle.write(data)
            done += len(data)
            if progress is not None:
                progress(done, None)
            if len(data) < PART_SIZE:
                return done
            number += 1


async def _resume_point(partial: Path, size: int | None) -> int:
    """Bytes of whole parts already in the temp file (0 to start over)."""
    try:
        have = (await aiofiles.os.stat(partial, executor=_IO)).st_size
    except FileNotFoundError:
        return 0
    if size is not None and have > size:
        return 0
    return have - have % PART_SIZE
