"""Adversarial token-refresh scenarios (reference section 4) that no other module covers.

Each test's docstring starts with the scenario number (``A5:``, ``C14:``...). Scenarios already
tested elsewhere (tests/manager, tests/stores, tests/client, test_crash, test_redis_outage) are
not repeated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
import redis.asyncio as aioredis

from actionstep_async import (
    AsyncResourceClient,
    FileTokenStore,
    MemoryTokenStore,
    OAuthClient,
    ReauthorizationRequired,
    RefreshPolicy,
    ResponseDecodeError,
    Token,
    TokenEndpointUnavailable,
    TokenManager,
    TokenStore,
    TokenStoreError,
    TransientError,
    TransportError,
    UnauthorizedError,
)
from actionstep_async.stores.redis import RedisTokenStore
from actionstep_async.testing import FAST_RETRY as FAST
from actionstep_async.testing import FakeActionstep, FakeClock, FaultRule, issued_secrets

KEY = "org"
QUICK = RefreshPolicy(backoff_base=0.05, backoff_cap=0.1, claim_poll=0.01)
"""Manager backoff short enough for a test to wait it out."""


class SkewedClock:
    """Real time plus an offset the test changes: a host whose clock is wrong or jumps."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


class GenerationRefresher:
    """Rotates like Actionstep and stamps generation N into every field of the token it issues.

    Generation N is ``access-N`` / ``refresh-N`` / ``org-N`` with an expiry recorded per N, so a
    reader can tell a consistent snapshot from a mix of two generations. ``round_trip`` moves
    the clock while a refresh is in flight (a slow server under a simulated clock); ``delay``
    sleeps for real.
    """

    def __init__(
        self, clock: FakeClock, *, lifetime: float = 60.0, round_trip: float = 0.0
    ) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.round_trip = round_trip
        self.delay = 0.0
        self.generation = 0
        self.expiry: dict[int, float] = {}
        self.calls = 0
        self.presented: Counter[str] = Counter()
        self.spent: set[str] = set()
        self.reuses = 0

    def mint(self) -> Token:
        self.generation += 1
        n = self.generation
        issued = self.clock()
        self.expiry[n] = issued + self.lifetime
        return Token(
            access_token=f"access-{n}",
            refresh_token=f"refresh-{n}",
            expires_at=self.expiry[n],
            issued_at=issued,
            api_endpoint="https://ap-southeast-2.actionstep.com/api/",
            orgkey=f"org-{n}",
        )

    def consistent(self, token: Token) -> int:
        """The token's generation; fails the test if its fields come from different ones."""
        n = int(token.access_token.removeprefix("access-"))
        assert token.refresh_token == f"refresh-{n}", token
        assert token.orgkey == f"org-{n}", token
        assert token.expires_at == self.expiry[n], token
        return n

    async def refresh(self, token: Token) -> Token:
        self.calls += 1
        self.presented[token.refresh_token] += 1
        if token.refresh_token in self.spent:
            self.reuses += 1
            raise ReauthorizationRequired("refresh token already used")
        sent_at = self.clock()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.clock.advance(self.round_trip)
        self.spent.add(token.refresh_token)
        fresh = self.mint()
        # Like OAuthClient: the expiry counts from when the request was sent.
        fresh = attrs.evolve(fresh, issued_at=sent_at, expires_at=sent_at + self.lifetime)
        self.expiry[self.generation] = fresh.expires_at
        return fresh


def oauth_for(
    fake: FakeActionstep, *, clock: Callable[[], float] = time.time, timeout: float = 30.0
) -> OAuthClient:
    """An OAuthClient registered with ``fake``, on the given clock (skew tests share it)."""
    return OAuthClient(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        environment=fake.environment,
        clock=clock,
        timeout=timeout,
    )


def api_requests(fake: FakeActionstep, status: int | None = None) -> int:
    """Data-API requests the fake answered (optionally only those with ``status``)."""
    return sum(
        n
        for (_, route, code), n in fake.counters.requests.items()
        if not route.startswith("oauth/") and (status is None or code == status)
    )


async def settle(manager: TokenManager) -> None:
    """Wait for the refresh flights the manager has in progress (advisory ones included)."""
    flights = [s.flight.task for s in manager._states.values() if s.flight is not None]
    await asyncio.gather(*flights, return_exceptions=True)


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def connected(
    fake: FakeActionstep,
    *,
    clock: Callable[[], float] = time.time,
    policy: RefreshPolicy | None = None,
    store: TokenStore | None = None,
    expires_in: float | None = None,
    **client_options: Any,
) -> AsyncIterator[tuple[AsyncResourceClient, Token]]:
    """A client and its manager (``client.manager``) holding a new token from ``fake``."""
    manager = TokenManager(oauth_for(fake, clock=clock), store, clock=clock, policy=policy)
    first = await manager.save(KEY, fake.issue_token(scopes="all", expires_in=expires_in))
    client_options.setdefault("retry", FAST)
    try:
        async with AsyncResourceClient(manager, KEY, **client_options) as client:
            yield client, first
    finally:
        await manager.aclose()


