"""The README's REST hooks section: every code block runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## REST hooks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_has_the_receiver_and_the_reconcile_recipes() -> None:
    blocks = _blocks()
    assert len(blocks) == 2
    assert "WebhookReceiver" in blocks[0]
    assert "reconcile" in blocks[1]


@pytest.mark.parametrize("index", [0, 1])
def test_block_runs_verbatim(index: int, capfd: pytest.CaptureFixture[str]) -> None:
    # asyncio.run() inside: a plain (not async) test, so no loop is running yet.
    exec(compile(_blocks()[index], f"README.md REST hooks block {index + 1}", "exec"), {})
    out = capfd.readouterr().out
    if index == 0:
        assert "ActionUpdated actions 1 Smith v Jones (settled)" in out
        assert "hook_token=..." in out
    else:
        assert "missed by the hooks: participants 3" in out
