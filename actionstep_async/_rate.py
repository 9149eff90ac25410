"""Pure rate decisions of the governor: how fast one organisation may be called, and when.

Actionstep's limits are per organisation, unpublished and dynamic, so the rate is learned:

* Bulk work (``iterate()``, the CLI's export) on a key starts at ``initial_rate`` and probes
  upwards, doubling every ``start_doubling`` s until the key's first 429 ever (TCP's slow
  start: a fleet of workers starting together does not stampede). Single calls are not paced
  before that first 429; ``initial_rate=None`` starts bulk work unpaced too.
* A 429 measures the limit: the rate the server was *accepting* just before it (successes per
  second over the last ``window`` seconds since the last pause, never more than the rate we
  were sending at; a long window keeps the burst the server absorbed from counting as rate). That
  becomes the key's ``ceiling``, the last known limit, and the rate restarts at ``decrease``
  times it, so one 429 lands near the limit instead of halving towards it step by step as
  plain AIMD does.
* From there the rate recovers quickly towards ``plateau`` x the ceiling (closing the gap with
  a time constant of ``recovery`` seconds: the 429 came from overshooting the limit, not from
  being far below it), holds there, and only after ``3 x recovery`` s probes beyond it:
  slowly (``growth`` of the plateau per second) once the ceiling is *settled* (measured at a
  steady rate), since each probe that overshoots costs everyone a ``Retry-After``; ten times
  faster, after only ``recovery`` s, while it is the rough figure of the slow start, which
  ramps through the window it is measured over. After ``QUIET`` seconds without a 429 the
  rate also doubles every ``QUIET_DOUBLING`` seconds: a process that learned a small share of
  a limit it shared (without a shared budget) regains it once the others are done. The next
  429 measures again: a limit that drops is followed down at once.
* When there was nothing to measure (too few successes) the rate instead doubles every
  ``probe_doubling`` seconds from its guess, so a poor guess costs seconds, not minutes. A 429
  for a request sent before the last decrease (an older ``generation``) says nothing new.
* Requests are spaced by a GCRA-style schedule: each caller reserves the next free slot in
  arrival order (FIFO) and sleeps until it, so waiting callers never race each other. A slot's
  spacing is the rate *at the slot's time*, so callers queued during the slow start do not
  hold the whole queue to the rate of the moment they arrived.

The Redis budget (``actionstep_async.stores.redis_budget``) runs the same formulas in Lua on
Redis's clock; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, NamedTuple

import attrs

__all__ = [
    "GovernorPolicy",
    "Measured",
    "RateState",
    "accepted_rate",
    "carried",
    "decreased",
    "given_back",
    "measure_window",
    "rate_at",
    "reserve",
]


MIN_SPAN: Final = 0.5
"""Seconds: the shortest span a rate is measured over (redis_budget's Lua has it too)."""
QUIET: Final = 30.0
"""Seconds without a 429 after which a learned rate starts doubling (the Lua has it too)."""
QUIET_DOUBLING: Final = 10.0
_UNSETTLED: Final = 10.0
"""How much faster the rate probes beyond a ceiling measured during a ramp (see above)."""


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
    ``max_rate`` an optional ceiling (a limit you already know); ``plateau`` and ``recovery``
    shape the return towards the last measured limit.
    """

    concurrency: int = 128
    shared_concurrency: int = 256
    decrease: float = attrs.field(default=0.9, validator=_fraction)
    growth: float = attrs.field(default=0.002, validator=_positive)
    window: float = attrs.field(default=5.0, validator=_positive)
    min_rate: float = attrs.field(default=0.2, validator=_positive)
    max_rate: float | None = None
    lease_ttl: float = attrs.field(default=60.0, validator=_positive)
    probe_doubling: float = attrs.field(default=1.0, validator=_positive)
    initial_rate: float | None = 10.0
    start_doubling: float = attrs.field(default=1.0, validator=_positive)
    plateau: float = attrs.field(default=0.97, validator=_fraction)
    recovery: float = attrs.field(default=1.5, validator=_positive)

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
    """What has been learned: ``base`` req/s (None: not yet) set at ``changed_at``.

    ``ceiling`` is the limit the last 429 measured (None: none measured yet), ``settled`` when
    it was measured at a steady rate rather than during a ramp.
    """

    base: float | None = None
    changed_at: float = 0.0
    generation: int = 0
    probing: bool = False
    ceiling: float | None = None
    settled: bool = False


def rate_at(state: RateState, now: float, policy: GovernorPolicy) -> float | None:
    """The allowed rate at ``now`` (None: unpaced), grown since the last decrease."""
    if state.base is None:
        return policy.max_rate
    since = max(0.0, now - state.changed_at)
    if state.probing:
        doubling = policy.start_doubling if state.generation == 0 else policy.probe_doubling
        grown = state.base * math.pow(2.0, min(since / doubling, 30.0))
    elif state.ceiling is None:
        grown = state.base * (1.0 + policy.growth * since)
    else:
        target = max(state.base, policy.plateau * state.ceiling)
        gap = (target - state.base) * math.exp(-since / policy.recovery)
        if state.settled:
            beyond, growth = max(0.0, since - 3.0 * policy.recovery), policy.growth
        else:
            beyond, growth = max(0.0, since - policy.recovery), _UNSETTLED * policy.growth
        grown = target - gap + target * growth * beyond
        # Long without a 429, the rate is likely far below the limit (the others sharing it
        # without a shared budget have finished, or the limit rose): double every
        # QUIET_DOUBLING s.
        quiet = max(0.0, since - QUIET) / QUIET_DOUBLING
        grown *= math.pow(2.0, min(quiet, 30.0))
    return grown if policy.max_rate is None else min(grown, policy.max_rate)


class Measured(NamedTuple):
    """The accepted rate (req/s) and the seconds of successes it was measured over."""

    rate: float
    span: float


def accepted_rate(
    successes: Sequence[float], now: float, window: float, *, since: float = 0.0
) -> Measured | None:
    """Successes per second over the last ``window`` s of ``successes`` (ascending times).

    Only successes from ``since`` on count (the end of the last pause: before it the server
    was answering at another rate). None with fewer than 2 successes. A span under
    ``MIN_SPAN`` is counted as ``MIN_SPAN`` (a burst right at the start must not look like a
    huge rate).
    """
    start = max(now - window, since)
    recent = [stamp for stamp in successes if stamp >= start]
    if len(recent) < 2:
        return None
    span = max(now - recent[0], MIN_SPAN)
    # n successes span n - 1 intervals: n / span would overstate the rate by n / (n - 1).
    return Measured((len(recent) - 1) / span, span)


def measure_window(state: RateState, policy: GovernorPolicy) -> float:
    """Seconds of successes a 429 measures the accepted rate over.

    ``window`` at a steady rate; during a ramp (doubling every ``d`` s) only the last ``d`` s:
    over a longer window the ramp's average is far below the rate the server was accepting at
    its end (a 5 s window over the slow start reads about 0.4 of it, one doubling about 0.7).
    """
    if not state.probing:
        return policy.window
    doubling = policy.start_doubling if state.generation == 0 else policy.probe_doubling
    return min(policy.window, doubling)


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

    The measured accepted rate (capped by the rate we were sending at: a burst the server
    absorbed is not the limit) becomes the ceiling and the new base is ``decrease`` x it. Without
    a measurement the base is ``decrease`` x the current rate, and the current rate caps the
    ceiling (none yet: the rate probes upwards again; with neither, still unpaced). Growth
    restarts at ``resume_at`` (when the server's Retry-After has passed).
    """
    if sent_generation != state.generation:
        return state
    current = rate_at(state, now, policy)
    reference = measured.rate if measured is not None else current
    if reference is None:
        # Nothing to go on yet (a 429 within the first burst): pause, but stay unpaced.
        return RateState(generation=state.generation + 1)
    if current is not None:
        reference = min(reference, current)
    if policy.max_rate is not None:
        reference = min(reference, policy.max_rate)
    base = max(policy.min_rate, reference * policy.decrease)
    resume = max(now, resume_at)
    generation = state.generation + 1
    if measured is None or measured.span <= MIN_SPAN:
        # Nothing measured beyond a burst. From a steady rate with no ceiling yet: probe from
        # here. Otherwise the rate just refused is an upper bound on the limit, so that 429s
        # right after every pause (a server with a tiny burst) still converge.
        if state.ceiling is None and not state.probing:
            return RateState(base, resume, generation, probing=True)
        refused = max(policy.min_rate, reference)
        ceiling = refused if state.ceiling is None else min(state.ceiling, refused)
        return RateState(base, resume, generation, ceiling=ceiling, settled=state.settled)
    ceiling = max(policy.min_rate, reference)
    return RateState(base, resume, generation, ceiling=ceiling, settled=not state.probing)


def carried(
    state: RateState,
    *,
    now: float,
    own: Measured | None,
    shared: float | None,
    policy: GovernorPolicy,
) -> RateState:
    """The per-process state to go on with when the shared budget fails.

    ``own`` is what this process has been getting (its share of the organisation's rate, so
    that N processes falling back together stay near the limit together), else the last
    ``shared`` rate. From there it grows and learns from 429s like any learned rate; with
    neither, ``state`` is kept. A new generation: 429s of shared requests are stale locally.
    """
    reference = own.rate if own is not None else shared
    if reference is None:
        return state
    if policy.max_rate is not None:
        reference = min(reference, policy.max_rate)
    return RateState(
        base=max(policy.min_rate, reference), changed_at=now, generation=state.generation + 1
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


def given_back(tat: float, now: float, rate: float | None) -> float:
    """The schedule's next free time after a caller gives up the slot it reserved at ``rate``.

    The schedule closes up by one interval (never into the past), so a cancelled wait (an
    ``iterate()`` broken out of) leaves no hole in the key's budget.
    """
    if rate is None or tat <= now:
        return tat
    return max(now, tat - 1.0 / rate)