# -- A. in-process concurrency -------------------------------------------------------------------


async def test_a5_token_shorter_than_the_margin_caps_refreshes_once_per_lifetime() -> None:
    """A5: a 30-second token (shorter than the 60 s / 600 s caps) refreshes once per lifetime."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=30.0)
    manager = TokenManager(refresher, clock=clock)
    await manager.save(KEY, refresher.mint())
    seconds = 150.0
    steps = 3000
    for _ in range(steps):
        token = await manager.token(KEY)
        assert clock() < token.expires_at  # never handed an expired token
        refresher.consistent(token)
        clock.advance(seconds / steps)
        await asyncio.sleep(0)  # let a background (advisory) refresh run
    await settle(manager)
    assert math.floor(seconds / 30.0) <= refresher.calls <= math.ceil(seconds / 30.0) + 1
    assert refresher.reuses == 0


async def test_a5_token_that_arrives_already_expired_is_a_typed_error_not_a_refresh_loop() -> None:
    """A5: a token whose lifetime is shorter than the round trip is kept but not looped on."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=1.0, round_trip=2.0)
    manager = TokenManager(refresher, clock=clock, policy=RefreshPolicy(jitter=0.0))
    await manager.save(KEY, refresher.mint())
    clock.advance(2.0)
    for _ in range(50):
        with pytest.raises(TransientError, match="expired before it arrived"):
            await manager.token(KEY)
    assert refresher.calls == 1  # 50 callers, one refresh: the backoff holds them off
    stored = await manager.store.load(KEY)
    assert stored is not None
    assert stored.access_token == "access-2"  # the live refresh token was saved, not dropped
    refresher.lifetime, refresher.round_trip = 3600.0, 0.0  # the server is sane again
    clock.advance(manager.policy.backoff_cap)
    token = await manager.token(KEY)
    assert token.access_token == "access-3"
    assert refresher.presented["refresh-2"] == 1
    assert refresher.reuses == 0


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_a6_readers_never_see_mixed_token_generations() -> None:
    """A6: 1,000 tasks reading across ~30 refreshes only ever see whole, monotonic generations."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=5.0)
    refresher.delay = 0.001
    manager = TokenManager(refresher, clock=clock)
    await manager.save(KEY, refresher.mint())
    seen: Counter[int] = Counter()
    running = True

    async def reader() -> None:
        last = 0
        while running:
            token = await manager.token(KEY)
            n = refresher.consistent(token)
            assert n >= last  # never goes back to an older generation
            last = n
            seen[n] += 1
            await asyncio.sleep(0)

    async def driver() -> None:
        nonlocal running
        for _ in range(150):
            clock.advance(1.0)
            stored = await manager.store.load(KEY)
            assert stored is not None
            refresher.consistent(stored)
            await asyncio.sleep(0.001)
        running = False

    await asyncio.gather(driver(), *(reader() for _ in range(1000)))
    await settle(manager)
    assert len(seen) >= 20  # many generations were really crossed
    assert refresher.calls == refresher.generation - 1
    assert refresher.reuses == 0


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
@pytest.mark.parametrize("seconds", [240.0, 3600.0])
async def test_a7_continuous_load_refreshes_at_most_once_per_lifetime_simulated(
    seconds: float,
) -> None:
    """A7: continuous load on 60-second tokens costs at most one refresh per (early) lifetime.

    Refreshes start in the advisory window, up to 10% of the lifetime early, so over T seconds
    the bound is ceil(T / (0.9 L)) + 1; that equals the reference's ceil(T / L) + 1 for runs of
    up to about nine lifetimes (the soak's 240 s), and is asserted as such there.
    """
    clock = FakeClock()
    lifetime = 60.0
    refresher = GenerationRefresher(clock, lifetime=lifetime)
    manager = TokenManager(refresher, clock=clock)
    await manager.save(KEY, refresher.mint())
    running = True

    async def worker() -> None:
        while running:
            token = await manager.token(KEY)
            assert clock() < token.expires_at
            await asyncio.sleep(0)

    workers = [asyncio.create_task(worker()) for _ in range(50)]
    for _ in range(int(seconds / 0.5)):
        clock.advance(0.5)
        await asyncio.sleep(0)
    running = False
    await asyncio.gather(*workers)
    await settle(manager)
    margin = manager.policy.advisory_fraction * lifetime
    assert refresher.calls <= math.ceil(seconds / (lifetime - margin)) + 1
    assert refresher.calls >= seconds / lifetime - 1
    if seconds <= 9 * lifetime:
        assert refresher.calls <= math.ceil(seconds / lifetime) + 1
    assert refresher.reuses == 0


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_a7_continuous_client_load_on_one_second_tokens_stays_bounded() -> None:
    """A7: 3 s of GETs on 1-second tokens: every GET succeeds, at most ceil(T/L)+1 refreshes."""
    seconds = 3.0
    async with (
        FakeActionstep(expires_in=1, reuse_detection=True) as fake,
        connected(fake, expires_in=1, concurrency=16) as (client, _first),
    ):
        deadline = time.monotonic() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                record = await client.get("actions", 1)
                assert record.id == 1
                done += 1

        await asyncio.gather(*(worker() for _ in range(16)))
        await settle(client.manager)
        refreshes = fake.counters.token_calls_by_grant["refresh_token"]
        assert done > 100
        assert 2 <= refreshes <= math.ceil(seconds / 1.0) + 1
        assert fake.counters.spent_token_reuses == 0


# -- B. cross-process ---------------------------------------------------------------------------


async def test_b12_sibling_with_a_stale_in_memory_token_refreshes_from_the_store(
    tmp_path: Path,
) -> None:
    """B12: a sibling holding a rotated-away token re-reads the file store, never presents it."""
    async with FakeActionstep(reuse_detection=True) as fake:
        directory = tmp_path / "tokens"
        a = TokenManager(oauth_for(fake), FileTokenStore(directory))
        late = SkewedClock()
        b = TokenManager(oauth_for(fake, clock=late), FileTokenStore(directory), clock=late)
        first = await a.save(KEY, fake.issue_token())
        assert (await b.token(KEY)).access_token == first.access_token  # B caches generation 1
        rotated = await a.refresh(KEY)  # A rotates; B's memory is now stale
        late.offset = 7200  # B's view: everything it holds is long expired
        fresh = await b.token(KEY)
        assert fresh.access_token not in (first.access_token, rotated.access_token)
        assert fake.counters.refresh_presented[first.refresh_token] == 1
        assert fake.counters.refresh_presented[rotated.refresh_token] == 1
        assert fake.counters.spent_token_reuses == 0
        await a.aclose()
        await b.aclose()


# -- C. network and server failures -----------------------------------------------------------


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
@pytest.mark.parametrize("loss", ["drop", "timeout"])
async def test_c14_refresh_answer_lost_after_rotation_never_re_presents_the_token(
    loss: str,
) -> None:
    """C14: the server rotated but the answer was lost: a typed error now, reauthorization next."""
    async with FakeActionstep(reuse_detection=True) as fake:
        if loss == "drop":
            fake.add_fault(FaultRule(kind="drop", resource="oauth/token", after=True, count=1))
            oauth = oauth_for(fake)
        else:
            fake.token_latency = 0.5
            oauth = oauth_for(fake, timeout=0.2)
        manager = TokenManager(oauth, policy=QUICK)
        first = await manager.save(KEY, fake.issue_token(expires_in=1))
        await asyncio.sleep(1.1)
        async with AsyncResourceClient(manager, KEY, retry=FAST) as client:
            with pytest.raises(TransportError):
                await client.get("actions", 1)
            await asyncio.sleep(0.7)  # past the manager's backoff (and the slow server's answer)
            for _ in range(3):
                with pytest.raises(ReauthorizationRequired, match="interrupted"):
                    await client.get("actions", 1)
            # A sibling process sharing the store is stopped by the claim in the store, too.
            sibling = TokenManager(
                oauth, manager.store, policy=RefreshPolicy(claim_timeout=0.3, claim_poll=0.02)
            )
            with pytest.raises(ReauthorizationRequired, match="interrupted"):
                await sibling.token(KEY)
        assert fake.counters.refresh_presented[first.refresh_token] == 1
        assert fake.counters.token_calls == 1
        assert fake.counters.spent_token_reuses == 0
        await manager.aclose()


@pytest.mark.parametrize("kind", ["html", "malformed"])
async def test_c19_malformed_refresh_answer_keeps_the_valid_token_and_stores_nothing(
    kind: str,
) -> None:
    """C19: an unusable 200 from the token endpoint changes nothing while the old token works."""
    async with FakeActionstep() as fake:
        fake.add_fault(FaultRule(kind=kind, resource="oauth/token", count=1))  # type: ignore[arg-type]
        clock = SkewedClock()
        policy = RefreshPolicy(jitter=0.0, backoff_base=0.05, backoff_cap=0.1)
        async with connected(fake, clock=clock, policy=policy, expires_in=3600) as (client, first):
            clock.offset = 3600 - 300  # advisory window: a background refresh starts
            assert (await client.manager.token(KEY)).access_token == first.access_token
            await settle(client.manager)
            assert fake.counters.token_calls == 1
            assert isinstance(client.manager._states[KEY].last_error, ResponseDecodeError)
            stored = await client.manager.store.load(KEY)
            assert stored is not None
            assert stored.access_token == first.access_token  # nothing new was stored
            assert (await client.get("actions", 1)).id == 1  # the old token still serves
            assert (await client.manager.token(KEY)).access_token == first.access_token


@pytest.mark.parametrize("kind", ["html", "malformed"])
async def test_c19_malformed_refresh_answer_after_expiry_is_a_typed_error_then_no_reuse(
    kind: str,
) -> None:
    """C19: with an expired token the garbage answer is a ResponseDecodeError, never a retry."""
    async with FakeActionstep(reuse_detection=True) as fake:
        fake.add_fault(FaultRule(kind=kind, resource="oauth/token", count=1))  # type: ignore[arg-type]
        async with connected(fake, policy=QUICK, expires_in=1) as (client, first):
            await asyncio.sleep(1.1)
            with pytest.raises(ResponseDecodeError, match="token response"):
                await client.get("actions", 1)
            stored = await client.manager.store.load(KEY)
            assert stored is not None
            assert stored.access_token == first.access_token
            await asyncio.sleep(0.2)
            # A 200 may have rotated the token: it is never presented a second time.
            with pytest.raises(ReauthorizationRequired):
                await client.get("actions", 1)
            assert fake.counters.refresh_presented[first.refresh_token] == 1
            assert fake.counters.spent_token_reuses == 0


async def test_c18_429_retry_after_from_the_token_endpoint_holds_every_caller_off() -> None:
    """C18: one 429 with Retry-After: 30 reaches all 100 waiters; no token call until it elapses."""
    async with FakeActionstep() as fake:
        fake.add_fault(
            FaultRule(kind="rate_limit", resource="oauth/token", retry_after=30, count=1)
        )
        clock = SkewedClock()
        async with connected(fake, clock=clock, expires_in=600) as (client, _first):
            clock.offset = 601  # expired in our eyes
            results = await asyncio.gather(
                *(client.manager.token(KEY) for _ in range(100)), return_exceptions=True
            )
            assert all(isinstance(r, TokenEndpointUnavailable) for r in results)
            assert {r.retry_after for r in results if isinstance(r, TransientError)} == {30.0}
            for offset in (601, 611, 625):
                clock.offset = offset
                with pytest.raises(TokenEndpointUnavailable):
                    await client.get("actions", 1)
            assert fake.counters.token_calls == 1
            clock.offset = 601 + 31
            assert (await client.get("actions", 1)).id == 1
            assert fake.counters.token_calls == 2


async def test_c20_answer_without_refresh_token_carries_the_old_one_forward_and_persists_it(
    tmp_path: Path,
) -> None:
    """C20: a refresh answer with no refresh_token keeps and stores the old one, merging scope."""
    async with FakeActionstep() as fake:
        original = fake.issue_token(scopes=("actions",))

        async def omit_refresh_token(request: Any, form: dict[str, str]) -> Any:
            document = {
                "access_token": f"at-omitted-{uuid.uuid4().hex}",
                "token_type": "bearer",
                "expires_in": 3600,
                "api_endpoint": fake.api_endpoint,
                "scope": "actions participants",
            }
            return aiohttp.web.json_response(document)

        fake._token = omit_refresh_token  # type: ignore[method-assign]
        store = FileTokenStore(tmp_path / "tokens")
        manager = TokenManager(oauth_for(fake), store)
        await manager.save(KEY, original)
        fresh = await manager.refresh(KEY)
        await manager.aclose()
        reloaded = await FileTokenStore(tmp_path / "tokens").load(KEY)
        assert reloaded is not None
        assert reloaded.access_token == fresh.access_token != original.access_token
        assert reloaded.refresh_token == original.refresh_token
        assert reloaded.scopes == ("actions", "participants")
        assert reloaded.orgkey == original.orgkey


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_c21_caller_times_out_but_the_shielded_refresh_is_persisted_and_used() -> None:
    """C21: a caller's own timeout does not abandon a slow refresh; later requests use it."""
    async with (
        FakeActionstep(token_latency=0.6, reuse_detection=True) as fake,
        connected(fake, expires_in=1) as (client, first),
    ):
        await asyncio.sleep(1.1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("actions", 1), timeout=0.2)

        async def rotated() -> bool:
            stored = await client.manager.store.load(KEY)
            return stored is not None and stored.access_token != first.access_token

        await eventually(rotated)
        assert (await client.get("actions", 1)).id == 1
        stored = await client.manager.store.load(KEY)
        assert stored is not None
        assert (await client.manager.token(KEY)).access_token == stored.access_token
        assert stored.refresh_claimed_at is None
        assert fake.counters.token_calls == 1
        assert api_requests(fake, 401) == 0


# -- E. time and clock ----------------------------------------------------------------------------


async def test_e26_local_clock_five_minutes_behind_recovers_with_one_reactive_refresh() -> None:
    """E26: a clock 5 min slow keeps using an expired token; the 401s cost exactly one refresh."""
    async with FakeActionstep(reuse_detection=True) as fake:
        slow = SkewedClock(-300)
        async with connected(fake, clock=slow, expires_in=1, concurrency=20) as (client, _first):
            await asyncio.sleep(1.1)  # expired at the server; 299 s left in our eyes
            records = await asyncio.gather(*(client.get("actions", 1) for _ in range(20)))
            assert all(r.id == 1 for r in records)
            assert fake.counters.token_calls == 1
            unauthorized = api_requests(fake, 401)
            assert 1 <= unauthorized <= 20
            records = await asyncio.gather(*(client.get("actions", 1) for _ in range(20)))
            assert api_requests(fake, 401) == unauthorized  # the new token is good
            assert fake.counters.token_calls == 1
            assert fake.counters.spent_token_reuses == 0


async def test_e26_local_clock_five_minutes_ahead_refreshes_once_not_in_a_storm() -> None:
    """E26: a clock 5 min fast sees the token expired early, refreshes once, trusts the result."""
    async with FakeActionstep(reuse_detection=True) as fake:
        fast = SkewedClock(300)
        async with connected(fake, clock=fast, expires_in=200, concurrency=20) as (client, _):
            for _ in range(10):
                records = await asyncio.gather(*(client.get("actions", 1) for _ in range(20)))
                assert all(r.id == 1 for r in records)
            assert fake.counters.token_calls == 1
            assert api_requests(fake, 401) == 0
            token = await client.manager.token(KEY)
            assert token.expires_at - fast() > 3000  # the new token is considered valid


async def test_e27_clock_jump_forward_between_check_and_use_refreshes_once() -> None:
    """E27: a jump of two hours after a fresh check (VM resume) gives 1,000 callers one refresh."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=3600.0)
    manager = TokenManager(refresher, clock=clock)
    await manager.save(KEY, refresher.mint())
    assert (await manager.token(KEY)).access_token == "access-1"
    clock.advance(7200)
    tokens = await asyncio.gather(*(manager.token(KEY) for _ in range(1000)))
    assert {t.access_token for t in tokens} == {"access-2"}
    assert all(t.expires_at > clock() for t in tokens)
    assert refresher.calls == 1


async def test_e27_clock_jump_backwards_neither_refreshes_nor_busy_loops() -> None:
    """E27: a day-long backwards step serves the token as is, then re-evaluates on return."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=3600.0)
    manager = TokenManager(refresher, clock=clock)
    await manager.save(KEY, refresher.mint())
    clock.advance(-86400)
    for _ in range(1000):
        assert (await manager.token(KEY)).access_token == "access-1"
    assert refresher.calls == 0
    clock.advance(86400 + 3601)
    assert (await manager.token(KEY)).access_token == "access-2"
    assert refresher.calls == 1


async def test_e27_clock_jump_backwards_while_waiting_on_a_live_claim_does_not_busy_loop() -> None:
    """E27: a backwards step while waiting for a sibling's refresh keeps polling at claim_poll."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=3600.0)
    loads = 0

    class CountingStore(MemoryTokenStore):
        async def load(self, key: str) -> Token | None:
            nonlocal loads
            loads += 1
            return await super().load(key)

    store = CountingStore()
    manager = TokenManager(
        refresher, store, clock=clock, policy=RefreshPolicy(claim_poll=0.05, claim_timeout=60)
    )
    first = await manager.save(KEY, refresher.mint())
    clock.advance(3601)
    # A sibling process claimed the refresh token a moment ago and is still at the server.
    await store.compare_and_set(
        KEY, attrs.evolve(first, refresh_claimed_at=clock()), expected_version=first.version
    )
    waiter = asyncio.create_task(manager.token(KEY))
    await asyncio.sleep(0.05)
    clock.advance(-3600)  # the claim now looks an hour in the future
    loads = 0
    await asyncio.sleep(0.5)
    assert not waiter.done()
    assert loads <= 0.5 / 0.05 + 2  # polling at claim_poll, not spinning
    sibling_result = refresher.mint()
    await store.compare_and_set(KEY, sibling_result, expected_version=first.version + 1)
    token = await asyncio.wait_for(waiter, timeout=2)
    assert token.access_token == sibling_result.access_token
    assert refresher.calls == 0


async def test_e28_restart_with_a_persisted_expired_token_refreshes_without_a_401(
    tmp_path: Path,
) -> None:
    """E28: a restarted process restores the absolute expiry and refreshes before any request."""
    directory = tmp_path / "tokens"
    async with FakeActionstep(reuse_detection=True) as fake:
        before = TokenManager(oauth_for(fake), FileTokenStore(directory))
        first = await before.save(KEY, fake.issue_token(expires_in=1))
        await before.aclose()
        await asyncio.sleep(1.1)
        # "Restart": new store object, new manager, new client; nothing shared but the files.
        after = TokenManager(oauth_for(fake), FileTokenStore(directory))
        restored = await after.load(KEY)
        assert restored is not None
        assert restored.expires_at == first.expires_at
        assert restored.issued_at == first.issued_at
        async with AsyncResourceClient(after, KEY, retry=FAST) as client:
            assert (await client.get("actions", 1)).id == 1
        await after.aclose()
        assert api_requests(fake, 401) == 0
        assert api_requests(fake) == 1
        assert fake.counters.token_calls == 1
        assert fake.counters.refresh_presented[first.refresh_token] == 1


# -- F. reactive 401 path -------------------------------------------------------------------------


async def test_f30_one_hundred_client_calls_after_server_revocation_refresh_once() -> None:
    """F30: 100 concurrent GETs on a revoked token: one refresh, all succeed, each replays once."""
    revoked_sends = 0
    total_sends = 0
    revoked: Token | None = None

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        nonlocal revoked_sends, total_sends
        total_sends += 1
        if revoked is not None and params.headers["Authorization"] == revoked.authorization:
            revoked_sends += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with (
        FakeActionstep(reuse_detection=True) as fake,
        aiohttp.ClientSession(
            trace_configs=[trace], connector=aiohttp.TCPConnector(limit=0)
        ) as session,
        connected(fake, session=session, concurrency=100) as (client, first),
    ):
        revoked = first
        fake.revoke_access_token(first.access_token)
        records = await asyncio.gather(*(client.get("actions", 1) for _ in range(100)))
        assert all(r.id == 1 for r in records)
        assert fake.counters.token_calls == 1
        assert api_requests(fake, 200) == 100
        assert api_requests(fake, 401) == revoked_sends <= 100
        assert total_sends == 100 + revoked_sends  # a request is repeated at most once


async def test_f31_permanent_401_surfaces_after_one_refresh_for_many_callers() -> None:
    """F31: a 401 that is about permissions: 70 calls raise UnauthorizedError after one refresh."""
    async with FakeActionstep() as fake:
        fake.add_fault(FaultRule(kind="status", status=401, resource="actions"))
        async with connected(fake, concurrency=50) as (client, _first):
            results = await asyncio.gather(
                *(client.get("actions", 1) for _ in range(50)), return_exceptions=True
            )
            for _ in range(20):
                with pytest.raises(UnauthorizedError):
                    await client.get("actions", 1)
            assert all(isinstance(r, UnauthorizedError) for r in results)
            assert fake.counters.token_calls == 1
            assert api_requests(fake) <= 2 * 50 + 20
            # Other resources are unaffected and use the refreshed token without a new refresh.
            assert (await client.get("participants", 1)).id == 1
            assert fake.counters.token_calls == 1


async def test_f31_anti_storm_cooldown_never_blocks_refreshing_an_expired_token() -> None:
    """F31: a 401 on a token that expired is refreshed even inside the 401 cooldown."""
    clock = FakeClock()
    refresher = GenerationRefresher(clock, lifetime=5.0)  # shorter than the 10 s cooldown
    manager = TokenManager(refresher, clock=clock)
    first = await manager.save(KEY, refresher.mint())
    second = await manager.token_rejected(KEY, first)  # a 401-triggered refresh
    assert second.access_token == "access-2"
    # Moments later the same token is refused again: permissions, not the token. No refresh.
    assert (await manager.token_rejected(KEY, second)).access_token == "access-2"
    assert refresher.calls == 1
    clock.advance(6.0)  # expired, still inside the cooldown: this 401 is about expiry
    third = await manager.token_rejected(KEY, second)
    assert third.access_token == "access-3"
    assert refresher.calls == 2
    assert refresher.reuses == 0


# -- G. event loop, cancellation and lifecycle ------------------------------------------------


async def test_g34_every_waiter_cancelled_the_refresh_still_completes_and_is_persisted() -> None:
    """G34: cancelling all 20 callers mid-refresh does not abandon the spent refresh token."""
    async with FakeActionstep(token_latency=0.3, reuse_detection=True) as fake:
        manager = TokenManager(oauth_for(fake))
        first = await manager.save(KEY, fake.issue_token(expires_in=1))
        await asyncio.sleep(1.1)
        waiters = [asyncio.create_task(manager.token(KEY)) for _ in range(20)]
        await eventually(_async(lambda: fake.counters.token_calls == 1))
        for waiter in waiters:
            waiter.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

        async def persisted() -> bool:
            stored = await manager.store.load(KEY)
            return stored is not None and stored.access_token != first.access_token

        await eventually(persisted)
        stored = await manager.store.load(KEY)
        assert stored is not None
        assert stored.refresh_claimed_at is None
        assert (await manager.token(KEY)).access_token == stored.access_token
        assert fake.counters.token_calls == 1
        await manager.aclose()


@contextlib.contextmanager
def fake_in_thread(**options: Any) -> Iterator[FakeActionstep]:
    """A FakeActionstep serving from a loop in its own thread, so tests can run other loops."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> FakeActionstep:
        fake = FakeActionstep(**options)
        await fake.start()
        return fake

    fake = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_g35_one_manager_serves_successive_event_loops(kind: str, tmp_path: Path) -> None:
    """G35: a manager (and its store) used from three asyncio.run loops in turn just works."""
    with fake_in_thread(reuse_detection=True) as fake:
        store: TokenStore = (
            MemoryTokenStore() if kind == "memory" else FileTokenStore(tmp_path / "tokens")
        )
        # Two managers sharing the store: their refreshes contend for the store's lock.
        managers = [TokenManager(oauth_for(fake), store) for _ in range(2)]

        async def one_loop(first_run: bool) -> str:
            if first_run:
                await managers[0].save(KEY, fake.issue_token())
            async with AsyncResourceClient(managers[0], KEY, retry=FAST) as client:
                results = await asyncio.gather(
                    managers[0].refresh(KEY), managers[1].refresh(KEY), client.get("actions", 1)
                )
                assert (await client.get("actions", 1)).id == 1
            assert results[0].access_token == results[1].access_token  # one refresh, adopted
            return results[0].access_token

        seen = {asyncio.run(one_loop(first)) for first in (True, False, False)}
        assert len(seen) == 3
        assert fake.counters.token_calls == 3
        assert fake.counters.spent_token_reuses == 0


@pytest.mark.slow  # long: takes seconds, kept out of quick local runs
async def test_g36_aclose_during_a_refresh_waits_for_it_and_persists_the_result() -> None:
    """G36: closing mid-refresh lets the refresh finish and save; later refreshes are refused."""
    async with FakeActionstep(token_latency=0.4, reuse_detection=True) as fake:
        manager = TokenManager(oauth_for(fake))
        first = await manager.save(KEY, fake.issue_token(expires_in=1))
        await asyncio.sleep(1.1)
        waiters = [asyncio.create_task(manager.token(KEY)) for _ in range(10)]
        await eventually(_async(lambda: fake.counters.token_calls == 1))
        await manager.aclose()
        assert all(w.done() for w in waiters)
        tokens = {w.result().access_token for w in waiters}
        stored = await manager.store.load(KEY)
        assert stored is not None
        assert tokens == {stored.access_token}
        assert stored.access_token != first.access_token
        assert stored.refresh_claimed_at is None
        # Closed: the fresh token is still served, but nothing new is sent to the server.
        assert (await manager.token(KEY)).access_token == stored.access_token
        with pytest.raises(TokenStoreError, match="closed"):
            await manager.refresh(KEY)
        assert fake.counters.token_calls == 1


def _async(check: Callable[[], bool]) -> Callable[[], Any]:
    async def condition() -> bool:
        return check()

    return condition


# -- H. isolation and secrecy -----------------------------------------------------------------

TENANTS = [
    "a-b:c",
    "a:b-c",
    "a-b" + "c",
    "a" + "b-c",
    "a/b",
    "a%2Fb",
    "a_b",
    "A_b",
    "é",
    "e\u0301",
    "tenant 1",
    "tenant%201",
    "..",
    "%sha256-" + "0" * 64,
    "x" * 300,
    "x" * 299 + "y",
]


@pytest.fixture
async def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TokenStore]:
    if request.param == "memory":
        yield MemoryTokenStore()
    elif request.param == "file":
        yield FileTokenStore(tmp_path / "tokens")
    else:
        client = aioredis.Redis(host="127.0.0.1", port=6379)
        prefix = f"actionstep-test-{uuid.uuid4().hex}:"
        yield RedisTokenStore(client, prefix=prefix)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.mark.parametrize("shared_store", ["memory", "file", "redis"], indirect=True)
