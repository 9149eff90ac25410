"""Retry progress lines: a table of the client's retry notices and what the CLI prints."""

from __future__ import annotations

import logging

import pytest

from actionstep_async._cli._retries import describe_retry, reporting_retries
from actionstep_async._client import RETRY_RECORD


@pytest.mark.parametrize(
    ("notice", "line"),
    [
        ((429, 12.0, 3, 8), "waiting 12.0 s: rate limited (attempt 3 of 8)"),
        ((503, 0.5, 2, 10), "retrying in 0.5 s: service unavailable (attempt 2 of 10)"),
        (
            ("ClientConnectorError", 1.25, 3, 8),
            "retrying in 1.2 s: connection refused (attempt 3 of 8)",
        ),
        ((418, 1.0, 2, 5), "retrying in 1.0 s: HTTP 418 (attempt 2 of 5)"),
        (("OddError", 1.0, 2, 5), "retrying in 1.0 s: OddError (attempt 2 of 5)"),
    ],
)
def test_describe_retry(notice: tuple[int | str, float, int, int], line: str) -> None:
    assert describe_retry(*notice) == line


def test_reporting_retries_passes_only_retry_records() -> None:
    said: list[str] = []
    logger = logging.getLogger("actionstep_async.client")
    with reporting_retries(said.append):
        logger.info("not a retry")
        logger.info("retry", extra={RETRY_RECORD: (429, 2.0, 2, 5)})
    logger.info("after", extra={RETRY_RECORD: (429, 2.0, 3, 5)})
    assert said == ["waiting 2.0 s: rate limited (attempt 2 of 5)"]
