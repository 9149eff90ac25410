"""Wrong shapes fail at construction with a typed error; scopes as one string; NullHandler."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actionstep_async import (
    AsyncResourceClient,
    ConfigurationError,
    F,
    ForbiddenError,
    InvalidRequestError,
    MemoryTokenStore,
    OAuthClient,
    TokenManager,
)
from actionstep_async.testing import FakeActionstep

OAUTH = OAuthClient("id", "secret", "http://127.0.0.1/cb")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: TokenManager(OAUTH, "/var/lib/app/tokens"),  # type: ignore[arg-type]
            "FileTokenStore('/var/lib/app/tokens')",
        ),
        (lambda: TokenManager(OAUTH, Path("/tmp/t")), "FileTokenStore('/tmp/t')"),  # type: ignore[arg-type]
        (lambda: TokenManager(OAUTH, {}), "store must be a TokenStore"),  # type: ignore[arg-type]
        (lambda: TokenManager("secret", MemoryTokenStore()), "refresher must be an OAuthClient"),  # type: ignore[arg-type]
        (lambda: AsyncResourceClient(OAUTH, "k"), "manager must be a TokenManager"),  # type: ignore[call-overload]
        (
            lambda: AsyncResourceClient(TokenManager(OAUTH), 7),  # type: ignore[call-overload]
            "key must be the TokenManager key",
        ),
    ],
)
def test_wrong_types_are_refused_at_construction(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert message in str(caught.value)


async def test_a_bare_filter_asks_for_a_list(fake_actionstep: FakeActionstep) -> None:
    async with await fake_actionstep.connect() as client:
        with pytest.raises(InvalidRequestError, match=r"filters=\[F\(\.\.\.\)\]"):
            await client.list("actions", filters=F("id").gt(1))  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="not int"):
            await client.list("actions", filters=5)  # type: ignore[arg-type]


async def test_scopes_as_one_string_and_enforced_like_the_real_api() -> None:
    """ "actions participants" means two scopes, and a token reads only what it was granted."""
    async with FakeActionstep({"actions": 3, "participants": 3, "filenotes": 3}) as fake:
        token = fake.issue_token(scopes="actions participants")
        assert token.scopes == ("actions", "participants")
        async with await fake.connect(scopes="actions") as client:
            assert (await client.list("actions")).paging.record_count == 3
            with pytest.raises(ForbiddenError, match="insufficient_scope"):
                await client.list("filenotes")
        fake.enforce_scopes = False
        async with await fake.connect(scopes="actions") as client:
            assert (await client.list("filenotes")).paging.record_count == 3


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("actionstep_async").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


@pytest.mark.slow
def test_library_warnings_stay_silent_in_a_plain_script() -> None:
    """Without logging configured, a library warning does not reach stderr (no lastResort)."""
    script = (
        "import logging, actionstep_async\nlogging.getLogger('actionstep_async.x').warning('hi')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stderr == ""