async def test_h37_tenants_with_colliding_spellings_never_get_each_others_tokens(
    shared_store: TokenStore,
) -> None:
    """H37: keys that collide once concatenated or encoded each keep their own token chain."""
    async with FakeActionstep(reuse_detection=True) as fake:
        clock = SkewedClock()
        manager = TokenManager(oauth_for(fake, clock=clock), shared_store, clock=clock)
        firsts = {key: await manager.save(key, fake.issue_token()) for key in TENANTS}
        clock.offset = 7200  # every tenant's token is expired: all refresh at once
        fresh = dict(zip(TENANTS, await asyncio.gather(*map(manager.token, TENANTS)), strict=True))
        assert fake.counters.token_calls == len(TENANTS)
        assert len({t.access_token for t in fresh.values()}) == len(TENANTS)
        for key in TENANTS:
            assert fake.counters.refresh_presented[firsts[key].refresh_token] == 1
            stored = await shared_store.load(key)
            assert stored is not None
            assert stored.access_token == fresh[key].access_token
        # Revoking one tenant's family affects that tenant only.
        victim = TENANTS[0]
        fake.revoke_token_family(fresh[victim].access_token)
        for key in TENANTS:
            async with AsyncResourceClient(manager, key, retry=FAST) as client:
                if key == victim:
                    with pytest.raises(ReauthorizationRequired):
                        await client.get("actions", 1)
                else:
                    assert (await client.get("actions", 1)).id == 1
        assert fake.counters.spent_token_reuses == 0
        await manager.aclose()


