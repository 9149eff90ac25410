"""The suite-wide secret scan really fails a run that leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("body", "leaks"),
    [
        ("logging.getLogger('x').debug('token %s', 'sentinel-access-token-77b1e0')", True),
        ("print('refresh sentinel-refresh-token-c4d8aa')", True),
        ("logging.getLogger('x').debug('token fingerprint 1a2b3c')", False),
    ],
)
@pytest.mark.slow
def test_scan_fails_runs_that_log_or_print_a_secret(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str, leaks: bool
) -> None:
    """A DEBUG log line or printed output containing a sentinel turns a green run red."""
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    pytester.makepyfile(f"import logging\n\ndef test_it():\n    {body}\n")
    result = pytester.runpytest_subprocess("-p", "tests.leak_scan", "-p", "no:cacheprovider")
    if leaks:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stderr.fnmatch_lines(["*SECRET LEAK*"])
        assert "sentinel-" not in result.stderr.str()
    else:
        assert result.ret == pytest.ExitCode.OK
