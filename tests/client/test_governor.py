"""The per-organisation governor: its pure decisions as tables, then against the real fake."""

from __future__ import annotations

import asyncio
import math

import attrs
import pytest

from actionstep_async import AsyncResourceClient, TokenManager
from actionstep_async._governor import Governor, governor_for
from actionstep_async._rate import (
    GovernorPolicy,
    Measured,
    RateState,
    accepted_rate,
    carried,
    decreased,
    given_back,
    measure_window,
    rate_at,
    reserve,
)
from actionstep_async.testing import FakeActionstep, FaultRule

POLICY = GovernorPolicy(
    growth=0.01,
    probe_doubling=2.0,
    start_doubling=0.1,
    min_rate=0.5,
    decrease=0.9,
    window=5.0,
    plateau=0.95,
    recovery=1.0,
)
LEARNED = RateState(base=9.0, changed_at=5.0, ceiling=10.0, settled=True)

RATES: list[tuple[str, RateState, float, float | None]] = [
    # (case, state, now, expected rate)
    ("nothing learned: unpaced", RateState(), 5.0, None),
    ("just decreased", RateState(base=10.0, changed_at=5.0), 5.0, 10.0),
    ("grows linearly", RateState(base=10.0, changed_at=5.0), 15.0, 11.0),
    ("no growth before the pause ends", RateState(base=10.0, changed_at=5.0), 4.0, 10.0),
    ("probing doubles", RateState(base=4.0, changed_at=0.0, probing=True, generation=1), 4.0, 16.0),
    ("slow start doubles faster", RateState(base=4.0, changed_at=0.0, probing=True), 0.2, 16.0),
    # With a measured ceiling: back towards plateau x ceiling (9.5) with time constant 1 s ...
    ("after a 429: the new base", LEARNED, 5.0, 9.0),
    ("one time constant later", LEARNED, 6.0, 9.5 - 0.5 * math.exp(-1.0)),
    ("holds near the plateau", LEARNED, 8.0, 9.5 - 0.5 * math.exp(-3.0)),
    # ... then, after 3 time constants, beyond it by growth x plateau per second.
    ("then probes beyond, slowly", LEARNED, 18.0, 9.5 - 0.5 * math.exp(-13.0) + 9.5 * 0.01 * 10),
    (
        "a rough ceiling is probed sooner and faster",
        attrs.evolve(LEARNED, settled=False),
        18.0,
        9.5 - 0.5 * math.exp(-13.0) + 9.5 * 0.1 * 12,
    ),
    ("a base above the plateau is its own target", attrs.evolve(LEARNED, base=12.0), 6.0, 12.0),
    # Long without a 429 (30 s), it doubles every 10 s.
    (
        "long quiet: doubling",
        LEARNED,
        55.0,
        (9.5 - 0.5 * math.exp(-50.0) + 9.5 * 0.01 * 47) * 2.0**2,
    ),
]


@pytest.mark.parametrize(
    ("state", "now", "expected"), [c[1:] for c in RATES], ids=[c[0] for c in RATES]
)
def test_rate_at(state: RateState, now: float, expected: float | None) -> None:
    assert rate_at(state, now, POLICY) == pytest.approx(expected)


def test_max_rate_caps_growth_and_the_unlearned_rate() -> None:
    capped = GovernorPolicy(max_rate=12.0)
    assert rate_at(RateState(), 0.0, capped) == 12.0
    assert rate_at(RateState(base=10.0, probing=True), 100.0, capped) == 12.0


