"""Fixtures for the CLI tests: a FakeActionstep on the test loop and the command's environment.

The command is awaited with ``asyncio.create_subprocess_exec``, so the loop keeps serving the
fake while the command runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actionstep_async.testing import FakeActionstep

from .helpers import CLIENT_SECRET, Setup, base_env, free_port


def _records(request: pytest.FixtureRequest) -> dict[str, int]:
    marker = request.node.get_closest_marker("records")
    return dict(marker.kwargs) if marker else {"actions": 500, "participants": 100}


@pytest.fixture
async def setup(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    fake = FakeActionstep(_records(request), client_secret=CLIENT_SECRET, redirect_uri=redirect_uri)
    async with fake:
        env = base_env(tmp_path)
        env.update(
            ACTIONSTEP_CLIENT_ID=fake.client_id,
            ACTIONSTEP_CLIENT_SECRET=CLIENT_SECRET,
            ACTIONSTEP_REDIRECT_URI=redirect_uri,
            ACTIONSTEP_ENVIRONMENT=fake.base_url,
        )
        work = tmp_path / "work"
        work.mkdir()
        yield Setup(fake, env, work, redirect_uri)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "records(**counts): records seeded in the CLI tests' fake")
