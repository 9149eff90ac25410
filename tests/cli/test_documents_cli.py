"""upload, download and export --documents through the real command."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from actionstep_async._documents import partial_path
from actionstep_async.testing import FaultRule

from ..documents.helpers import PART, file_requests, make_file, same_bytes
from .helpers import Setup, finish, start_cli

pytestmark = pytest.mark.slow  # every test here runs the command in a subprocess


async def _upload(setup: Setup, source: Path, action: int) -> Any:
    async with await setup.fake.connect(scopes=("all",)) as client:
        return await client.documents.upload(source, name=source.name, action=action)


async def test_upload_then_download_by_id(setup: Setup, tmp_path: Path) -> None:
    await setup.store_token()
    source = make_file(tmp_path / "Lease.pdf", PART + 7, head=b"%PDF-1.4")
    uploaded = await setup.run("upload", str(source), "--action", "65", "--folder", "287")
    assert uploaded.status == 0, uploaded.stderr
    record = json.loads(uploaded.stdout)
    assert record["file"].startswith("DL::Actions::65::")
    assert record["links"] == {"action": "65", "folder": "287"}
    out = setup.cwd / "out"
    downloaded = await setup.run("download", str(record["id"]), "--out", str(out))
    assert downloaded.status == 0, downloaded.stderr
    assert same_bytes(source, out / "Lease.pdf")
    by_identifier = await setup.run("download", record["file"], "--out", str(out))
    assert by_identifier.status == 0, by_identifier.stderr
    assert same_bytes(source, out / record["file"].replace(":", "_"))


async def test_upload_of_a_refused_file_is_a_usage_error(setup: Setup, tmp_path: Path) -> None:
    await setup.store_token()
    source = make_file(tmp_path / "install.exe", 10)
    result = await setup.run("upload", str(source), "--action", "1")
    assert result.status == 2
    assert "does not accept .exe" in result.stderr
    assert file_requests(setup.fake, "POST") == 0


@pytest.mark.records(actions=30)
async def test_export_documents_writes_a_folder_tree_and_resumes(
    setup: Setup, tmp_path: Path
) -> None:
    await setup.store_token()
    first = make_file(tmp_path / "a.txt", 10, seed=1)
    second = make_file(tmp_path / "b.txt", PART + 1, seed=2)
    stray = make_file(tmp_path / "c.txt", 5, seed=3)
    one = await _upload(setup, first, 3)
    two = await _upload(setup, second, 3)
    await _upload(setup, stray, 999)  # a matter outside the export: not downloaded
    out = setup.cwd / "out"
    args = ("export", "actions", "--out", str(out), "--documents", "--no-progress")
    result = await setup.run(*args)
    assert result.status == 0, result.stderr
    assert "2 downloaded, 0 already there" in result.stderr
    assert same_bytes(first, out / "documents" / "3" / f"{one['id']}-a.txt")
    assert same_bytes(second, out / "documents" / "3" / f"{two['id']}-b.txt")
    assert not (out / "documents" / "999").exists()
    before = file_requests(setup.fake, "GET")
    again = await setup.run(*args)
    assert again.status == 0, again.stderr
    assert "0 downloaded, 2 already there" in again.stderr
    assert file_requests(setup.fake, "GET") == before


async def test_download_interrupted_by_sigint_resumes_from_the_bytes_on_disk(
    setup: Setup, tmp_path: Path
) -> None:
    await setup.store_token()
    source = make_file(tmp_path / "Bundle.bin", 12 * PART + 3)
    record = await _upload(setup, source, 5)
    out = setup.cwd / "out"
    out.mkdir()
    dest = out / "Bundle.bin"
    partial = partial_path(dest, record["file"])
    setup.fake.add_fault(FaultRule("latency", resource="files", method="GET", latency=0.3))
    args = ("download", str(record["id"]), "--out", str(out))
    process = await start_cli(*args, env=setup.env, cwd=setup.cwd)
    async with asyncio.timeout(60):
        while not partial.exists() or partial.stat().st_size < 2 * PART:
            assert process.returncode is None, "download ended before it could be interrupted"
            await asyncio.sleep(0.02)
    process.send_signal(signal.SIGINT)
    interrupted = await finish(process)
    assert interrupted.status == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    assert not dest.exists()
    kept = partial.stat().st_size // PART
    assert 2 <= kept < 13
    setup.fake.clear_faults()
    await asyncio.sleep(0.5)  # parts still in the fake's latency when the command died finish
    before = file_requests(setup.fake, "GET", 200)
    resumed = await setup.run(*args)
    assert resumed.status == 0, resumed.stderr
    assert same_bytes(source, dest)
    assert not partial.exists()
    assert file_requests(setup.fake, "GET", 200) - before == 13 - kept
