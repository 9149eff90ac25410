"""Pure checks that keep ``iterate()`` bounded whatever the server says about its pages."""

from __future__ import annotations

from typing import Any, Final

from ._errors import InconsistentPagingError
from ._models import Page, Paging

__all__ = ["SLACK", "Seen", "check_same_totals", "planned_pages"]

SLACK: Final = 1
"""Pages requested beyond what page 1's totals call for (none are, unless totals allow)."""


def planned_pages(resource: str, paging: Paging) -> int:
    """How many pages page 1's totals call for; InconsistentPagingError if they contradict."""
    size, count, pages = paging.page_size, paging.record_count, paging.page_count
    if size < 1 or count < 0 or pages < 0:
        raise InconsistentPagingError(f"{resource}: paging reports {paging}")
    needed = -(-count // size)  # ceil
    if not needed - SLACK <= pages <= needed + SLACK:
        raise InconsistentPagingError(
            f"{resource}: {pages} pages cannot hold {count} records of {size} per page;"
            " refusing to follow the page count"
        )
    return pages


def check_same_totals(resource: str, first: Paging, page: Page[Any], number: int) -> None:
    """Page ``number`` must report the totals page 1 did: otherwise records moved mid-run."""
    now = page.paging
    if now.reported and (now.record_count, now.page_count) != (
        first.record_count,
        first.page_count,
    ):
        raise InconsistentPagingError(
            f"{resource}: page {number} reports {now.record_count} records in {now.page_count}"
            f" pages, page 1 reported {first.record_count} in {first.page_count}; the result set"
            " changed during the run, start again"
        )


class Seen:
    """Ids already yielded: a record shifted onto the next page is yielded once; a page made
    only of records already yielded means the server ignores the page number."""

    def __init__(self) -> None:
        self.ids: set[Any] = set()

    def fresh(self, resource: str, page: Page[Any], number: int) -> list[Any]:
        records = []
        for record in page.records:
            key = getattr(record, "id", None)
            if key is None or key not in self.ids:
                records.append(record)
                if key is not None:
                    self.ids.add(key)
        if page.records and not records:
            raise InconsistentPagingError(
                f"{resource}: page {number} repeats records already seen; the server is not paging"
            )
        return records
