"""A faithful in-process fake of the Actionstep API, for tests, benchmarks and demos.

::

    async with FakeActionstep(records={"actions": 1000}) as fake:
        token = fake.issue_token(scopes=("actions",))
        ...  # point a client at fake.environment / token.api_endpoint

Run it standalone with ``python -m actionstep_async.testing --port 8080 --records 100000``.
The pytest plugin (loaded automatically) provides a ``fake_actionstep`` fixture.
"""

from __future__ import annotations

from ._auth import issued_secrets
from ._counters import FakeCounters, ReceivedRequest
from ._faults import FaultKind, FaultRule
from ._server import FakeActionstep

__all__ = [
    "FakeActionstep",
    "FakeCounters",
    "FaultKind",
    "FaultRule",
    "ReceivedRequest",
    "issued_secrets",
]
