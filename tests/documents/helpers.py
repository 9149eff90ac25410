"""Files of known content and counts of what the fake saw, for the documents tests."""

from __future__ import annotations

import filecmp
import random
from pathlib import Path

from actionstep_async.testing import FakeActionstep

MB = 1024 * 1024
PART = 5 * MB


def make_file(path: Path, size: int, seed: int = 1, head: bytes = b"") -> Path:
    """``size`` bytes (starting with ``head``) of seeded noise, written 1 MB at a time."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.write(head[:size])
        left = size - min(size, len(head))
        while left:
            chunk = min(left, MB)
            out.write(rng.randbytes(chunk))
            left -= chunk
    return path


def same_bytes(a: Path, b: Path) -> bool:
    return filecmp.cmp(a, b, shallow=False)


def file_requests(fake: FakeActionstep, method: str, status: int | None = None) -> int:
    """Requests to ``files`` with ``method`` (answered with ``status``; 0 means dropped)."""
    return sum(
        count
        for (verb, route, answered), count in fake.counters.requests.items()
        if route == "files" and verb == method and (status is None or answered == status)
    )


def documents(fake: FakeActionstep, resource: str = "actiondocuments") -> int:
    """Documents attached to an uploaded file (the fake also seeds some without content)."""
    prefix = {"actiondocuments": "DL::", "contactdocuments": "CD::"}[resource]
    return sum(1 for identifier in fake.files.documents if identifier.startswith(prefix))
