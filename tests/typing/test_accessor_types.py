"""The public API's types, pinned: mypy checks this module (assert_type), pytest runs it.

A second test runs mypy on snippets that must fail to type-check: a wrong attribute or field
name, a missing required field, a method the resource does not have, a bare ``str`` where a
list of names belongs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import assert_type

import pytest

from actionstep_async import (
    Action,
    AnyRecord,
    AsyncResourceClient,
    FileNote,
    Page,
    Record,
)
from actionstep_async.models import Task

ROOT = Path(__file__).resolve().parents[2]


async def test_accessors_and_generic_methods_carry_real_types(
    make_client: Callable[..., AsyncResourceClient[Record]],
) -> None:
    """Accessors return models; the generic methods Records (or Record | Model when typed)."""
    client = make_client()
    action = await client.actions.get(1)
    assert_type(action, Action)
    assert action.id == 1
    page = await client.filenotes.list(page_size=2, sort=["-id"], fields=["text"])
    assert_type(page, Page[FileNote])
    assert_type(page.records, tuple[FileNote, ...])
    assert_type(page[0], FileNote)
    tasks = client.tasks.iterate(page_size=5)
    assert_type(tasks, AsyncIterator[Task])
    assert all(isinstance(task, Task) for task in [task async for task in tasks])
    note = await client.filenotes.create(text="Called the client", links={"action": 1})
    assert_type(note, FileNote)
    changed = await client.filenotes.update(note.id, text="Called back")
    assert_type(changed, FileNote)
    plain = await client.get("actions", 1)
    assert_type(plain, Record)
    assert_type(await client.get("actions", [1, 2]), list[Record])
    assert_type(await client.list("actions"), Page[Record])
    typed = client.with_options(typed=True)
    assert_type(typed, AsyncResourceClient[AnyRecord])
    assert_type(await typed.get("actions", 1), AnyRecord)
    assert isinstance(await typed.get("actions", 1), Action)


MUST_FAIL = {
    "no_attribute": "action.no_such_attribute",
    "wrong_field": 'await client.filenotes.create(txt="x", links={"action": 1})',
    "missing_required": 'await client.filenotes.create(source="User", links={"action": 1})',
    "missing_link": 'await client.filenotes.create(text="x")',
    "wrong_enum": 'await client.filenotes.create(text="x", source="Robot", links={"action": 1})',
    "read_only": 'await client.filenotes.update(1, entered_by="me")',
    "no_create": 'await client.actions.create(name="x")',
    "no_delete": "await client.actions.delete(1)",
    "bare_str_fields": 'await client.list("actions", fields="name")',
    "bare_str_sort": 'await client.actions.list(sort="-id")',
    "bare_str_include": 'await client.actions.list(include="assignedTo")',
    "plain_has_no_attrs": "plain.name",
}


@pytest.mark.slow
def test_mistakes_are_type_errors(tmp_path: Path) -> None:
    """Each snippet is a mypy error on its own line; the correct code around them is not."""
    lines = [
        "from actionstep_async import AsyncResourceClient, Record",
        "async def check(client: AsyncResourceClient[Record]) -> None:",
        "    action = await client.actions.get(1)",
        '    plain = await client.get("actions", 1)',
        "    reveal_type(await client.tasks.get(1))",
    ]
    where = {}
    for name, snippet in MUST_FAIL.items():
        where[len(lines) + 1] = name
        lines.append(f"    {snippet}")
    source = tmp_path / "snippet.py"
    source.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=600,
    )
    output = done.stdout
    assert 'Revealed type is "actionstep_async._generated.Task"' in output, output
    failed = {int(line.split(":")[1]) for line in output.splitlines() if ": error:" in line}
    assert failed == set(where), textwrap.indent(output, "  ")