async def test_h38_debug_logs_of_a_faulty_full_flow_never_contain_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """H38: DEBUG logs, reprs, errors and tracebacks of a faulty full flow carry no secret."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with FakeActionstep(reuse_detection=True) as fake:
        clock = SkewedClock()
        oauth = oauth_for(fake, clock=clock, timeout=0.3)
        manager = TokenManager(oauth, clock=clock, policy=QUICK)
        code = fake.issue_code(("all",))
        first = await manager.save(KEY, await oauth.exchange_code(code))
        async with AsyncResourceClient(manager, KEY, retry=FAST, timeout=0.3) as client:
            texts += [repr(oauth), str(first), repr(first), repr(manager), repr(client)]
            fake.add_fault(FaultRule(kind="status", status=503, count=2))
            fake.add_fault(FaultRule(kind="drop", method="GET", count=1))
            assert (await client.get("actions", 1)).id == 1
            failures: list[BaseException] = []

            async def attempt(call: Any) -> None:
                try:
                    await call
                except Exception as exc:
                    failures.append(exc)

            # The token expires; its refresh first meets a 503, then succeeds after the backoff.
            fake.add_fault(FaultRule(kind="status", status=503, resource="oauth/token", count=1))
            clock.offset = 7200
            await attempt(client.get("actions", 1))
            await asyncio.sleep(0.2)
            assert (await client.get("actions", 1)).id == 1
            # Revoked server-side: the 401 path refreshes and retries.
            fake.revoke_access_token((await manager.token(KEY)).access_token)
            assert (await client.get("actions", 1)).id == 1
            # Garbage and permission errors from the API.
            fake.add_fault(FaultRule(kind="html", count=1))
            fake.add_fault(FaultRule(kind="status", status=401, resource="participants"))
            await attempt(client.get("actions", 1))
            await attempt(client.get("participants", 1))
            # An HTML 200 from the token endpoint, then the refusal to re-present that token.
            fake.add_fault(FaultRule(kind="html", resource="oauth/token", count=1))
            clock.offset += 7200
            await attempt(client.get("actions", 1))
            await asyncio.sleep(0.2)
            await attempt(client.get("actions", 1))
        await manager.aclose()
        assert [type(f).__name__ for f in failures] == [
            "TokenEndpointUnavailable",
            "ResponseDecodeError",
            "UnauthorizedError",
            "ResponseDecodeError",
            "ReauthorizationRequired",
        ]
        assert fake.counters.token_calls == 5  # code, 503, refresh, 401 refresh, HTML
        for exc in failures:
            texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        stored = await manager.store.load(KEY)
        texts.append(repr(stored))
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    secrets = {*issued_secrets(), fake.client_secret, code, first.access_token}
    assert first.refresh_token in secrets
    leaks = [t for t in texts if any(secret in t for secret in secrets)]
    assert leaks == []
    assert any("refresh" in r.getMessage() for r in caplog.records)  # the logs were really on
