"""FakeActionstep's files: parts uploaded to ``files``, attached as documents, downloaded by part.

Uploads are kept on disk (a temp directory the fake removes when it stops), so a 200 MB file
costs the fake no memory. The checks mirror the real API's: refused extensions (at part 1),
a signature that must match the extension (when the last part completes, after a configurable
quarantine delay), parts of at most 5 MB, and an attach only of a fully uploaded file.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ._rest import Reply, RestApi, error_document
from ._wire import dumps

__all__ = [
    "DOCUMENT_RESOURCES",
    "FileStore",
    "refused_extension",
    "signature_matches",
]

PART_SIZE: Final = 5 * 1024 * 1024
REFUSED: Final = frozenset(
    {"com", "sh", "exe", "bat", "cmd", "vbs", "src", "msi", "jar", "dll", "tpl"}
)
_ZIP: Final = (b"PK\x03\x04", b"PK\x05\x06")
SIGNATURES: Final[Mapping[str, tuple[bytes, ...]]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "zip": _ZIP,
    "docx": _ZIP,
    "xlsx": _ZIP,
    "pptx": _ZIP,
}
"""Magic bytes for the types whose signature is checked; other extensions pass."""
DOCUMENT_RESOURCES: Final = {"actiondocuments": "action", "contactdocuments": "participant"}
_PREFIX: Final = {"actiondocuments": "DL::Actions", "contactdocuments": "CD::Contacts"}
JSON_API: Final = "application/vnd.api+json"


def _extension(filename: str) -> str:
    _, dot, extension = filename.rpartition(".")
    return extension.lower() if dot else ""


def refused_extension(filename: str) -> bool:
    return _extension(filename) in REFUSED


def signature_matches(filename: str, head: bytes) -> bool:
    """Whether the first bytes fit the extension (extensions without a known signature pass)."""
    magic = SIGNATURES.get(_extension(filename))
    return magic is None or head.startswith(magic)


def _error(status: int, detail: str) -> web.Response:
    return web.Response(
        status=status, body=dumps(error_document(status, detail)), content_type=JSON_API
    )


@attrs.define
class _Upload:
    file_id: str
    filename: str
    part_count: int
    parts: set[int] = attrs.field(factory=set)
    status: str = "Pending"
    size: int = 0


@attrs.define
class _Stored:
    path: Path
    size: int
    filename: str


class FileStore:
    """Uploads in progress, finished files and the documents attached to them."""

    def __init__(self) -> None:
        self.quarantine_delay = 0.0
        """Seconds the last part's answer waits, as the real virus scan makes it wait."""
        self.uploads: dict[str, _Upload] = {}
        self.documents: dict[str, _Stored] = {}
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fake-actionstep-files-"))
        return self._root

    def close(self) -> None:
        """Delete every stored file."""
        root, self._root = self._root, None
        self.uploads.clear()
        self.documents.clear()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    # -- upload ---------------------------------------------------------------------------

    async def serve(self, request: web.Request, ids: str | None) -> web.StreamResponse:
        """``POST files[/{id}]?part_count&part_number`` and ``GET files/{identifier}``."""
        if request.method == "GET" and ids:
            return self._download(ids, request.query.get("part_number", ""))
        if request.method != "POST":
            return _error(405, "files takes POST (upload) and GET (download)")
        try:
            count = int(request.query.get("part_count", ""))
            number = int(request.query.get("part_number", ""))
        except ValueError:
            return _error(400, "part_count and part_number are required integers")
        if not 1 <= number <= count:
            return _error(400, "part_number must be between 1 and part_count")
        received = await _file_part(request)
        if isinstance(received, web.Response):
            return received
        filename, data = received
        if ids is None:
            if number != 1:
                return _error(400, "the first request of an upload sends part 1")
            if refused_extension(filename):
                return _error(
                    400, f"Files with the .{_extension(filename)} extension are not allowed"
                )
            upload = _Upload(secrets.token_hex(20), filename, count)
            self.uploads[upload.file_id] = upload
            (self.root / upload.file_id).mkdir()
        else:
            found = self.uploads.get(ids)
            if found is None:
                return _error(404, "No upload with that file id")
            if found.part_count != count:
                return _error(400, "part_count differs from the upload's first part")
            upload = found
        return await self._store_part(upload, number, data)

    async def _store_part(self, upload: _Upload, number: int, data: bytes) -> web.Response:
        if upload.status != "Uploaded":  # a re-sent part of a finished file changes nothing
            (self.root / upload.file_id / f"{number:06d}").write_bytes(data)
            upload.parts.add(number)
            if len(upload.parts) == upload.part_count:
                if self.quarantine_delay > 0:
                    await asyncio.sleep(self.quarantine_delay)
                problem = await asyncio.to_thread(self._assemble, upload)
                if problem is not None:
                    del self.uploads[upload.file_id]
                    return _error(400, problem)
                upload.status = "Uploaded"
        document = {"files": {"id": upload.file_id, "status": upload.status}}
        return web.Response(status=200, body=dumps(document), content_type=JSON_API)

    def _assemble(self, upload: _Upload) -> str | None:
        directory = self.root / upload.file_id
        target = self.root / f"{upload.file_id}.bin"
        with open(target, "wb") as out:
            for number in range(1, upload.part_count + 1):
                part = directory / f"{number:06d}"
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out)
        shutil.rmtree(directory)
        with open(target, "rb") as check:
            head = check.read(16)
        if not signature_matches(upload.filename, head):
            target.unlink()
            return f"The file content does not match its .{_extension(upload.filename)} extension"
        upload.size = target.stat().st_size
        return None

    # -- attach ---------------------------------------------------------------------------

    def attach(
        self, rest: RestApi, resource: str, body: object, *, api_endpoint: str, started: float
    ) -> Reply:
        """Create an action/contact document from an uploaded file's ``"<fileId>;<name>"``."""
        inner = body.get(resource) if isinstance(body, Mapping) else None
        if not isinstance(inner, Mapping):
            return Reply(400, error_document(400, f'The body must be {{"{resource}": {{...}}}}'))
        file_id, _, name = str(inner.get("file", "")).partition(";")
        upload = self.uploads.get(file_id)
        if upload is None or upload.status != "Uploaded":
            return Reply(400, error_document(400, "file must name a fully uploaded file"))
        owner = str((inner.get("links") or {}).get(DOCUMENT_RESOURCES[resource]) or "")
        if not owner:
            return Reply(
                400, error_document(400, f"links.{DOCUMENT_RESOURCES[resource]} is required")
            )
        filename = name or upload.filename
        # Written as the client sent it (so the resource's write rules apply), then completed
        # with what the server knows: the reply's record is the stored one, so both change.
        reply = rest.create(resource, body, api_endpoint=api_endpoint, started=started)
        record = reply.document[resource] if reply.document and reply.status < 300 else None
        if isinstance(record, dict):
            identifier = f"{_PREFIX[resource]}::{owner}::{record['id']}"
            record.update(
                file=identifier,
                fileName=f"{file_id}_{filename}",
                fileSize=upload.size,
                extension=_extension(filename),
                status="uploaded",
            )
            self.documents[identifier] = _Stored(
                self.root / f"{file_id}.bin", upload.size, filename
            )
        return reply

    # -- download -------------------------------------------------------------------------

    def _download(self, identifier: str, part: str) -> web.Response:
        stored = self.documents.get(identifier)
        if stored is None:
            return _error(404, "No file with that identifier")
        if not part.isdigit():
            return _error(400, "part_number is required")
        number = int(part)
        count = max(1, -(-stored.size // PART_SIZE))
        if not 1 <= number <= count:
            return _error(400, f"part_number must be between 1 and {count}")
        with open(stored.path, "rb") as source:
            source.seek((number - 1) * PART_SIZE)
            data = source.read(PART_SIZE)
        return web.Response(status=200, body=data, content_type="application/octet-stream")


async def _file_part(request: web.Request) -> tuple[str, bytes] | web.Response:
    """The filename and bytes of the multipart field named ``file`` (at most 5 MB)."""
    if not request.content_type.startswith("multipart/"):
        return _error(415, "files takes multipart/form-data")
    try:
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) != "file":
                continue
            chunks = []
            size = 0
            while chunk := await part.read_chunk(1024 * 1024):  # type: ignore[union-attr]
                size += len(chunk)
                if size > PART_SIZE:
                    return _error(400, "a part may hold at most 5 MB")
                chunks.append(chunk)
            return getattr(part, "filename", None) or "", b"".join(chunks)
    except (ValueError, HttpProcessingError):
        return _error(400, "the multipart body is malformed")
    return _error(400, "the multipart body has no part named file")
