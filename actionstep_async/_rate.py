"""Pure rate decisions of the governor: how fast one organisation may be called, and when.

Actionstep's limits are per organisation, unpublished and dynamic, so the rate is learned:

* Bulk work (``iterate()``, the CLI's export) on a key starts at ``initial_rate`` and probes
  upwards, doubling every ``start_doubling`` s until the key's first 429 ever (TCP's slow
  start: a fleet of workers starting together does not stampede). Single calls are not paced
  before that first 429; ``initial_rate=None`` starts bulk work unpaced too.
* A 429 sets the rate to ``decrease`` times the rate the server was *accepting* just before
  (successes per second over the last ``window`` seconds, short so that a ramp-up is not
  averaged in): that measures the limit itself, so one 429 lands near it instead of halving
  towards it step by step as plain AIMD does.
* From there the rate grows linearly by ``growth`` of itself per second, probing for more
  headroom; the next 429 measures again. When there was nothing to measure (too few
  successes) the rate instead doubles every ``probe_doubling`` seconds from its guess, so a
  poor guess costs seconds, not minutes. A 429 for a
  request sent before the last decrease (an older ``generation``) says nothing new.
* Requests are spaced by a GCRA-style schedule: each caller reserves the next free slot in
  arrival order (FIFO) and sleeps until it, so waiting callers never race each other.

The Redis budget (``actionstep_async.stores.redis_budget``) runs the same formulas in Lua on
Redis's clock; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import attrs

__all__ = [
    "GovernorPolicy",
    "Measured",
    "RateState",
    "accepted_rate",
    "decreased",
    "rate_at",
    "reserve",
]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive")


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1")


@attrs.frozen
class GovernorPolicy:
    """How the per-organisation governor learns and spends its rate budget.

    ``concurrency`` caps the requests in flight for one key in this process (and, with a shared
    budget, ``shared_concurrency`` across all processes; a lease lives ``lease_ttl`` seconds
    past its request's start, so a killed worker's slots come back). ``decrease`` and
    ``growth`` are the learning rule above; ``min_rate`` is the floor in requests per second and
    ``max_rate`` an optional ceiling (a limit you already know).
    """

    concurrency: int = 128
    shared_concurrency: int = 256
    decrease: float = attrs.field(default=0.9, validator=_fraction)
    growth: float = attrs.field(default=0.005, validator=_positive)
    window: float = attrs.field(default=0.5, validator=_positive)
    min_rate: float = attrs.field(default=0.2, validator=_positive)
    max_rate: float | None = None
    lease_ttl: float = attrs.field(default=60.0, validator=_positive)
    probe_doubling: float = attrs.field(default=1.0, validator=_positive)
    initial_rate: float | None = 10.0
    start_doubling: float = attrs.field(default=1.0, validator=_positive)

    def start(self, now: float) -> RateState:
        """The state of a key nothing has been learned about yet."""
        if self.initial_rate is None:
            return RateState()
        return RateState(base=self.initial_rate, changed_at=now, probing=True)

    def __attrs_post_init__(self) -> None:
        if self.concurrency < 1 or self.shared_concurrency < 1:
            raise ValueError("concurrency and shared_concurrency must be at least 1")
        if self.max_rate is not None and self.max_rate < self.min_rate:
            raise ValueError("max_rate must not be below min_rate")
        if self.initial_rate is not None and not self.initial_rate > 0:
            raise ValueError("initial_rate must be positive or None")


@attrs.frozen
class RateState:
    """What has been learned: ``base`` req/s (None: not yet) set at ``changed_at``."""

    base: float | None = None
    changed_at: float = 0.0
    generation: int = 0
    probing: bool = False


def rate_at(state: RateState, now: float, policy: GovernorPolicy) -> float | None:
    """The allowed rate at ``now`` (None: unpaced), grown linearly since the last decrease."""
    if state.base is None:
        return policy.max_rate
    since = max(0.0, now - state.changed_at)
    if state.probing:
        doubling = policy.start_doubling if state.generation == 0 else policy.probe_doubling
        grown = state.base * math.pow(2.0, min(since / doubling, 30.0))
    else:
        grown = state.base * (1.0 + policy.growth * since)
    return grown if policy.max_rate is None else min(grown, policy.max_rate)


class Measured(NamedTuple):
    """The accepted rate (req/s) and the seconds of successes it was measured over."""

    rate: float
    span: float


def accepted_rate(successes: Sequence[float], now: float, window: float) -> Measured | None:
    """Successes per second over the last ``window`` s of ``successes`` (ascending times).

    None with fewer than 2 successes. A span under half the window is counted as half the
    window (a burst right at the start must not look like a huge rate).
    """
    start = now - window
    recent = [stamp for stamp in successes if stamp >= start]
    if len(recent) < 2:
        return None
    span = max(now - recent[0], window / 2)
    # n successes span n - 1 intervals: n / span would overstate the rate by n / (n - 1).
    return Measured((len(recent) - 1) / span, span)


def decreased(
    state: RateState,
    *,
    now: float,
    resume_at: float,
    sent_generation: int,
    measured: Measured | None,
    policy: GovernorPolicy,
) -> RateState:
    """The state after a 429 for a request sent in ``sent_generation``.

    The new base is ``decrease`` x the measured accepted rate, else x the current rate (with
    neither, still unpaced); growth restarts at ``resume_at`` (when the server's Retry-After
    has passed).
    """
    if sent_generation != state.generation:
        return state
    current = rate_at(state, now, policy)
    reference = measured.rate if measured is not None else current
    if reference is None:
        # Nothing to go on yet (a 429 within the first burst): pause, but stay unpaced.
        return RateState(generation=state.generation + 1)
    base = reference * policy.decrease
    if policy.max_rate is not None:
        base = min(base, policy.max_rate)
    return RateState(
        base=max(policy.min_rate, base),
        changed_at=max(now, resume_at),
        generation=state.generation + 1,
        probing=measured is None or measured.span <= policy.window / 2,
    )


class Slot(NamedTuple):
    """A reserved send time: sleep ``wait`` seconds; the schedule's next free time is ``tat``."""

    wait: float
    tat: float


def reserve(tat: float, now: float, rate: float | None, *, not_before: float = 0.0) -> Slot:
    """Reserve the next slot at ``rate`` req/s after theoretical arrival time ``tat``.

    ``not_before`` is a shared pause (a 429's Retry-After): no slot starts earlier. Unpaced
    (``rate`` None) only the pause applies.
    """
    start = max(now, not_before)
    if rate is None:
        return Slot(start - now, tat)
    send = max(tat, start)
    return Slot(send - now, send + 1.0 / rate)
