"""Environment presets and api_endpoint validation."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actionstep_async import (
    PRODUCTION,
    STAGING,
    ConfigurationError,
    Environment,
    UnsafeEndpointError,
)

from ._hypothesis import examples


def test_presets_use_go_host_for_authorize_and_api_host_for_token() -> None:
    """The presets point at the documented Actionstep OAuth hosts."""
    assert PRODUCTION.authorize_url == "https://go.actionstep.com/api/oauth/authorize"
    assert PRODUCTION.token_url == "https://api.actionstep.com/api/oauth/token"
    assert STAGING.authorize_url == "https://go.actionstepstaging.com/api/oauth/authorize"
    assert STAGING.token_url == "https://api.actionstepstaging.com/api/oauth/token"


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        (
            PRODUCTION,
            "https://ap-southeast-2.actionstep.com/api/",
            "https://ap-southeast-2.actionstep.com/api/",
        ),
        (
            PRODUCTION,
            "https://us-west-2.actionstep.com/api",
            "https://us-west-2.actionstep.com/api/",
        ),
        (PRODUCTION, "https://EU.ActionStep.com:443/api/", "https://eu.actionstep.com/api/"),
        (
            STAGING,
            "https://ap-southeast-2.actionstepstaging.com/api/",
            "https://ap-southeast-2.actionstepstaging.com/api/",
        ),
    ],
)
def test_regional_endpoints_are_accepted_and_normalised(
    environment: Environment, url: str, expected: str
) -> None:
    """A regional data host under the environment's domain passes, ending in exactly one slash."""
    assert environment.validate_api_endpoint(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://ap-southeast-2.actionstep.com.evil.example/api/",
        "http://ap-southeast-2.actionstep.com/api/",
        "https://user@ap-southeast-2.actionstep.com/api/",
        "https://user:pw@ap-southeast-2.actionstep.com/api/",
        "https://ap-southeast-2.actionstep.com:8443/api/",
        "https://ap-southeast-2.actionstep.com/api/rest/",
        "https://ap-southeast-2.actionstep.com/",
        "https://ap-southeast-2.actionstep.com/api/?x=1",
        "https://ap-southeast-2.actionstep.com/api/#frag",
        "https://ap-southeast-2.actionstep.com/api//",
        "https://actionstep.com/api/",
        "https://evilactionstep.com/api/",
        "https://ap-southeast-2.actionstep.com./api/",
        "https://ap-southeast-2.actionstepstaging.com/api/",
        "https://127.0.0.1/api/",
        "https://ap-southeast-2.actionstep.com\\@evil.example/api/",
        "https://ap-southeast-2.actionstep.com%2eevil.example/api/",
        "https://аp-southeast-2.actionstep.com/api/",
        "https://ap-southeast-2.actionstep.com/api/ ",
        "//ap-southeast-2.actionstep.com/api/",
        "ftp://ap-southeast-2.actionstep.com/api/",
        "",
        "https://[::1]/api/",
    ],
)
def test_hostile_endpoints_are_refused(url: str) -> None:
    """Look-alike hosts, other schemes, userinfo, ports, paths and odd characters are refused."""
    with pytest.raises(UnsafeEndpointError):
        PRODUCTION.validate_api_endpoint(url)


@pytest.mark.parametrize("value", [None, 42, ["https://ap-southeast-2.actionstep.com/api/"]])
def test_non_string_endpoint_is_refused(value: object) -> None:
    """A token response with a non-string api_endpoint is refused, not coerced."""
    with pytest.raises(UnsafeEndpointError):
        PRODUCTION.validate_api_endpoint(value)


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(max_examples=examples(200), deadline=None)
@given(prefix=st.lists(_label, min_size=1, max_size=3), tail=st.text(max_size=12))
def test_generated_hosts_pass_only_under_the_allowed_suffix(prefix: list[str], tail: str) -> None:
    """Property: a generated host is accepted exactly when it ends in '.actionstep.com'."""
    host = ".".join(prefix) + ".actionstep.com" + tail
    url = f"https://{host}/api/"
    try:
        normalised = PRODUCTION.validate_api_endpoint(url)
    except UnsafeEndpointError:
        assert tail != "", "a plain regional host must be accepted"
        return
    # Whatever was accepted is exactly the host parsed from the URL, under the allowed domain.
    accepted_host = normalised.removeprefix("https://").removesuffix("/api/")
    assert accepted_host == urlsplit(url).hostname
    assert accepted_host.endswith(".actionstep.com")


def test_local_environment_allows_loopback_http_only() -> None:
    """Environment.local opts in to plain http on loopback and nowhere else."""
    local = Environment.local("http://127.0.0.1:8080")
    assert local.validate_api_endpoint("http://127.0.0.1:8080/api/") == "http://127.0.0.1:8080/api/"
    assert local.validate_api_endpoint("http://localhost:9/api") == "http://localhost:9/api/"
    with pytest.raises(UnsafeEndpointError):
        local.validate_api_endpoint("http://10.0.0.1/api/")
    with pytest.raises(UnsafeEndpointError):
        local.validate_api_endpoint("https://ap-southeast-2.actionstep.com/api/")
    with pytest.raises(ConfigurationError):
        Environment.local("http://example.com")


def test_custom_environment_must_opt_in_to_plain_http() -> None:
    """A custom environment with http OAuth URLs is a configuration error unless allowed."""
    with pytest.raises(ConfigurationError):
        Environment("proxy", "http://proxy/authorize", "http://proxy/token", ("example.com",))
    with pytest.raises(ConfigurationError):
        Environment("broken", "not a url", "https://proxy/token", ())
    proxy = Environment(
        "proxy", "https://proxy.example.com/a", "https://proxy.example.com/t", ("example.com",)
    )
    assert proxy.validate_api_endpoint("https://data.example.com/api/") == (
        "https://data.example.com/api/"
    )
