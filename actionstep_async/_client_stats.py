"""What a client's requests met: a small, mutable set of counters for people and programs."""

from __future__ import annotations

from typing import Final, Literal

import attrs

__all__ = ["RETRY_CAUSES", "ClientStats", "RetryCause"]

RetryCause = Literal["rate_limited", "server_error", "connection", "unauthorized"]
RETRY_CAUSES: Final[tuple[RetryCause, ...]] = (
    "rate_limited",
    "server_error",
    "connection",
    "unauthorized",
)


def _no_retries() -> dict[RetryCause, int]:
    return dict.fromkeys(RETRY_CAUSES, 0)


@attrs.define
class ClientStats:
    """Counters of one client and its ``with_options`` copies (read them at any time).

    ``requests`` counts HTTP exchanges sent (retries included) and ``rate_limited`` the ones
    answered 429. ``retries`` counts requests sent again, by cause: ``rate_limited`` (429),
    ``server_error`` (5xx), ``connection`` (no answer) and ``unauthorized`` (a 401 answered by
    a refreshed token, also counted in ``refreshes``). ``waited`` is the seconds callers spent
    waiting, summed over callers: for the governor (a 429's pause, the learned rate, the
    concurrency cap) and in retry back-off.
    """

    requests: int = 0
    rate_limited: int = 0
    retries: dict[RetryCause, int] = attrs.field(factory=_no_retries)
    waited: float = 0.0
    refreshes: int = 0

    def as_dict(self) -> dict[str, float]:
        """Flat ``name: value`` pairs, ready for a log line or a metrics gauge."""
        flat: dict[str, float] = {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "waited_seconds": round(self.waited, 3),
            "refreshes": self.refreshes,
        }
        for cause, count in self.retries.items():
            flat[f"retries_{cause}"] = count
        return flat