DECREASES: list[tuple[str, RateState, int, Measured | None, RateState]] = [
    # (case, state, sent generation, measured, expected); now=10, resume=11
    (
        "measured: the ceiling, and the base at decrease x it",
        RateState(base=20.0, changed_at=0.0),
        0,
        Measured(15.0, 4.0),
        RateState(base=13.5, changed_at=11.0, generation=1, ceiling=15.0, settled=True),
    ),
    (
        "measured while probing: a rough ceiling",
        RateState(base=20.0, changed_at=10.0, probing=True),
        0,
        Measured(10.0, 4.0),
        RateState(base=9.0, changed_at=11.0, generation=1, ceiling=10.0),
    ),
    (
        "never above the rate that was sent (a burst the server absorbed)",
        RateState(base=10.0, changed_at=10.0, ceiling=12.0, settled=True),
        0,
        Measured(14.0, 3.0),
        RateState(base=9.0, changed_at=11.0, generation=1, ceiling=10.0, settled=True),
    ),
    (
        "a burst only while probing: the refused rate is a rough ceiling",
        RateState(base=20.0, changed_at=10.0, probing=True),
        0,
        Measured(10.0, 0.5),
        RateState(base=9.0, changed_at=11.0, generation=1, ceiling=10.0),
    ),
    (
        "a burst only at a steady rate: probe from there",
        RateState(base=20.0, changed_at=10.0),
        0,
        Measured(10.0, 0.5),
        RateState(base=9.0, changed_at=11.0, generation=1, probing=True),
    ),
    (
        "nothing measured: probe again from the current rate",
        RateState(base=20.0, changed_at=10.0),
        0,
        None,
        RateState(base=18.0, changed_at=11.0, generation=1, probing=True),
    ),
    (
        "nothing measured, with a ceiling: the refused rate caps it",
        RateState(base=20.0, changed_at=10.0, ceiling=25.0, settled=True),
        0,
        None,
        RateState(base=18.0, changed_at=11.0, generation=1, ceiling=20.0, settled=True),
    ),
    (
        "a burst only, with a lower ceiling: the ceiling stays",
        RateState(base=20.0, changed_at=10.0, ceiling=15.0),
        0,
        Measured(30.0, 0.5),
        RateState(base=18.0, changed_at=11.0, generation=1, ceiling=15.0),
    ),
    (
        "nothing to go on: stays unpaced",
        RateState(),
        0,
        None,
        RateState(generation=1),
    ),
    (
        "a stale 429 changes nothing",
        RateState(base=20.0, changed_at=0.0, generation=3),
        2,
        Measured(1.0, 5.0),
        RateState(base=20.0, changed_at=0.0, generation=3),
    ),
    (
        "never below the floor",
        RateState(base=20.0, changed_at=0.0),
        0,
        Measured(0.2, 5.0),
        RateState(base=0.5, changed_at=11.0, generation=1, ceiling=0.5, settled=True),
    ),
]


@pytest.mark.parametrize(
    ("state", "sent", "measured", "expected"),
    [c[1:] for c in DECREASES],
    ids=[c[0] for c in DECREASES],
)
def test_decreased(
    state: RateState, sent: int, measured: Measured | None, expected: RateState
) -> None:
    got = decreased(
        state, now=10.0, resume_at=11.0, sent_generation=sent, measured=measured, policy=POLICY
    )
    assert got.base == pytest.approx(expected.base)
    assert got.ceiling == pytest.approx(expected.ceiling)
    assert (got.changed_at, got.generation, got.probing, got.settled) == (
        expected.changed_at,
        expected.generation,
        expected.probing,
        expected.settled,
    )


SLOTS: list[tuple[str, float, float, float | None, float, tuple[float, float]]] = [
    # (case, tat, now, rate, not_before, (wait, new tat))
    ("idle: now, next in 1/rate", 0.0, 10.0, 4.0, 0.0, (0.0, 10.25)),
    ("queued behind others", 11.0, 10.0, 4.0, 0.0, (1.0, 11.25)),
    ("paused: after the pause", 0.0, 10.0, 4.0, 12.0, (2.0, 12.25)),
    ("unpaced: only the pause", 0.0, 10.0, None, 12.0, (2.0, 0.0)),
    ("unpaced, no pause: go", 0.0, 10.0, None, 0.0, (0.0, 0.0)),
]


@pytest.mark.parametrize(
    ("tat", "now", "rate", "not_before", "expected"),
    [c[1:] for c in SLOTS],
    ids=[c[0] for c in SLOTS],
)
def test_reserve(
    tat: float, now: float, rate: float | None, not_before: float, expected: tuple[float, float]
) -> None:
    assert tuple(reserve(tat, now, rate, not_before=not_before)) == pytest.approx(expected)


ACCEPTED: list[tuple[str, list[float], Measured | None]] = [
    # (case, success times, expected) at now=10, window=5
    ("too few", [9.5], None),
    ("a short span counts as the minimum span", [9.8, 9.9, 9.95], Measured(4.0, 0.5)),
    ("old ones are outside the window", [1.0, 2.0, 7.0, 8.0, 9.0, 9.5], Measured(1.0, 3.0)),
    ("steady: intervals, not events", [6.0, 7.0, 8.0, 9.0], Measured(0.75, 4.0)),
]


