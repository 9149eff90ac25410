"""The pure pieces: part arithmetic, refused names, the multipart body, which retries are safe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actionstep_async import InvalidRequestError, NotFoundError
from actionstep_async._cli._documents import document_filename
from actionstep_async._documents import (
    PART_SIZE,
    _identify,
    multipart_body,
    part_count,
    part_length,
    partial_path,
    refused_extension,
)
from actionstep_async._retry import DONE, Answered, Fail, Sleep, Unanswered, next_step
from actionstep_async.testing import FAST_RETRY, FakeActionstep
from actionstep_async.testing._files import signature_matches


@pytest.mark.parametrize(
    ("size", "parts", "last"),
    [
        (0, 1, 0),
        (1, 1, 1),
        (PART_SIZE - 1, 1, PART_SIZE - 1),
        (PART_SIZE, 1, PART_SIZE),
        (PART_SIZE + 1, 2, 1),
        (12 * PART_SIZE, 12, PART_SIZE),
        (60 * 1024 * 1024, 12, PART_SIZE),
    ],
)
def test_part_arithmetic(size: int, parts: int, last: int) -> None:
    assert part_count(size) == parts
    assert part_length(size, parts) == last
    assert sum(part_length(size, n) for n in range(1, parts + 1)) == size


@pytest.mark.parametrize(
    ("filename", "refused"),
    [
        ("setup.exe", "exe"),
        ("RUN.BAT", "bat"),
        ("a.tar.sh", "sh"),
        ("lib.dll", "dll"),
        ("exe", None),
        ("notes.exe.txt", None),
        ("report.pdf", None),
        (".sh", "sh"),
        ("noextension", None),
    ],
)
def test_refused_extensions(filename: str, refused: str | None) -> None:
    assert refused_extension(filename) == refused


@pytest.mark.parametrize(
    "filename", ["plain.txt", 'quo"te.txt', "back\\slash.txt", "line\r\nbreak.txt", "é.txt"]
)
async def test_multipart_body_is_read_back_by_the_fake(
    fake_actionstep: FakeActionstep, filename: str
) -> None:
    data = bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"
    body, content_type = multipart_body(filename, data, "0123456789abcdef")
    assert content_type == "multipart/form-data; boundary=0123456789abcdef"
    assert body.startswith(b"--0123456789abcdef\r\n")
    assert body.endswith(data + b"\r\n--0123456789abcdef--\r\n")
    async with await fake_actionstep.connect(scopes=("all",)) as client:
        record = await client.documents.upload(_once(data), name="n", action=1, filename=filename)
    (upload,) = fake_actionstep.files.uploads.values()
    assert "\r" not in upload.filename
    assert "\n" not in upload.filename
    assert upload.filename.endswith(".txt")
    assert record["fileSize"] == len(data)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize(
    ("idempotent", "outcome", "expected"),
    [
        (None, Unanswered(may_have_been_sent=True), Fail(outcome_unknown=True)),
        (False, Unanswered(may_have_been_sent=True), Fail(outcome_unknown=True)),
        (True, Unanswered(may_have_been_sent=True), Sleep),
        (None, Unanswered(may_have_been_sent=False), Sleep),
        (None, Answered(503), Fail()),
        (True, Answered(503), Sleep),
        (None, Answered(429), Sleep),
        (True, Answered(400), Fail()),
        (True, Answered(200), DONE),
    ],
)
def test_a_post_declared_idempotent_is_retried_like_a_put(
    idempotent: bool | None, outcome: Answered | Unanswered, expected: object
) -> None:
    step = next_step(
        FAST_RETRY,
        "POST",
        outcome,
        attempt=1,
        elapsed=0.0,
        reauthorized=False,
        idempotent=idempotent,
    )
    if expected is Sleep:
        assert isinstance(step, Sleep)
    else:
        assert step == expected


@pytest.mark.parametrize(
    ("head", "accepted"),
    [(b"%PDF-1.7", True), (b"%PDX", False), (b"", False), (b"PK\x05\x06", True)],
)
def test_signatures(head: bytes, accepted: bool) -> None:
    name = "a.pdf" if head.startswith(b"%PD") or not head else "a.docx"
    assert signature_matches(name, head) is accepted
    assert signature_matches("a.txt", head)


def test_partial_path_is_next_to_dest_and_per_identifier() -> None:
    dest = Path("/data/out/lease.pdf")
    first = partial_path(dest, "DL::Actions::1::2")
    assert first.parent == dest.parent
    assert first.name.startswith(".lease.pdf.")
    assert first != partial_path(dest, "DL::Actions::1::3")


@pytest.mark.parametrize(
    ("record", "name"),
    [
        ({"name": "Lease", "extension": "pdf"}, "Lease.pdf"),
        ({"name": "Lease.PDF", "extension": "pdf"}, "Lease.PDF"),
        ({"name": "../../etc/passwd"}, "_.._etc_passwd"),
        ({"name": "a/b\\c:d", "extension": "txt"}, "a_b_c_d.txt"),
        ({"id": 7}, "7"),
        ({"name": "..."}, "document"),
    ],
)
def test_document_filenames_are_safe(record: dict[str, object], name: str) -> None:
    assert document_filename(record) == name


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("DL::Actions::65::2531", ("DL::Actions::65::2531", None)),
        ({"file": "DL::Actions::1::2", "fileSize": 10}, ("DL::Actions::1::2", 10)),
        ({"file": "DL::Actions::1::2", "fileSize": "10"}, ("DL::Actions::1::2", 10)),
        ({"file": "DL::Actions::1::2", "fileSize": ""}, ("DL::Actions::1::2", None)),
        ({"file": "DL::Actions::1::2", "fileSize": "big"}, ("DL::Actions::1::2", None)),
        ({"file": "DL::Actions::1::2"}, ("DL::Actions::1::2", None)),
    ],
)
def test_identify(document: object, expected: tuple[str, int | None]) -> None:
    assert _identify(document) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("document", [{}, {"file": ""}, {"file": 12}])
def test_a_record_without_a_file_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError, match="no 'file'"):
        _identify(document)


async def test_a_missing_document_leaves_no_temp_file(
    fake_actionstep: FakeActionstep, tmp_path: Path
) -> None:
    async with await fake_actionstep.connect(scopes=("all",)) as client:
        with pytest.raises(NotFoundError):
            await client.documents.download("DL::Actions::1::404", tmp_path / "gone.pdf")
        with pytest.raises(InvalidRequestError, match="concurrency"):
            await client.documents.download("x", tmp_path / "x", concurrency=0)
    assert list(tmp_path.iterdir()) == []
