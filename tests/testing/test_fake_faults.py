"""FakeActionstep fault injection and rate limiting."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from actionstep_async.testing import FakeActionstep, FaultRule

from .conftest import Api


async def test_status_fault_returns_errors_body(api: Api) -> None:
    """A status fault answers with that status and an errors body, then stops after count."""
    api.fake.add_fault(FaultRule(kind="status", status=503, count=2))
    statuses = [(await api.get("actions/1")).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    api.fake.add_fault(FaultRule(kind="status", count=1))
    result = await api.get("actions/1")
    assert result.status == 500
    assert result.json["errors"][0]["status"] == "500"
    assert api.fake.counters.faults_fired["status"] == 3
    assert api.fake.counters.requests[("GET", "actions", 503)] == 2


async def test_rate_limit_fault_with_and_without_retry_after(api: Api) -> None:
    """A rate_limit fault is a 429, carrying Retry-After only when configured."""
    api.fake.add_fault(FaultRule(kind="rate_limit", count=1))
    api.fake.add_fault(FaultRule(kind="rate_limit", count=1, retry_after=2))
    bare, hinted = await api.get("actions"), await api.get("actions")
    assert (bare.status, hinted.status) == (429, 429)
    assert "Retry-After" not in bare.headers
    assert hinted.headers["Retry-After"] == "2"
    assert bare.json["errors"][0]["status"] == "429"


async def test_latency_fault_delays_then_serves(api: Api) -> None:
    """A latency fault sleeps and then lets the request through (other rules still apply)."""
    api.fake.add_fault(FaultRule(kind="latency", latency=0.2, count=1))
    started = time.perf_counter()
    result = await api.get("actions/1")
    assert result.status == 200
    assert time.perf_counter() - started >= 0.2
    api.fake.add_fault(FaultRule(kind="latency", latency=0.05, count=1))
    api.fake.add_fault(FaultRule(kind="status", status=502, count=1))
    assert (await api.get("actions/1")).status == 502


async def test_drop_closes_the_connection(api: Api) -> None:
    """A drop fault closes the connection with no response; it is counted as status 0."""
    api.fake.add_fault(FaultRule(kind="drop", resource="actions"))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.get("actions/1")
    api.fake.clear_faults()
    assert (await api.get("actions/1")).status == 200
    assert api.fake.counters.requests[("GET", "actions", 0)] >= 1


async def test_drop_after_applies_the_write(api: Api) -> None:
    """drop with after=True handles the POST, then loses the answer: the record exists."""
    api.fake.add_fault(FaultRule(kind="drop", method="post", after=True, count=1))
    body = {"filenotes": {"text": "lost answer", "links": {"action": 1}}}
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.call("POST", "filenotes", json_body=body)
    found = await api.get("filenotes", text="lost answer")
    assert found.status == 200
    assert found.json["filenotes"]["text"] == "lost answer"


async def test_html_fault(api: Api) -> None:
    """An html fault serves an HTML page (200 by default, or the configured status)."""
    api.fake.add_fault(FaultRule(kind="html", count=1))
    api.fake.add_fault(FaultRule(kind="html", status=502, count=1))
    first, second = await api.get("actions"), await api.get("actions")
    assert (first.status, second.status) == (200, 502)
    assert first.headers["Content-Type"].startswith("text/html")
    assert first.body.startswith(b"<!DOCTYPE html>")


async def test_malformed_fault_is_truncated_json(api: Api) -> None:
    """A malformed fault claims JSON API but its body does not parse."""
    api.fake.add_fault(FaultRule(kind="malformed", count=1))
    result = await api.get("actions")
    assert result.status == 200
    assert result.headers["Content-Type"] == "application/vnd.api+json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.body)


async def test_faults_target_resource_and_method(api: Api) -> None:
    """A rule for one resource and method leaves other resources and methods alone."""
    api.fake.add_fault(FaultRule(kind="status", status=500, resource="participants", method="GET"))
    assert (await api.get("participants/1")).status == 500
    assert (await api.get("actions/1")).status == 200
    body = {"participants": {"displayName": "Ann", "firstName": "Ann"}}
    assert (await api.call("POST", "participants", json_body=body)).status == 200


async def test_default_scope_is_the_data_api_not_the_token_endpoint(api: Api) -> None:
    """resource=None faults every REST resource but not the token endpoint; "*" covers both."""
    api.fake.add_fault(FaultRule(kind="status", status=503))
    token = api.fake.issue_token()
    assert (await api.get("filenotes/1")).status == 503
    assert (await api.token_request(api.refresh_form(token.refresh_token))).status == 200
    api.fake.clear_faults()
    api.fake.add_fault(FaultRule(kind="status", status=503, resource="*"))
    refreshed = await api.token_request(api.refresh_form(token.refresh_token))
    assert refreshed.status == 503


async def test_token_endpoint_503_and_429(api: Api) -> None:
    """Faults on "oauth/token" give OAuth-shaped 503 and 429 answers and spend nothing."""
    api.fake.add_fault(FaultRule(kind="status", status=503, resource="oauth/token", count=1))
    api.fake.add_fault(FaultRule(kind="rate_limit", resource="oauth/token", count=1, retry_after=7))
    token = api.fake.issue_token()
    unavailable = await api.token_request(api.refresh_form(token.refresh_token))
    limited = await api.token_request(api.refresh_form(token.refresh_token))
    assert unavailable.status == 503
    assert unavailable.json["error"] == "temporarily_unavailable"
    assert (limited.status, limited.headers["Retry-After"]) == (429, "7")
    assert limited.json["error"] == "temporarily_unavailable"
    # The refresh token was never spent by the faulted calls.
    assert (await api.token_request(api.refresh_form(token.refresh_token))).status == 200
    counters = api.fake.counters
    assert counters.token_calls == 3
    assert counters.refresh_presented[token.refresh_token] == 3
    assert counters.spent_token_reuses == 0
    assert counters.requests[("POST", "oauth/token", 503)] == 1


async def test_probability_is_deterministic_under_seed(session: aiohttp.ClientSession) -> None:
    """The same seed makes a probabilistic rule hit the same requests; roughly p of them."""
    patterns = []
    for seed in (11, 11, 12):
        async with FakeActionstep(seed=seed) as fake:
            api = Api(fake, session, fake.issue_token().access_token)
            fake.add_fault(FaultRule(kind="status", status=500, probability=0.5))
            patterns.append([(await api.get("actions/1")).status for _ in range(40)])
    assert patterns[0] == patterns[1]
    assert patterns[0] != patterns[2]
    assert 8 <= patterns[0].count(500) <= 32


async def test_token_bucket_rate_limit(api: Api) -> None:
    """rate_limit(rate, burst) lets a burst through, then answers 429 with Retry-After."""
    api.fake.rate_limit(rate=5, burst=3)
    statuses = [(await api.get("actions/1")).status for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    limited = await api.get("actions/1")
    assert int(limited.headers["Retry-After"]) >= 1
    api.fake.rate_limit(rate=5, burst=1, retry_after=False)
    assert (await api.get("actions/1")).status == 200
    silent = await api.get("actions/1")
    assert silent.status == 429
    assert "Retry-After" not in silent.headers
    api.fake.rate_limit(None)
    assert (await api.get("actions/1")).status == 200


def test_fault_rule_validation() -> None:
    """Unknown kinds, bad probabilities and unknown JSON fields are refused."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule(kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probability"):
        FaultRule(kind="status", probability=1.5)
    with pytest.raises(ValueError, match="unknown FaultRule fields"):
        FaultRule.from_json({"kind": "status", "colour": "red"})
    rule = FaultRule.from_json({"kind": "drop", "method": "post"})
    assert rule.method == "POST"
    assert FaultRule.from_json(rule.to_json()) == rule
