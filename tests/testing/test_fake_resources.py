"""FakeActionstep's resource API: envelope, quirks, query language, writes and headers."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from actionstep_async.testing import FakeActionstep
from actionstep_async.testing._data import DEFAULT_RECORDS

from .conftest import JSON_API, Api


def rows(document: dict[str, Any], resource: str) -> list[dict[str, Any]]:
    data = document[resource]
    return data if isinstance(data, list) else [data]


async def test_default_page_envelope_and_paging_block(api: Api) -> None:
    """A plain GET returns 50 records, the links block, meta.paging and meta.debug."""
    result = await api.get("actions")
    assert result.status == 200
    assert result.headers["Content-Type"] == JSON_API
    document = result.json
    assert [r["id"] for r in document["actions"]] == list(range(1, 51))
    paging = document["meta"]["paging"]["actions"]
    assert paging["recordCount"] == 120
    assert paging["pageCount"] == 3
    assert (paging["page"], paging["pageSize"], paging["prevPage"]) == (1, 50, None)
    assert paging["nextPage"] == f"{api.fake.api_endpoint}rest/actions?page=2"
    assert document["links"]["actions.assignedTo"] == {
        "href": f"{api.fake.api_endpoint}rest/participants/{{actions.assignedTo}}",
        "type": "participants",
    }
    assert set(document["meta"]["debug"]) >= {"requestTime", "server"}
    assert result.headers["X-Request-Id"]


async def test_page_size_is_capped_at_200_silently(fake: FakeActionstep, session: Any) -> None:
    """pageSize above 200 is served as 200, not rejected; last page has nextPage null."""
    async with FakeActionstep(records={"actions": 450}) as big:
        api = Api(big, session, big.issue_token().access_token)
        document = (await api.get("actions", pageSize=500, page=3, sort="id")).json
    paging = document["meta"]["paging"]["actions"]
    assert paging["pageSize"] == 200
    assert paging["nextPage"] is None
    assert paging["prevPage"].endswith("?pageSize=500&sort=id&page=2")
    assert len(rows(document, "actions")) == 50


async def test_bad_page_parameters_are_400(api: Api) -> None:
    """A non-positive or non-numeric page is a 400 with an errors body."""
    for params in ({"page": "0"}, {"pageSize": "many"}):
        result = await api.get("actions", **params)
        assert result.status == 400
        assert result.json["errors"][0]["status"] == "400"


async def test_no_match_is_204_with_empty_body(api: Api) -> None:
    """A filter that matches nothing answers 204 with no body; so does a page past the end."""
    for result in (
        await api.get("actions", name="no such matter"),
        await api.get("actions", page=9),
    ):
        assert result.status == 204
        assert result.body == b""


async def test_single_result_is_an_object_not_a_list(api: Api) -> None:
    """A single matching record, or a single-id GET, comes back as an object with paging."""
    by_filter = (await api.get("actions", id=7)).json
    assert isinstance(by_filter["actions"], dict)
    assert by_filter["actions"]["id"] == 7
    by_id = (await api.get("actions/7")).json
    assert by_id["actions"] == by_filter["actions"]
    assert by_id["meta"]["paging"]["actions"]["recordCount"] == 1
    several = (await api.get("actions/3,1,2")).json
    assert [r["id"] for r in several["actions"]] == [3, 1, 2]


async def test_unknown_ids_are_404(api: Api) -> None:
    """GET of ids that do not exist is a 404 with an errors body."""
    for path in ("actions/99999", "actions/abc"):
        result = await api.get(path)
        assert result.status == 404
        assert list(result.json) == ["errors"]


async def test_ids_are_numbers_links_strings_booleans_t_f(api: Api) -> None:
    """Primary ids are numbers, link ids strings, booleans "T"/"F", times carry +10:00."""
    action = (await api.get("actions/1")).json["actions"]
    assert isinstance(action["id"], int)
    links = action["links"]
    assert isinstance(links["actionType"], str)
    assert isinstance(links["assignedTo"], str)
    assert all(isinstance(item, str) for item in links["primaryParticipants"])
    assert links["step"].startswith(links["actionType"] + "--")
    assert action["isDeleted"] in ("T", "F")
    assert action["createdTimestamp"].endswith("+10:00")
    participant = (await api.get("participants/1")).json["participants"]
    assert participant["isCompany"] in ("T", "F")
    hours = rows((await api.get("timerecords")).json, "timerecords")[0]["actualHours"]
    assert isinstance(hours, str)
    assert len(hours.split(".")[1]) == 2


async def test_composite_ids(api: Api) -> None:
    """actionparticipants use a--b--c string ids that GET accepts in the path."""
    first = rows((await api.get("actionparticipants")).json, "actionparticipants")[0]
    ident = first["id"]
    assert isinstance(ident, str)
    assert ident == "--".join(
        first["links"][name] for name in ("action", "participantType", "participant")
    )
    again = (await api.get(f"actionparticipants/{ident}")).json["actionparticipants"]
    assert again == first


async def test_include_side_loads_linked_records(api: Api) -> None:
    """include=actionType,assignedTo puts the linked records under linked.<type>."""
    document = (await api.get("actions", pageSize=5, include="actionType,assignedTo")).json
    actions = rows(document, "actions")
    type_ids = {a["links"]["actionType"] for a in actions}
    people = {a["links"]["assignedTo"] for a in actions}
    assert {str(t["id"]) for t in document["linked"]["actiontypes"]} == type_ids
    assert {str(p["id"]) for p in document["linked"]["participants"]} == people


async def test_dotted_include_follows_two_links(api: Api) -> None:
    """include=action.assignedTo on filenotes side-loads the actions and their assignees."""
    document = (await api.get("filenotes", pageSize=3, include="action.assignedTo")).json
    actions = document["linked"]["actions"]
    assert {str(a["id"]) for a in actions} == {
        n["links"]["action"] for n in rows(document, "filenotes")
    }
    assert {str(p["id"]) for p in document["linked"]["participants"]} == {
        a["links"]["assignedTo"] for a in actions
    }


async def test_bad_include_is_400(api: Api) -> None:
    """Including a link the resource does not have is a 400."""
    assert (await api.get("actions", include="nonsense")).status == 400


async def test_fieldsets(api: Api) -> None:
    """fields, fields[type] and :default choose which attributes come back; id always does."""
    document = (
        await api.get(
            "actions",
            pageSize=2,
            fields="name,assignedTo",
            include="assignedTo",
            **{"fields[participants]": "displayName"},
        )
    ).json
    assert set(document["actions"][0]) == {"id", "name", "links"}
    assert set(document["actions"][0]["links"]) == {"assignedTo"}
    assert set(document["linked"]["participants"][0]) == {"id", "displayName"}
    default = (await api.get("actions/1", fields=":default")).json["actions"]
    assert default == (await api.get("actions/1")).json["actions"]


async def test_sort_multi_key(api: Api) -> None:
    """sort=status,-id orders by status ascending then id descending."""
    actions = rows((await api.get("actions", sort="status,-id", pageSize=200)).json, "actions")
    keys = [(a["status"], -a["id"]) for a in actions]
    assert keys == sorted(keys)
    assert len(actions) == 120


async def test_sort_on_unknown_field_is_400(api: Api) -> None:
    """Sorting by a field the resource does not have is a 400."""
    assert (await api.get("actions", sort="-shoeSize")).status == 400


async def all_actions(api: Api) -> list[dict[str, Any]]:
    return rows((await api.get("actions", pageSize=200)).json, "actions")


def value(action: dict[str, Any], field: str) -> Any:
    return action[field] if field in action else action["links"][field]


@pytest.mark.parametrize(
    ("param", "text", "predicate"),
    [
        ("id", "5", lambda a: a["id"] == 5),
        ("id_eq", "5", lambda a: a["id"] == 5),
        ("status_nteq", "Active", lambda a: a["status"] != "Active"),
        ("id_lt", "10", lambda a: a["id"] < 10),
        ("id_lteq", "10", lambda a: a["id"] <= 10),
        ("id_gt", "110", lambda a: a["id"] > 110),
        ("id_gteq", "110", lambda a: a["id"] >= 110),
        ("name_like", "Estate*", lambda a: a["name"].startswith("Estate")),
        ("name_like", "estate*", lambda a: False),
        ("name_ilike", "*ESTATE*", lambda a: "estate" in a["name"].lower()),
        ("name_ntlike", "* v *", lambda a: " v " not in a["name"]),
        ("name_ntilike", "*PURCHASE*", lambda a: "purchase" not in a["name"].lower()),
        ("id_in", "3,4,99", lambda a: a["id"] in (3, 4, 99)),
        ("id", "3,4,99", lambda a: a["id"] in (3, 4, 99)),
        ("status_ntin", "Active,Closed", lambda a: a["status"] not in ("Active", "Closed")),
        ("actionType", "3", lambda a: a["links"]["actionType"] == "3"),
        ("primaryParticipants", "7", lambda a: "7" in a["links"]["primaryParticipants"]),
        (
            "createdTimestamp_gteq",
            "2023-01-01T00:00:00",
            lambda a: a["createdTimestamp"] >= "2023-01-01T10:00:00+10:00",
        ),
    ],
)
async def test_filter_operators(api: Api, param: str, text: str, predicate: Any) -> None:
    """Each filter operator selects exactly the records the predicate describes."""
    expected = [a["id"] for a in await all_actions(api) if predicate(a)]
    result = await api.get("actions", pageSize=200, **{param: text})
    got = [] if result.status == 204 else [a["id"] for a in rows(result.json, "actions")]
    assert got == expected
    if param != "name_like" or text != "estate*":
        assert got, "the seeded data should exercise the operator"


async def test_decimal_strings_compare_numerically(api: Api) -> None:
    """actualHours_gt=2 compares the "1.50"-style strings as numbers."""
    result = await api.get("timerecords", pageSize=200, actualHours_gt="2")
    hours = [float(r["actualHours"]) for r in rows(result.json, "timerecords")]
    assert hours
    assert min(hours) > 2


async def test_related_filter_through_a_link(api: Api) -> None:
    """filenotes?action[actionType]=3 keeps notes whose action has action type 3."""
    actions = {str(a["id"]): a for a in await all_actions(api)}
    notes = rows((await api.get("filenotes", pageSize=200)).json, "filenotes")
    expected = [
        n["id"] for n in notes if actions[n["links"]["action"]]["links"]["actionType"] == "3"
    ]
    result = await api.get("filenotes", pageSize=200, **{"action[actionType]": "3"})
    got = [] if result.status == 204 else [n["id"] for n in rows(result.json, "filenotes")]
    assert got == expected


async def test_related_filter_with_operator_two_levels(api: Api) -> None:
    """filenotes?action[assignedTo][lastName_ilike]=*R* follows two links and applies the op."""
    result = await api.get(
        "filenotes", pageSize=200, **{"action[assignedTo][lastName_ilike]": "*R*"}
    )
    assert result.status == 200
    assert 0 < len(rows(result.json, "filenotes")) < 50
    for note in rows(result.json, "filenotes"):
        action = (await api.get(f"actions/{note['links']['action']}")).json["actions"]
        person = (await api.get(f"participants/{action['links']['assignedTo']}")).json
        assert "r" in person["participants"]["lastName"].lower()


async def test_null_filter_value(api: Api) -> None:
    """companyName=:NULL matches people (no company name); _ntin=:NULL matches companies."""
    people = rows((await api.get("participants", companyName=":NULL")).json, "participants")
    companies = (await api.get("participants", companyName_ntin=":NULL")).json
    assert all(p["isCompany"] == "F" for p in people)
    assert all(c["isCompany"] == "T" for c in rows(companies, "participants"))
    assert len(people) + len(rows(companies, "participants")) == 40


async def test_unknown_filter_field_is_400(api: Api) -> None:
    """Filtering on a field the resource does not have is a 400."""
    result = await api.get("actions", shoeSize_gt="3")
    assert result.status == 400
    assert "shoeSize" in result.json["errors"][0]["detail"]


async def test_post_creates_and_returns_the_record(api: Api) -> None:
    """POST with a wrapped body returns 200 and the created object, link ids as strings."""
    body = {"filenotes": {"text": "Client called", "links": {"action": 34}}}
    result = await api.call("POST", "filenotes", json_body=body)
    assert result.status == 200
    created = result.json["filenotes"]
    assert created["text"] == "Client called"
    assert created["links"]["action"] == "34"
    assert created["enteredTimestamp"].endswith("+10:00")
    assert created["id"] == 51
    fetched = (await api.get(f"filenotes/{created['id']}")).json["filenotes"]
    assert fetched == created
    assert (await api.get("filenotes")).json["meta"]["paging"]["filenotes"]["recordCount"] == 51


async def test_post_accepts_one_element_array_and_created_status_option(
    session: aiohttp.ClientSession,
) -> None:
    """A {resource: [{...}]} body is accepted, and created_status=201 is honoured."""
    async with FakeActionstep(created_status=201) as fake:
        api = Api(fake, session, fake.issue_token(scopes="resthooks").access_token)
        body = {"resthooks": [{"eventName": "ActionCreated", "targetUrl": "https://x.test/h"}]}
        result = await api.call("POST", "resthooks", json_body=body)
    assert result.status == 201
    assert result.json["resthooks"]["eventName"] == "ActionCreated"
    assert result.json["resthooks"]["id"] == DEFAULT_RECORDS["resthooks"] + 1


async def test_post_without_wrapper_is_400(api: Api) -> None:
    """A bare body (not wrapped under the resource name) or invalid JSON is a 400."""
    assert (await api.call("POST", "filenotes", json_body={"text": "x"})).status == 400
    broken = await api.call(
        "POST", "filenotes", headers={"Content-Type": JSON_API}, params=None, json_body=None
    )
    assert broken.status == 400


async def test_put_is_a_partial_update(api: Api) -> None:
    """PUT changes only the fields sent and replaces link arrays wholesale."""
    before = (await api.get("filenotes/2")).json["filenotes"]
    body = {"filenotes": {"text": "New text", "links": {"tags": [5, 6]}}}
    result = await api.call("PUT", "filenotes/2", json_body=body)
    assert result.status == 200
    after = result.json["filenotes"]
    assert after["text"] == "New text"
    assert after["noteTimestamp"] == before["noteTimestamp"]
    assert after["links"]["tags"] == ["5", "6"]
    assert after["links"]["action"] == before["links"]["action"]
    assert (await api.get("filenotes/2")).json["filenotes"] == after
    assert (await api.call("PUT", "filenotes/9999", json_body=body)).status == 404


async def test_delete_single_and_comma_list(api: Api) -> None:
    """DELETE answers 204; deleted ids then 404 and leave the count; a bad id deletes nothing."""
    assert (await api.call("DELETE", "filenotes/1")).status == 204
    assert (await api.get("filenotes/1")).status == 404
    assert (await api.call("DELETE", "filenotes/2,3,999")).status == 404
    assert (await api.get("filenotes/2")).status == 200
    deleted = await api.call("DELETE", "filenotes/2,3")
    assert (deleted.status, deleted.body) == (204, b"")
    paging = (await api.get("filenotes")).json["meta"]["paging"]["filenotes"]
    assert paging["recordCount"] == 47
    assert rows((await api.get("filenotes")).json, "filenotes")[0]["id"] == 4


async def test_unknown_resources_are_404_with_an_errors_object(api: Api) -> None:
    """A resource the API does not have answers as Actionstep does: an ``errors`` object."""
    for name in ("acitons", "Tasks"):
        result = await api.get(name)
        assert result.status == 404
        assert result.json["errors"]["code"] == "AS-TBC"
        assert result.json["errors"]["title"] == "API Resource Not Found"
        assert result.json["errors"]["status"] == 404


async def test_generic_store_round_trip(api: Api) -> None:
    """With generic_store on, any other name is an empty store until something is POSTed."""
    api.fake.rest.generic_store = True
    assert (await api.get("widgets")).status == 204
    body = {"widgets": {"name": "Call client", "links": {"action": "5"}}}
    created = (await api.call("POST", "widgets", json_body=body)).json["widgets"]
    listed = (await api.get("widgets", action="5")).json["widgets"]
    assert listed == created


async def test_missing_or_bad_bearer_token_is_401(api: Api) -> None:
    """No token, a wrong scheme or an unknown token gets 401 with an OAuth-style body."""
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer nope"}):
        url = f"{api.fake.api_endpoint}rest/actions"
        async with api.session.get(url, headers={"Accept": JSON_API, **headers}) as response:
            assert response.status == 401
            document = await response.json(content_type="application/json")
        # OAuth-style, as Actionstep's resource server answers a refused bearer token.
        assert document["error"] == "invalid_token"
        assert set(document) == {"error", "error_description"}


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/vnd.api+json", 200),
        ("application/json", 200),
        ("*/*", 200),
        ("text/html, application/json;q=0.5", 200),
        ("text/html", 406),
        ("application/xml", 406),
    ],
)
async def test_accept_header_negotiation(api: Api, accept: str, status: int) -> None:
    """Accept must allow the JSON API type (or JSON, or anything); otherwise 406."""
    result = await api.call("GET", "actions/1", headers={"Accept": accept})
    assert result.status == status
    if status == 406:
        assert result.json["errors"][0]["status"] == "406"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/vnd.api+json", 200), ("application/json", 200), ("text/plain", 415)],
)
async def test_content_type_on_bodies(api: Api, content_type: str, status: int) -> None:
    """Write bodies must be JSON API or JSON; anything else is 415."""
    result = await api.call(
        "POST",
        "filenotes",
        json_body={"filenotes": {"text": "x", "links": {"action": 1}}},
        headers={"Content-Type": content_type},
    )
    assert result.status == status


async def test_enforce_scopes_gives_403(api: Api) -> None:
    """With enforce_scopes a token without the resource's scope gets 403 insufficient_scope."""
    api.fake.enforce_scopes = True
    narrow = api.fake.issue_token(scopes=("actions",)).access_token
    assert (await api.call("GET", "actions/1", token=narrow)).status == 200
    refused = await api.call("GET", "participants/1", token=narrow)
    assert refused.status == 403
    assert "insufficient_scope" in refused.json["errors"][0]["detail"]


async def test_data_is_deterministic_under_seed(session: aiohttp.ClientSession) -> None:
    """Two fakes with the same seed serve identical records; another seed differs."""
    pages = []
    for seed in (3, 3, 4):
        async with FakeActionstep(seed=seed) as fake:
            api = Api(fake, session, fake.issue_token().access_token)
            document = (await api.get("actions", pageSize=20)).json
            pages.append(document["actions"])
    assert pages[0] == pages[1]
    assert pages[0] != pages[2]


async def test_request_counters(api: Api) -> None:
    """counters.requests counts by (method, resource, status)."""
    await api.get("actions/1")
    await api.get("actions/1")
    await api.get("actions/99999")
    await api.call("GET", "actions", token="bad")
    requests = api.fake.counters.requests
    assert requests[("GET", "actions", 200)] == 2
    assert requests[("GET", "actions", 404)] == 1
    assert requests[("GET", "actions", 401)] == 1


async def test_users_current(api: Api) -> None:
    """users/current is the authorising user (id 1), linked to participant 1."""
    user = (await api.get("users/current")).json["users"]
    assert user["id"] == 1
    assert user["links"]["participant"] == "1"
