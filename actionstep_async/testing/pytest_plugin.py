"""pytest plugin (registered through the ``pytest11`` entry point): FakeActionstep fixtures.

``fake_actionstep`` yields a started :class:`FakeActionstep` for one test, and
``actionstep_client`` an :class:`AsyncResourceClient` already authorized against it. Configure
the fake with a marker, whose keyword arguments go straight to the constructor::

    @pytest.mark.fake_actionstep(records={"actions": 500}, reuse_detection=True)
    async def test_something(fake_actionstep): ...

The fixtures work whether the project runs pytest-asyncio in strict or auto mode: a coroutine
test that asks for one of them is marked ``asyncio`` here. ``pip install
"actionstep-async[testing]"`` brings pytest and pytest-asyncio. The plugin loads in every pytest
run of a project that installs actionstep-async, so it must not fail when pytest-asyncio is
missing: the fixture then explains what to install.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .._client import AsyncResourceClient
from ._server import FakeActionstep

__all__ = ["actionstep_client", "fake_actionstep"]

_MARKER = "fake_actionstep"

try:
    pytest_asyncio: Any = importlib.import_module("pytest_asyncio")
except ImportError:  # pragma: no cover - depends on the user's environment
    pytest_asyncio = None


_FIXTURES = frozenset({"fake_actionstep", "actionstep_client"})
_LOOP_SCOPE_OPTION = "asyncio_default_fixture_loop_scope"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{_MARKER}(**kwargs): keyword arguments for the fake_actionstep fixture"
    )
    if pytest_asyncio is not None and not config.getini(_LOOP_SCOPE_OPTION):
        # Our fixtures name their loop scope, so pytest-asyncio's warning about the unset
        # default does not concern them; a project with its own async fixtures should set it.
        warnings.filterwarnings(
            "ignore",
            message=f".*{_LOOP_SCOPE_OPTION}.*unset",
            category=pytest.PytestDeprecationWarning,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark a coroutine test that takes one of our fixtures ``asyncio`` (strict mode needs it)."""
    if pytest_asyncio is None or not inspect.iscoroutinefunction(obj):
        return
    if _FIXTURES & set(inspect.signature(obj).parameters):
        pytest.mark.asyncio(obj)


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    return dict(marker.kwargs) if marker is not None else {}


if pytest_asyncio is not None:

    @pytest_asyncio.fixture(loop_scope="function")  # type: ignore[untyped-decorator]
    async def fake_actionstep(request: pytest.FixtureRequest) -> AsyncIterator[FakeActionstep]:
        """A started FakeActionstep on 127.0.0.1 with a free port, stopped after the test."""
        async with FakeActionstep(**_options(request)) as fake:
            yield fake

    @pytest_asyncio.fixture(loop_scope="function")  # type: ignore[untyped-decorator]
    async def actionstep_client(
        fake_actionstep: FakeActionstep,
    ) -> AsyncIterator[AsyncResourceClient]:
        """An AsyncResourceClient already authorized against ``fake_actionstep``."""
        async with await fake_actionstep.connect(scopes=("all",)) as client:
            yield client

else:  # pragma: no cover - depends on the user's environment

    @pytest.fixture
    def fake_actionstep() -> None:
        """Unavailable without pytest-asyncio."""
        pytest.fail("the fake_actionstep fixture needs pytest-asyncio: pip install pytest-asyncio")

    @pytest.fixture
    def actionstep_client() -> None:
        """Unavailable without pytest-asyncio."""
        pytest.fail("the actionstep_client fixture needs pytest-asyncio (pip install it)")
