"""A faithful in-process fake of the Actionstep API, for tests, benchmarks and demos.

::

    async with FakeActionstep(records={"actions": 1000}) as fake:
        token = fake.issue_token(scopes=("actions",))
        ...  # point a client at fake.environment / token.api_endpoint

Run it standalone with ``python -m actionstep_async.testing --port 8080 --records 100000``.
The pytest plugin (loaded automatically) provides a ``fake_actionstep`` fixture.

For unit tests without a server, :class:`MockTransport` answers requests from a function;
:class:`FakeClock`, :func:`make_token` and :data:`FAST_RETRY` are the usual companions.
"""

from __future__ import annotations

from .._transport import Request, Response
from ._auth import issued_secrets
from ._counters import FakeCounters, ReceivedRequest
from ._faults import FaultKind, FaultRule
from ._helpers import FAST_RETRY, FakeClock, make_token
from ._mock import Handler, MockTransport, json_response
from ._server import FakeActionstep

__all__ = [
    "FAST_RETRY",
    "FakeActionstep",
    "FakeClock",
    "FakeCounters",
    "FaultKind",
    "FaultRule",
    "Handler",
    "MockTransport",
    "ReceivedRequest",
    "Request",
    "Response",
    "issued_secrets",
    "json_response",
    "make_token",
]
