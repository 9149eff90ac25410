"""Pytest plugin: fail the run if any secret shows up in logs or captured output.

Every log record of the whole run is captured at DEBUG level, as is every test's captured output.
At the end the run fails if a sentinel secret, the fake's client secret, or any token or code a
FakeActionstep minted appears in any of it.
"""

from __future__ import annotations

import logging
import sys

import pytest

from actionstep_async.testing import issued_secrets

from ._secrets import SENTINELS


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except (TypeError, ValueError):  # a malformed record is itself worth seeing
            self.lines.append(repr(record.msg))


_HANDLER = _Everything()
_REPORTS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_HANDLER)
    root.setLevel(logging.DEBUG)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _REPORTS.extend(text for _, text in report.sections)
    if report.longrepr is not None:
        _REPORTS.append(report.longreprtext)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_HANDLER)
    secrets = {*SENTINELS, *issued_secrets()}
    leaks = [
        line for line in (*_HANDLER.lines, *_REPORTS) if any(secret in line for secret in secrets)
    ]
    if leaks:
        sys.stderr.write(f"\nSECRET LEAK: {len(leaks)} captured lines contain a secret, e.g.:\n")
        for line in leaks[:5]:
            redacted = line
            for secret in secrets:
                redacted = redacted.replace(secret, "<SECRET>")
            sys.stderr.write(f"  {redacted[:300]}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
