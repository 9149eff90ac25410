"""What the fake has seen: counters that tests assert on."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from .._tokens import fingerprint

__all__ = ["FakeCounters", "ReceivedRequest", "SecretKeyedCounter"]


class SecretKeyedCounter(Counter[str]):
    """A Counter keyed by secrets (look them up as usual) whose repr shows fingerprints only."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{fingerprint(key)!r}: {n}" for key, n in self.most_common())
        return f"{type(self).__name__}({{{shown}}})"


@attrs.define
class FakeCounters:
    """Live counters of one FakeActionstep.

    ``requests`` is keyed by ``(method, route, status)`` where route is the resource name
    (``"actions"``), ``"oauth/token"`` or ``"oauth/authorize"``; a dropped connection counts as
    status ``0``. ``spent_token_reuses`` counts every presentation of an already-rotated refresh
    token, including those a grace window forgave (also counted in ``grace_reuses``).
    """

    token_calls: int = 0
    token_calls_by_grant: Counter[str] = attrs.field(factory=Counter)
    refresh_presented: SecretKeyedCounter = attrs.field(factory=SecretKeyedCounter)
    """Presentations per refresh token; its repr shows fingerprints, never a token."""
    spent_token_reuses: int = 0
    grace_reuses: int = 0
    authorize_calls: int = 0
    requests: Counter[tuple[str, str, int]] = attrs.field(factory=Counter)
    faults_fired: Counter[str] = attrs.field(factory=Counter)
    records_served: Counter[str] = attrs.field(factory=Counter)
    """Records in GET answers by resource; ``"actions:fields"`` counts those cut by a fieldset."""

    def reset(self) -> None:
        """Zero everything (the same object stays valid for anyone holding it)."""
        self.token_calls = self.spent_token_reuses = self.grace_reuses = self.authorize_calls = 0
        for counter in (
            self.token_calls_by_grant,
            self.refresh_presented,
            self.requests,
            self.faults_fired,
            self.records_served,
        ):
            counter.clear()

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe snapshot. Refresh tokens appear only as fingerprints."""
        return {
            "token_calls": self.token_calls,
            "token_calls_by_grant": dict(sorted(self.token_calls_by_grant.items())),
            "refresh_presented": {
                fingerprint(token): n for token, n in sorted(self.refresh_presented.items())
            },
            "max_refresh_presented": max(self.refresh_presented.values(), default=0),
            "spent_token_reuses": self.spent_token_reuses,
            "grace_reuses": self.grace_reuses,
            "authorize_calls": self.authorize_calls,
            "requests": {
                f"{method} {route} {status}": n
                for (method, route, status), n in sorted(self.requests.items())
            },
            "faults_fired": dict(sorted(self.faults_fired.items())),
            "records_served": dict(sorted(self.records_served.items())),
        }


@attrs.frozen
class ReceivedRequest:
    """One data-API request as the fake received it (the bearer token is not kept)."""

    method: str
    path: str
    """Relative to ``<api_endpoint>rest/``, e.g. ``filenotes/3``."""
    query: tuple[tuple[str, str], ...]
    content_type: str | None
    accept: str | None
    authorized: bool
    """Whether a bearer token was presented."""
    body: Any
    """The decoded JSON body of a write, else None."""
