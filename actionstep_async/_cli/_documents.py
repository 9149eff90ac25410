"""``upload``, ``download`` and ``export --documents``: files through ``client.documents``.

Exported documents go to ``DIR/documents/<action id>/<document id>-<name>``. A finished file
(its size matching the record) is skipped on the next run and a half-downloaded one continues
from the parts on disk, so an interrupted ``export --documents`` resumes like the export itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .._client import AsyncResourceClient
from .._documents import UploadInterruptedError
from .._errors import OutcomeUnknownError
from ._config import Settings
from ._exits import FAILED, OK, USAGE, CommandError
from ._output import err_console, write_json

__all__ = ["document_filename", "download", "export_documents", "upload"]

DOCUMENTS_DIR: Final = "documents"
_UNSAFE: Final = re.compile(r"[^\w .()\[\]+,=@-]")


def document_filename(record: Mapping[str, Any]) -> str:
    """A safe local name for a document: its name plus its extension, nothing path-like."""
    name = str(record.get("name") or record.get("id") or "document")
    extension = str(record.get("extension") or "").lstrip(".")
    if extension and not name.lower().endswith("." + extension.lower()):
        name = f"{name}.{extension}"
    safe = _UNSAFE.sub("_", name).strip(" .") or "document"
    return safe[:200]


async def upload(args: argparse.Namespace, settings: Settings) -> int:
    from ._commands import connect

    source = Path(args.file)
    if not await asyncio.to_thread(source.is_file):
        raise CommandError(f"{source} is not a file", USAGE)
    async with connect(settings) as (_, client):
        try:
            record = await client.documents.upload(
                source, name=args.name or source.name, action=args.action, folder=args.folder
            )
        except UploadInterruptedError as exc:
            raise CommandError(
                f"{exc}; nothing was attached, run the command again", FAILED
            ) from exc
        except OutcomeUnknownError as exc:
            raise CommandError(
                f"the attach of file {exc.file_id} may or may not have happened; check the"
                f" matter's documents before uploading again",
                FAILED,
            ) from exc
    write_json(dict(record))
    return OK


async def download(args: argparse.Namespace, settings: Settings) -> int:
    from ._commands import connect

    out = Path(args.out)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    async with connect(settings) as (_, client):
        document: Mapping[str, Any] | str = args.document
        if args.document.isdigit():
            record = await client.get("actiondocuments", int(args.document))
            document, name = record, document_filename(record)
        else:
            name = _UNSAFE.sub("_", args.document)
        path = await client.documents.download(document, out / name)
    size = (await asyncio.to_thread(path.stat)).st_size
    err_console().print(f"saved {path} ({size:,} bytes)", highlight=False, markup=False)
    return OK


def _action_ids(out: Path) -> set[str]:
    """The ids of the matters in ``DIR/actions.jsonl`` (the export just written)."""
    ids: set[str] = set()
    with open(out / "actions.jsonl", "rb") as handle:
        for line in handle:
            ids.add(str(json.loads(line)["id"]))
    return ids


def _wanted(record: Mapping[str, Any], action: str, out: Path) -> Path | None:
    """Where a document of matter ``action`` goes, or None when it is already there."""
    target = out / DOCUMENTS_DIR / action / f"{record.get('id')}-{document_filename(record)}"
    size = record.get("fileSize")
    if target.exists() and size is not None and target.stat().st_size == int(size):
        return None
    return target


async def export_documents(
    client: AsyncResourceClient[Any], out: Path, *, concurrency: int = 2
) -> tuple[int, int]:
    """Download every document of the exported matters; returns (downloaded, already there).

    At most ``concurrency`` documents are in flight, each with its own parts in flight.
    """
    if not (out / "actions.jsonl").exists():
        raise CommandError("export --documents needs actions among the exported resources", USAGE)
    actions = await asyncio.to_thread(_action_ids, out)
    fetched = skipped = 0
    running: set[asyncio.Future[Path]] = set()

    async def fetch(record: Mapping[str, Any], target: Path) -> Path:
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        return await client.documents.download(record, target)

    try:
        async for record in client.iterate("actiondocuments"):
            action = str((record.get("links") or {}).get("action") or "")
            if action not in actions:
                continue
            target = await asyncio.to_thread(_wanted, record, action, out)
            if target is None:
                skipped += 1
                continue
            if len(running) >= concurrency:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            running.add(asyncio.ensure_future(fetch(record, target)))
            fetched += 1
        for task in asyncio.as_completed(running):
            await task
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return fetched, skipped
