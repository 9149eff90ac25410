"""The README's Documents examples, executed exactly as printed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from actionstep_async import RetryPolicy
from actionstep_async.testing import FakeActionstep, FaultRule

from .helpers import PART, documents, file_requests, make_file, same_bytes

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    return str(block)


def test_upload_and_download_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_block("lease-copy.pdf"), "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.split() == ["DL::Actions::65::1", "12000009"]


def test_upload_surely_resumes_and_checks_before_attaching(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_block("async def upload_surely"), "README.md", "exec"), namespace)
    source = make_file(tmp_path / "bundle.bin", 3 * PART)

    async def run() -> None:
        async with FakeActionstep() as fake:
            client = await fake.connect(scopes=("all",), retry=RetryPolicy(max_attempts=1))
            async with client:
                serve = fake.files.serve

                async def drop_part_two(request: Any, ids: str | None) -> Any:
                    response = await serve(request, ids)
                    if ids is None:  # part 1 answered: the next part's connection drops
                        fake.add_fault(FaultRule("drop", resource="files", count=1))
                    return response

                fake.files.serve = drop_part_two  # type: ignore[method-assign]
                fake.add_fault(FaultRule("drop", resource="actiondocuments", count=1, after=True))
                record = await namespace["upload_surely"](client, source, name="Bundle", action=65)
                assert documents(fake) == 1
                assert fake.counters.faults_fired["drop"] == 2
                assert file_requests(fake, "POST") == 4  # parts 1, 2 (dropped), 2, 3
                dest = await client.documents.download(record, tmp_path / "copy.bin")
                assert same_bytes(source, dest)

    asyncio.run(run())