@pytest.mark.parametrize(
    ("times", "expected"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted_rate(times: list[float], expected: Measured | None) -> None:
    assert accepted_rate(times, 10.0, 5.0) == expected


def test_accepted_rate_counts_only_since_the_last_pause() -> None:
    assert accepted_rate([6.0, 7.0, 8.0, 9.0, 9.5], 10.0, 5.0, since=8.5) == Measured(1.0, 1.0)


CARRIED: list[tuple[str, Measured | None, float | None, RateState]] = [
    # (case, own share, last shared rate, expected) at now=10, from SHARED_STATE
    ("this process's share", Measured(5.0, 10.0), 20.0, RateState(5.0, 10.0, 4)),
    ("no successes of its own: the shared rate", None, 20.0, RateState(20.0, 10.0, 4)),
    ("never below the floor", Measured(0.1, 10.0), None, RateState(0.5, 10.0, 4)),
    ("nothing to go on: as it was", None, None, RateState(20.0, 0.0, 3, ceiling=25.0)),
]
SHARED_STATE = RateState(base=20.0, changed_at=0.0, generation=3, ceiling=25.0)


@pytest.mark.parametrize(
    ("own", "shared", "expected"), [c[1:] for c in CARRIED], ids=[c[0] for c in CARRIED]
)
def test_carried(own: Measured | None, shared: float | None, expected: RateState) -> None:
    got = carried(SHARED_STATE, now=10.0, own=own, shared=shared, policy=POLICY)
    assert got == expected


GIVEN_BACK: list[tuple[str, float, float, float | None, float]] = [
    # (case, tat, now, rate, expected tat)
    ("closes up one interval", 12.0, 10.0, 4.0, 11.75),
    ("never into the past", 10.1, 10.0, 4.0, 10.0),
    ("a slot already passed: nothing to give", 9.0, 10.0, 4.0, 9.0),
    ("unpaced: no slot", 12.0, 10.0, None, 12.0),
]


@pytest.mark.parametrize(
    ("tat", "now", "rate", "expected"), [c[1:] for c in GIVEN_BACK], ids=[c[0] for c in GIVEN_BACK]
)
def test_given_back(tat: float, now: float, rate: float | None, expected: float) -> None:
    assert given_back(tat, now, rate) == pytest.approx(expected)


SLOW_PROBE = attrs.evolve(POLICY, probe_doubling=8.0)
MEASURE_WINDOWS: list[tuple[str, GovernorPolicy, RateState, float]] = [
    # (case, policy, state, seconds a 429 measures over); POLICY: window 5, doublings 0.1 and 2
    ("learned, steady", POLICY, LEARNED, 5.0),
    ("nothing learned, unpaced", POLICY, RateState(), 5.0),
    ("slow start: its doubling period", POLICY, RateState(base=10.0, probing=True), 0.1),
    ("probing after a pause: its doubling", POLICY, RateState(10.0, 0.0, 3, probing=True), 2.0),
    ("a doubling longer than the window", SLOW_PROBE, RateState(10.0, 0.0, 3, probing=True), 5.0),
]


@pytest.mark.parametrize(
    ("policy", "state", "expected"),
    [c[1:] for c in MEASURE_WINDOWS],
    ids=[c[0] for c in MEASURE_WINDOWS],
)
def test_measure_window(policy: GovernorPolicy, state: RateState, expected: float) -> None:
    assert measure_window(state, policy) == expected


def test_a_ramp_is_measured_near_its_end_not_at_its_average() -> None:
    """Successes of the default slow start (10/s doubling every second) up to 3.5 s: its last
    doubling reads most of the final rate, the whole 5 s window under half of it."""
    policy = GovernorPolicy()
    times: list[float] = []
    t = 0.0
    while t < 3.5:
        times.append(t)
        t += 1.0 / (10.0 * 2.0**t)
    final = 10.0 * 2.0**3.5
    ramp = policy.start(0.0)
    short = accepted_rate(times, 3.5, measure_window(ramp, policy))
    whole = accepted_rate(times, 3.5, policy.window)
    assert short is not None
    assert whole is not None
    assert short.rate > 0.65 * final > 0.45 * final > whole.rate


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="decrease"):
        GovernorPolicy(decrease=1.5)
    with pytest.raises(ValueError, match="concurrency"):
        GovernorPolicy(concurrency=0)
    with pytest.raises(ValueError, match="max_rate"):
        GovernorPolicy(min_rate=2.0, max_rate=1.0)
    with pytest.raises(ValueError, match="initial_rate"):
        GovernorPolicy(initial_rate=0.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _NoShared:
    """A shared budget that must never be asked: try_acquire leaves it to acquire()."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the fast path used the shared budget ({name})")


def _governor(**policy: object) -> tuple[Governor, _Clock]:
    clock = _Clock()
    return Governor("org", policy=GovernorPolicy(**policy), clock=clock), clock  # type: ignore[arg-type]


def test_try_acquire_grants_at_once_only_when_acquire_would_not_wait() -> None:
    governor, clock = _governor(concurrency=2)
    first = governor.try_acquire()
    assert first is not None
    assert first.lease is None
    assert first.waited == 0.0
    second = governor.try_acquire()
    assert second is not None
    assert governor.try_acquire() is None, "the cap is full"
    governor.release_nowait(first, 200, None)
    assert governor.in_flight == 1
    # A 429 with Retry-After pauses the key: nobody is let through before it has passed.
    governor.release_nowait(second, 429, 2.0)
    assert governor.in_flight == 0
    assert governor.try_acquire() is None
    clock.now += 2.5
    assert governor.try_acquire() is not None


def test_try_acquire_takes_a_paced_slot_only_when_it_is_due() -> None:
    governor, clock = _governor(initial_rate=2.0)
    assert governor.try_acquire(bulk=True) is not None, "the first slot is due now"
    assert governor.try_acquire(bulk=True) is None, "the next one is half a second away"
    assert governor.try_acquire() is not None, "before any 429 only bulk work is paced"
    clock.now += 0.6
    assert governor.try_acquire(bulk=True) is not None


def test_try_acquire_leaves_a_shared_budget_to_acquire() -> None:
    governor = Governor("org", shared=_NoShared())  # type: ignore[arg-type]
    assert governor.try_acquire() is None
    assert governor.in_flight == 0


async def test_try_acquire_never_jumps_a_queue() -> None:
    governor, _ = _governor(concurrency=1)
    held = governor.try_acquire()
    assert held is not None
    waiting = asyncio.ensure_future(governor.acquire())
    await asyncio.sleep(0)
    governor.release_nowait(held, 200, None)
    assert governor.try_acquire() is None, "the freed permit went to the queued caller"
    permit = await waiting
    await governor.release(permit, 200, None)
    assert governor.in_flight == 0


# -- against the fake ---------------------------------------------------------------------------


async def _clients(
    fake: FakeActionstep, count: int
) -> tuple[TokenManager, list[AsyncResourceClient]]:
    from actionstep_async import OAuthClient

    oauth = OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=fake.environment,
    )
    manager = TokenManager(oauth)
    await manager.save("org", fake.issue_token(scopes=("all",)))
    return manager, [AsyncResourceClient(manager, "org") for _ in range(count)]


async def test_every_client_of_a_key_shares_one_governor_per_loop() -> None:
    async with FakeActionstep() as fake:
        manager, (one, two) = await _clients(fake, 2)
        async with manager, one, two:
            assert one.governor is two.governor is governor_for("org")
            assert one.bulk().governor is one.governor
            assert governor_for("other") is not one.governor


async def test_a_given_governor_must_match_the_key() -> None:
    async with FakeActionstep() as fake:
        manager, _ = await _clients(fake, 0)
        async with manager:
            with pytest.raises(ValueError, match="another key"):
                AsyncResourceClient(manager, "org", governor=Governor("elsewhere"))


async def test_a_429_with_retry_after_pauses_every_caller_of_the_key() -> None:
    """One client's 429 (Retry-After: 1) holds back another client's request of the same key."""
    async with FakeActionstep(records={"actions": 10, "participants": 10}) as fake:
        manager, (first, second) = await _clients(fake, 2)
        async with manager, first, second:
            fake.add_fault(FaultRule(kind="rate_limit", retry_after=1, count=1, resource="actions"))
            slow = asyncio.ensure_future(first.get("actions", 1))
            # Wait for the client to have handled the 429 (the fake counts it before that).
            for _ in range(3000):
                if first.governor.rate_limited:
                    break
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await second.get("participants", 1)
            # The pause started before ``started``; some of it may have run out already.
            assert loop.time() - started > 0.5
            assert (await slow).id == 1
            assert first.stats.rate_limited == 1
            assert first.stats.retries["rate_limited"] == 1
            assert second.stats.waited > 0.5


async def test_two_concurrent_iterations_of_one_key_stay_inside_the_limit_together() -> None:
    """Two iterations via two clients share one budget: few 429s, none fail, all records."""
    records = {"actions": 3000, "participants": 3000}
    async with FakeActionstep(records=records) as fake:
        fake.rate_limit(rate=30, burst=5)
        manager, (first, second) = await _clients(fake, 2)
        async with manager, first, second:

            async def drain(client: AsyncResourceClient, resource: str) -> int:
                count = 0
                async for _ in client.iterate(resource, page_size=50, concurrency=8):
                    count += 1
                return count

            got = await asyncio.gather(drain(first, "actions"), drain(second, "participants"))
        assert list(got) == [3000, 3000]
        ok = sum(n for (m, r, s), n in fake.counters.requests.items() if s == 200)
        limited = sum(n for (m, r, s), n in fake.counters.requests.items() if s == 429)
        assert ok == 120
        # Each learning step costs a 429 or two; separate budgets would keep colliding.
        assert limited <= 12, limited  # 2% of the 600 the pair would send
        assert first.governor.rate is not None
