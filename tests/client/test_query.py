"""Query building: filters, include, fields, sort and paging are validated before sending."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from actionstep_async._errors import InvalidRequestError
from actionstep_async._query import MAX_PAGE_SIZE, F, build_query, plain_page_query


def test_mapping_filters_use_operator_suffixes_and_comma_lists() -> None:
    """A mapping of filters becomes field_op=value pairs, lists joined by commas."""
    query = build_query(filters={"name_ilike": "*smith*", "id_in": [1, 2, 3], "actionType": 5})
    assert query == "name_ilike=*smith*&id_in=1,2,3&actionType=5"


def test_builder_renders_every_operator() -> None:
    """F(...) offers every Actionstep operator; eq is the bare field name."""
    field = F("priority")
    rendered = [
        field.eq(1).key,
        field.nteq(1).key,
        field.lt(1).key,
        field.lteq(1).key,
        field.gt(1).key,
        field.gteq(1).key,
        field.like("a*").key,
        field.ilike("a*").key,
        field.ntlike("a*").key,
        field.ntilike("a*").key,
        field.in_([1]).key,
        field.ntin([1]).key,
    ]
    assert rendered == [
        "priority",
        "priority_nteq",
        "priority_lt",
        "priority_lteq",
        "priority_gt",
        "priority_gteq",
        "priority_like",
        "priority_ilike",
        "priority_ntlike",
        "priority_ntilike",
        "priority_in",
        "priority_ntin",
    ]


def test_related_resource_filters_use_brackets() -> None:
    """A path through links renders as action[actionType]=5 and keeps the operator inside."""
    assert build_query(filters=[F("action", "actionType").eq(5)]) == "action[actionType]=5"
    deep = F("actionType", "primaryParticipantType", "name").ilike("client")
    assert build_query(filters=[deep]) == "actionType[primaryParticipantType][name_ilike]=client"
    assert build_query(filters={"dataCollection[multipleRecords_eq]": False}) == (
        "dataCollection[multipleRecords_eq]=F"
    )


def test_values_are_rendered_the_way_actionstep_reads_them() -> None:
    """Booleans become T/F, None :NULL, aware datetimes UTC without offset, Decimals exact."""
    aest = timezone(timedelta(hours=10))
    query = build_query(
        filters=[
            F("isDeleted").eq(True),
            F("deletedBy").in_([None, 3]),
            F("modifiedTimestamp").gteq(datetime(2024, 1, 1, 10, 0, tzinfo=aest)),
            F("timestampDate").lt(date(2024, 2, 1)),
            F("actualHours").gt(Decimal("1.50")),
        ]
    )
    assert query == (
        "isDeleted=T&deletedBy_in=:NULL,3&modifiedTimestamp_gteq=2024-01-01T00:00:00"
        "&timestampDate_lt=2024-02-01&actualHours_gt=1.50"
    )


def test_filter_values_are_percent_encoded_but_wildcards_stay() -> None:
    """Spaces, & and = in a value cannot start another parameter."""
    query = build_query(filters=[F("name").ilike("*Smith & Co=1*")])
    assert query == "name_ilike=*Smith%20%26%20Co%3D1*"


def test_include_fields_sort_and_paging() -> None:
    """include, fields, fields[type], sort and paging render as Actionstep expects."""
    query = build_query(
        include=["actionType", "assignedTo.participant"],
        fields={"actions": ["id", "name"], "actiontypes": [":default"]},
        sort=["-modifiedTimestamp", "name"],
        page=3,
        page_size=200,
    )
    assert query == (
        "include=actionType,assignedTo.participant&fields[actions]=id,name"
        "&fields[actiontypes]=:default&sort=-modifiedTimestamp,name&page=3&pageSize=200"
    )
    assert build_query(fields=["id", "name"]) == "fields=id,name"


@pytest.mark.parametrize("page_size", [0, 201, 1000, -1, True, 50.0])
def test_page_size_outside_1_to_200_is_an_error(page_size: Any) -> None:
    """pageSize above 200 is refused rather than silently capped."""
    with pytest.raises(InvalidRequestError, match="page_size"):
        build_query(page_size=page_size)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"name_ilke": "x"}, "unknown filter operator"),
        ({"name;drop": "x"}, "invalid filter field"),
        ({"na me": "x"}, "invalid filter field"),
        ({"a[b": "x"}, "unbalanced"),
        ({"a[b]]": "x"}, "invalid filter field"),
        ({"": "x"}, "invalid filter field"),
        ({"page": 2}, "query option"),
        ({"id": [1, 2]}, "list value needs"),
        ({"id_in": []}, "at least one"),
        ({"id_in": ["a,b"]}, "commas"),
        ({"name_like": None}, "null"),
        ({"x": object()}, "unsupported filter value"),
        ({"x": float("nan")}, "finite"),
        (["name=x"], "Filter objects"),
    ],
)
def test_bad_filters_are_refused(filters: Any, message: str) -> None:
    """Typos, injection attempts and impossible values raise InvalidRequestError."""
    with pytest.raises(InvalidRequestError, match=message):
        build_query(filters=filters)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"include": "actionType"},
        {"include": ["action type"]},
        {"include": ["a..b"]},
        {"include": []},
        {"fields": ["id", "na,me"]},
        {"fields": {"Actions!": ["id"]}},
        {"sort": ["--name"]},
        {"sort": ["name desc"]},
        {"page": 0},
    ],
)
def test_bad_include_fields_sort_are_refused(kwargs: dict[str, Any]) -> None:
    """Malformed include, fields, sort and page arguments raise InvalidRequestError."""
    with pytest.raises(InvalidRequestError):
        build_query(**kwargs)


def test_builder_refuses_bad_names() -> None:
    """F() needs at least one plain field name."""
    with pytest.raises(InvalidRequestError):
        F()
    with pytest.raises(InvalidRequestError):
        F("name", "x/y")
    assert repr(F("action", "actionType")) == "F('action', 'actionType')"


def test_naive_datetimes_are_sent_as_given() -> None:
    """A naive datetime is assumed to be UTC already, as the server treats it."""
    moment = datetime(2024, 5, 1, 12, 30, 15, 999, tzinfo=None)
    assert build_query(filters={"x_gt": moment}) == "x_gt=2024-05-01T12:30:15"
    assert build_query(filters={"x_gt": moment.replace(tzinfo=UTC)}) == "x_gt=2024-05-01T12:30:15"


@pytest.mark.parametrize(
    ("page", "page_size", "fast"),
    [
        (1, 1, True),
        (3, 20, True),
        (10**6, MAX_PAGE_SIZE, True),
        (1, MAX_PAGE_SIZE + 1, False),
        (0, 20, False),
        (-1, 20, False),
        (1, 0, False),
        (True, 20, False),
        (1, True, False),
        (2.0, 20, False),
        ("2", 20, False),
        (1, None, False),
    ],
)
def test_plain_page_query_is_build_querys_answer_or_none(
    page: Any, page_size: Any, fast: bool
) -> None:
    """The list hot path's query: the general path's string for plain in-range ints, else None
    so that build_query's checks decide (and refuse with their own message)."""
    got = plain_page_query(page, page_size)
    assert (got is not None) is fast
    if got is not None:  # filters={}: no filter, but the general path of build_query
        assert got == build_query(filters={}, page=page, page_size=page_size)
