"""FakeActionstep's files endpoint refuses what the real one refuses, with the errors envelope."""

from __future__ import annotations

import ast
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from actionstep_async._documents import multipart_body
from actionstep_async.testing import FakeActionstep

PART = 5 * 1024 * 1024


@pytest.fixture
async def session(fake_actionstep: FakeActionstep) -> AsyncIterator[aiohttp.ClientSession]:
    token = fake_actionstep.issue_token(("all",))
    headers = {"Authorization": token.authorization, "Accept": "application/vnd.api+json"}
    async with aiohttp.ClientSession(f"{fake_actionstep.base_url}", headers=headers) as session:
        yield session


async def _post_part(
    session: aiohttp.ClientSession, path: str, filename: str = "a.txt", data: bytes = b"x"
) -> tuple[int, Any]:
    body, content_type = multipart_body(filename, data, "boundary0123")
    async with session.post(
        f"/api/rest/{path}", data=io.BytesIO(body), headers={"Content-Type": content_type}
    ) as response:
        return response.status, await response.json(content_type=None)


def _detail(document: Any) -> str:
    return str(document["errors"][0]["detail"])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("files", "required integers"),
        ("files?part_count=x&part_number=1", "required integers"),
        ("files?part_count=2&part_number=3", "between 1 and part_count"),
        ("files?part_count=2&part_number=0", "between 1 and part_count"),
        ("files?part_count=2&part_number=2", "sends part 1"),
        ("files/nosuchid?part_count=2&part_number=2", "No upload"),
    ],
)
async def test_bad_part_requests(session: aiohttp.ClientSession, path: str, message: str) -> None:
    status, document = await _post_part(session, path)
    assert status in (400, 404)
    assert message in _detail(document)


async def test_part_count_must_stay_the_same(session: aiohttp.ClientSession) -> None:
    status, document = await _post_part(session, "files?part_count=2&part_number=1")
    assert (status, document["files"]["status"]) == (200, "Pending")
    file_id = document["files"]["id"]
    status, document = await _post_part(session, f"files/{file_id}?part_count=3&part_number=2")
    assert status == 400
    assert "part_count differs" in _detail(document)


async def test_a_part_over_5_mb_is_refused(session: aiohttp.ClientSession) -> None:
    status, document = await _post_part(
        session, "files?part_count=1&part_number=1", data=b"x" * (PART + 1)
    )
    assert status == 400
    assert "at most 5 MB" in _detail(document)


async def test_not_multipart_or_no_file_field(session: aiohttp.ClientSession) -> None:
    url = "/api/rest/files?part_count=1&part_number=1"
    async with session.post(url, data=b"{}", headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 415
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="a.txt")
    async with session.post(url, data=form) as response:
        assert response.status == 400
        assert "no part named file" in _detail(await response.json(content_type=None))
    garbage = {"Content-Type": "multipart/form-data; boundary=zz"}
    async with session.post(url, data=b"--zz\r\nbroken", headers=garbage) as response:
        assert response.status == 400


async def test_only_post_and_get(session: aiohttp.ClientSession) -> None:
    async with session.delete("/api/rest/files/abc") as response:
        assert response.status == 405


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "part_number is required"),
        ("?part_number=2", 400, "between 1 and 1"),
        ("?part_number=1", 200, None),
    ],
)
async def test_download_part_numbers(
    session: aiohttp.ClientSession,
    fake_actionstep: FakeActionstep,
    query: str,
    status: int,
    message: str | None,
) -> None:
    _, document = await _post_part(session, "files?part_count=1&part_number=1", data=b"hello")
    fields: dict[str, Any] = {"name": "n", "file": f"{document['files']['id']};a.txt"}
    attach = {"actiondocuments": {**fields, "links": {"action": 4}}}
    async with session.post("/api/rest/actiondocuments", json=attach) as response:
        identifier = (await response.json(content_type=None))["actiondocuments"]["file"]
    async with session.get(f"/api/rest/files/{identifier}{query}") as response:
        assert response.status == status
        if message is None:
            assert await response.read() == b"hello"
        else:
            assert message in _detail(await response.json(content_type=None))
    async with session.get("/api/rest/files/DL::Actions::1::999?part_number=1") as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"wrong": {}}, "must be"),
        ({"actiondocuments": {"name": "n", "file": "nosuch;a.txt"}}, "fully uploaded"),
        ({"actiondocuments": {"name": "n", "file": "PENDING;a.txt"}}, "fully uploaded"),
        ({"actiondocuments": {"name": "n", "file": "DONE;a.txt"}}, "links.action is required"),
    ],
)
async def test_attach_refusals(
    session: aiohttp.ClientSession, fake_actionstep: FakeActionstep, body: Any, message: str
) -> None:
    _, pending = await _post_part(session, "files?part_count=2&part_number=1")
    _, done = await _post_part(session, "files?part_count=1&part_number=1")
    text = str(body).replace("PENDING", pending["files"]["id"]).replace("DONE", done["files"]["id"])
    async with session.post("/api/rest/actiondocuments", json=ast.literal_eval(text)) as response:
        assert response.status == 400
        assert message in _detail(await response.json(content_type=None))
    assert fake_actionstep.files.documents == {}
