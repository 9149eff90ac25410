"""Upload and download against FakeActionstep: sizes, refusals, drops, resumes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actionstep_async import (
    AsyncResourceClient,
    BadRequestError,
    InvalidRequestError,
    OutcomeUnknownError,
    ResponseDecodeError,
    RetryPolicy,
)
from actionstep_async._documents import (
    RefusedFileError,
    UploadInterruptedError,
    UploadResume,
    multipart_body,
    partial_path,
)
from actionstep_async._tokens import dump_token
from actionstep_async.testing import FAST_RETRY, FakeActionstep, FaultRule

from .helpers import MB, PART, documents, file_requests, make_file, same_bytes

NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture
async def client(fake_actionstep: FakeActionstep) -> AsyncIterator[AsyncResourceClient]:
    async with await fake_actionstep.connect(scopes=("all",), retry=FAST_RETRY) as client:
        yield client


@pytest.mark.parametrize("size", [0, 1, PART, PART + 1, 60 * MB])
async def test_upload_then_download_is_byte_identical(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path, size: int
) -> None:
    source = make_file(tmp_path / "evidence.bin", size)
    record = await client.documents.upload(source, name="Evidence", action=65, folder=287)
    assert record["name"] == "Evidence"
    assert record["fileSize"] == size
    assert record["file"].startswith("DL::Actions::65::")
    assert record["links"]["folder"] == "287"
    assert file_requests(fake_actionstep, "POST") == max(1, -(-size // PART))
    seen: list[tuple[int, int | None]] = []
    dest = await client.documents.download(
        record, tmp_path / "copy.bin", progress=lambda done, total: seen.append((done, total))
    )
    assert same_bytes(source, dest)
    assert file_requests(fake_actionstep, "GET") == max(1, -(-size // PART))
    assert seen[-1] == (size, size)
    assert not partial_path(dest, record["file"]).exists()


async def test_identifier_download_without_size_stops_after_the_last_part(
    client: AsyncResourceClient, tmp_path: Path
) -> None:
    for size in (3, 2 * PART):
        source = make_file(tmp_path / f"{size}.txt", size)
        record = await client.documents.upload(source, name="n", action=1)
        dest = await client.documents.download(str(record["file"]), tmp_path / f"{size}.out")
        assert same_bytes(source, dest)


async def test_contact_documents_and_streams(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (PART // 128)  # two parts

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 777_777):
            yield data[start : start + 777_777]

    spooled = await client.documents.upload(stream(), name="Scan", contact=42, filename="scan.txt")
    sized = await client.documents.upload(
        stream(), name="Scan", contact=42, filename="scan.txt", size=len(data)
    )
    assert documents(fake_actionstep, "contactdocuments") == 2
    for record in (spooled, sized):
        assert record["file"].startswith("CD::Contacts::42::")
        dest = await client.documents.download(record, tmp_path / "scan.txt")
        assert dest.read_bytes() == data


@pytest.mark.parametrize("extension", ["exe", "EXE", "sh", "bat", "dll", "tpl", "jar"])
async def test_refused_extension_fails_before_any_byte_is_sent(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path, extension: str
) -> None:
    source = make_file(tmp_path / f"setup.{extension}", 10)
    with pytest.raises(RefusedFileError, match="does not accept"):
        await client.documents.upload(source, name="Setup", action=1)
    assert file_requests(fake_actionstep, "POST") == 0


async def test_the_fake_refuses_what_the_client_lets_through(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    # The fake checks the multipart filename itself: send tool.exe past the client's check.
    source = make_file(tmp_path / "fine.txt", 10)
    body, content_type = multipart_body("tool.exe", source.read_bytes(), "b" * 16)
    with pytest.raises(BadRequestError, match="extension are not allowed"):
        await client.documents._send_part(None, 1, 1, body, content_type)
    assert documents(fake_actionstep) == 0


@pytest.mark.parametrize(
    ("name", "head", "accepted"),
    [
        ("brief.pdf", b"%PDF-1.7\n", True),
        ("brief.pdf", b"MZ\x90\x00", False),
        ("photo.png", b"\x89PNG\r\n\x1a\n", True),
        ("photo.jpg", b"GIF89a", False),
        ("photo.jpeg", b"\xff\xd8\xff\xe0", True),
        ("contract.docx", b"PK\x03\x04", True),
        ("contract.docx", b"%PDF-1.4", False),
        ("notes.txt", b"anything", True),
    ],
)
async def test_signature_must_match_the_extension(
    client: AsyncResourceClient,
    fake_actionstep: FakeActionstep,
    tmp_path: Path,
    name: str,
    head: bytes,
    accepted: bool,
) -> None:
    source = make_file(tmp_path / name, PART + 100, head=head)
    if accepted:
        record = await client.documents.upload(source, name="Doc", action=3)
        assert record["extension"] == name.rsplit(".", 1)[1]
    else:
        with pytest.raises(BadRequestError, match="does not match"):
            await client.documents.upload(source, name="Doc", action=3)
    assert documents(fake_actionstep) == (1 if accepted else 0)


def _fault_before_part(fake: FakeActionstep, part: int, rule: FaultRule):  # type: ignore[no-untyped-def]
    """A progress callback arming ``rule`` once ``part - 1`` parts are acknowledged."""

    def progress(done: int, total: int | None) -> None:
        if done == (part - 1) * PART:
            fake.add_fault(rule)

    return progress


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("part", [2, 3])  # a middle part and the last part of three
async def test_a_drop_during_a_later_part_is_resent_and_attached_once(
    client: AsyncResourceClient,
    fake_actionstep: FakeActionstep,
    tmp_path: Path,
    part: int,
    after: bool,
) -> None:
    fake_actionstep.files.quarantine_delay = 0.05
    source = make_file(tmp_path / "bundle.pdf", 2 * PART + 10, head=b"%PDF-1.5")
    drop = FaultRule("drop", resource="files", method="POST", count=1, after=after)
    record = await client.documents.upload(
        source, name="Bundle", action=7, progress=_fault_before_part(fake_actionstep, part, drop)
    )
    assert fake_actionstep.counters.faults_fired["drop"] == 1
    assert file_requests(fake_actionstep, "POST") == 4
    assert documents(fake_actionstep) == 1
    dest = await client.documents.download(record, tmp_path / "copy.pdf")
    assert same_bytes(source, dest)


@pytest.mark.parametrize("part", [2, 3])
async def test_an_interrupted_upload_resumes_from_the_first_unacknowledged_part(
    fake_actionstep: FakeActionstep, tmp_path: Path, part: int
) -> None:
    source = make_file(tmp_path / "bundle.bin", 2 * PART + 10)
    drop = FaultRule("drop", resource="files", method="POST", count=1, after=True)
    async with await fake_actionstep.connect(scopes=("all",), retry=NO_RETRY) as client:
        with pytest.raises(UploadInterruptedError) as caught:
            await client.documents.upload(
                source,
                name="Bundle",
                action=7,
                progress=_fault_before_part(fake_actionstep, part, drop),
            )
        resume = caught.value.resume
        assert resume is not None
        assert (resume.part_count, resume.parts_done) == (3, part - 1)
        assert isinstance(caught.value.__cause__, OutcomeUnknownError)
        assert documents(fake_actionstep) == 0
        before = file_requests(fake_actionstep, "POST")
        record = await client.documents.upload(source, name="Bundle", action=7, resume=resume)
    assert file_requests(fake_actionstep, "POST") - before == 3 - (part - 1)
    assert documents(fake_actionstep) == 1
    assert record["fileSize"] == source.stat().st_size


async def test_resume_refuses_a_different_file(client: AsyncResourceClient, tmp_path: Path) -> None:
    source = make_file(tmp_path / "small.bin", 10)
    with pytest.raises(InvalidRequestError, match="cannot resume"):
        await client.documents.upload(
            source, name="x", action=1, resume=UploadResume("abc", part_count=3, parts_done=1)
        )


async def test_a_lost_answer_to_part_one_is_not_repeated(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "one.bin", 100)
    fake_actionstep.add_fault(FaultRule("drop", resource="files", count=1, after=True))
    with pytest.raises(UploadInterruptedError) as caught:
        await client.documents.upload(source, name="One", action=1)
    assert caught.value.resume is None  # nothing acknowledged: start over
    assert file_requests(fake_actionstep, "POST") == 1
    assert documents(fake_actionstep) == 0


async def test_rate_limited_and_failing_parts_are_retried(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "two.bin", PART + 1)
    fake_actionstep.add_fault(FaultRule("rate_limit", resource="files", count=2, retry_after=0))
    record = await client.documents.upload(source, name="Two", action=1)
    fake_actionstep.add_fault(
        FaultRule("status", resource="files", method="GET", count=1, status=503)
    )
    fake_actionstep.add_fault(FaultRule("drop", resource="files", method="GET", count=1))
    dest = await client.documents.download(record, tmp_path / "two.out")
    assert same_bytes(source, dest)
    assert fake_actionstep.counters.faults_fired["rate_limit"] == 2


async def test_an_unknown_attach_outcome_carries_the_file_id_and_is_not_repeated(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "deed.txt", 1000)
    fake_actionstep.add_fault(
        FaultRule("drop", resource="actiondocuments", method="POST", count=1, after=True)
    )
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.documents.upload(source, name="Deed", action=9)
    file_id = caught.value.file_id
    assert file_id in fake_actionstep.files.uploads
    assert documents(fake_actionstep) == 1  # it did happen, once; the client did not resend
    page = await client.list("actiondocuments", filters={"name": "Deed"})
    assert len(page.records) == 1
    assert page.records[0]["file"].startswith("DL::Actions::9::")


async def test_attach_after_checking_sends_the_attach_once(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "deed.txt", 1000)
    fake_actionstep.add_fault(
        FaultRule("drop", resource="actiondocuments", method="POST", count=1, after=False)
    )
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.documents.upload(source, name="Deed", action=9)
    assert documents(fake_actionstep) == 0  # checked: not attached, so attach it now
    assert caught.value.file_id is not None
    record = await client.documents.attach(
        caught.value.file_id, filename="deed.txt", name="Deed", action=9
    )
    assert record["fileSize"] == 1000
    assert documents(fake_actionstep) == 1


async def test_a_revoked_token_mid_upload_is_refreshed(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "long.bin", 2 * PART)
    token = await client.manager.token(client.key)

    def revoke(done: int, total: int | None) -> None:
        fake_actionstep.revoke_access_token(token.access_token)

    record = await client.documents.upload(source, name="Long", action=1, progress=revoke)
    assert record["fileSize"] == 2 * PART
    assert fake_actionstep.counters.token_calls_by_grant["refresh_token"] == 1


async def test_download_resumes_from_the_parts_on_disk(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "big.bin", 4 * PART + 3)
    record = await client.documents.upload(source, name="Big", action=1)
    dest = tmp_path / "out" / "big.bin"
    dest.parent.mkdir()
    partial = partial_path(dest, record["file"])
    # Two whole parts and half of the third, as an interruption mid-write leaves it.
    partial.write_bytes(source.read_bytes()[: 2 * PART + PART // 2])
    await client.documents.download(record, dest)
    assert same_bytes(source, dest)
    assert file_requests(fake_actionstep, "GET") == 3
    assert not partial.exists()


async def test_a_wrong_size_is_refused_and_dest_left_alone(
    client: AsyncResourceClient, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "a.bin", 100)
    record = dict(await client.documents.upload(source, name="A", action=1))
    record["fileSize"] = 99
    dest = tmp_path / "a.out"
    with pytest.raises(ResponseDecodeError, match="expected 99"):
        await client.documents.download(record, dest)
    assert not dest.exists()


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "a/b", "a b", "x?part_number=2", "a,b", "", "..", "\u00e9"]
)
async def test_identifiers_that_could_change_the_path_are_refused(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep, tmp_path: Path, bad: str
) -> None:
    with pytest.raises(InvalidRequestError, match="invalid"):
        await client.documents.download(bad, tmp_path / "x")
    assert file_requests(fake_actionstep, "GET") == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "exactly one"), ({"action": 1, "contact": 2}, "exactly one")],
)
async def test_attach_target_is_validated_first(
    client: AsyncResourceClient, tmp_path: Path, kwargs: dict[str, int], message: str
) -> None:
    source = make_file(tmp_path / "a.txt", 1)
    with pytest.raises(InvalidRequestError, match=message):
        await client.documents.upload(source, name="A", **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_peak_memory_is_flat_in_file_size(
    fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    """A 200 MB round trip peaks within 2 parts of a 50 MB one (RSS of a child process)."""
    fake = fake_actionstep
    small = make_file(tmp_path / "small.bin", 4 * PART, seed=5)
    medium = make_file(tmp_path / "medium.bin", 50 * MB, seed=6)
    big = make_file(tmp_path / "big.bin", 200 * MB, seed=7)
    document = {
        "token": dump_token(fake.issue_token(("all",))),
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "redirect_uri": fake.redirect_uri,
        "base_url": fake.base_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.documents._memory_worker",
        json.dumps(document),
        str(tmp_path),
        str(small),
        str(medium),
        str(big),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, stderr.decode()
    peaks = json.loads(stdout)
    assert same_bytes(big, tmp_path / "big.bin.out")
    # The 20 MB warm-up and the 50 MB run reach the steady state of part buffers; from there
    # 150 MB more must not cost 2 parts' worth.
    growth_kb = peaks["big.bin"] - peaks["medium.bin"]
    assert growth_kb < 2 * PART // 1024, peaks


async def test_a_stream_shorter_than_its_size_fails_before_the_attach(
    client: AsyncResourceClient, fake_actionstep: FakeActionstep
) -> None:
    async def short() -> AsyncIterator[bytes]:
        yield b"x" * 100

    with pytest.raises(InvalidRequestError, match="ended early"):
        await client.documents.upload(
            short(), name="s", action=1, filename="s.txt", size=PART + 100
        )
    assert documents(fake_actionstep) == 0


async def test_a_stream_upload_resumes_by_skipping_acknowledged_parts(
    fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (3 * PART // 256)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(data), MB):
            yield data[start : start + MB]

    drop = FaultRule("drop", resource="files", method="POST", count=1)
    async with await fake_actionstep.connect(scopes=("all",), retry=NO_RETRY) as client:
        with pytest.raises(UploadInterruptedError) as caught:
            await client.documents.upload(
                stream(),
                name="Stream",
                action=2,
                filename="stream.txt",
                size=len(data),
                progress=_fault_before_part(fake_actionstep, 3, drop),
            )
        resume = caught.value.resume
        assert resume is not None
        assert resume.parts_done == 2
        record = await client.documents.upload(
            stream(), name="Stream", action=2, filename="stream.txt", size=len(data), resume=resume
        )
        dest = await client.documents.download(record, tmp_path / "stream.txt")
    assert dest.read_bytes() == data
    assert documents(fake_actionstep) == 1
