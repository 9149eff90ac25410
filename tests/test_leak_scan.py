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


CHAIN_LEAK = """
from actionstep_async import TransportError

def test_it():
    try:
        try:
            raise ValueError("sentinel-access-token-77b1e0")
        except ValueError as exc:
            raise TransportError("no answer") from exc
    except TransportError:
        pass
"""

REPR_LEAK = """
from actionstep_async.testing import Request

def test_it():
    Request("GET", "http://127.0.0.1/?t=sentinel-access-token-77b1e0", {})
"""

NO_LEAK = """
from actionstep_async import TransportError
from actionstep_async.testing import Request

def test_it():
    Request("GET", "http://127.0.0.1/", {"Authorization": "Bearer sentinel-access-token-77b1e0"})
    try:
        raise TransportError("no answer")
    except TransportError:
        pass
"""


@pytest.mark.parametrize(
    ("source", "leaks"), [(CHAIN_LEAK, True), (REPR_LEAK, True), (NO_LEAK, False)]
)
@pytest.mark.slow
def test_scan_covers_caught_exception_chains_and_library_reprs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, leaks: bool
) -> None:
    """A secret in a caught exception's cause, or in a library object's repr, fails the run."""
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    pytester.makepyfile(source)
    result = pytester.runpytest_subprocess("-p", "tests.leak_scan", "-p", "no:cacheprovider")
    if leaks:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stderr.fnmatch_lines(["*SECRET LEAK*"])
        assert "sentinel-" not in result.stderr.str()
    else:
        assert result.ret == pytest.ExitCode.OK
