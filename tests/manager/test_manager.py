"""TokenManager semantics with an in-process rotating refresher and a hand-moved clock."""

from __future__ import annotations

import asyncio
import logging
import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actionstep_async import (
    ConnectError,
    MemoryTokenStore,
    ReauthorizationRequired,
    RefreshPolicy,
    Token,
    TokenEndpointUnavailable,
    TokenManager,
    TokenStoreError,
)

from .conftest import FakeClock, RotatingRefresher

NO_JITTER = RefreshPolicy(jitter=0.0)


async def settle() -> None:
    """Let background refreshes and hooks started by the manager run to completion."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.gather(*others, return_exceptions=True)


async def manager_with_token(
    refresher: RotatingRefresher, clock: FakeClock, **kwargs: object
) -> tuple[TokenManager, Token]:
    manager = TokenManager(refresher, clock=clock, policy=NO_JITTER, **kwargs)  # type: ignore[arg-type]
    first = await manager.save("org-a", refresher.first_token())
    return manager, first


async def test_fresh_token_is_returned_without_refreshing(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """A token outside its refresh windows is served from memory with no token call."""
    manager, first = await manager_with_token(refresher, clock)
    assert (await manager.token("org-a")).access_token == first.access_token
    assert refresher.calls == 0


async def test_ten_thousand_callers_on_an_expired_token_cause_one_refresh(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """10,000 concurrent callers with an expired token trigger exactly one refresh."""
    manager, _first = await manager_with_token(refresher, clock)
    clock.advance(3601)
    refresher.delay = 0.01
    tokens = await asyncio.gather(*(manager.token("org-a") for _ in range(10_000)))
    assert refresher.calls == 1
    assert {t.access_token for t in tokens} == {"access-2"}
    assert refresher.reuses == 0
    stored = await manager.store.load("org-a")
    assert stored is not None
    assert stored.access_token == "access-2"
    assert stored.refresh_claimed_at is None


async def test_advisory_window_refreshes_in_background_without_blocking(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """Inside the advisory window one refresh starts and none of 1,000 callers waits for it."""
    manager, first = await manager_with_token(refresher, clock)
    clock.advance(3600 - 300)  # 5 minutes left: advisory (6 min) but not mandatory (1 min)
    refresher.gate = asyncio.Event()
    tokens = await asyncio.wait_for(
        asyncio.gather(*(manager.token("org-a") for _ in range(1000))), timeout=5
    )
    assert {t.access_token for t in tokens} == {first.access_token}
    await asyncio.sleep(0)
    assert refresher.calls == 1
    refresher.gate.set()
    await manager.aclose()
    assert (await manager.token("org-a")).access_token == "access-2"
    assert refresher.calls == 1


async def test_mandatory_window_failure_reaches_every_waiter_once(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """After expiry all callers share one failed attempt, then back off instead of retrying."""
    manager, _ = await manager_with_token(refresher, clock)
    clock.advance(3601)
    refresher.failures.append(TokenEndpointUnavailable("down", status=503))
    results = await asyncio.gather(
        *(manager.token("org-a") for _ in range(100)), return_exceptions=True
    )
    assert all(isinstance(r, TokenEndpointUnavailable) for r in results)
    assert refresher.calls == 1
    # Within the backoff, callers fail fast without another token call.
    with pytest.raises(TokenEndpointUnavailable):
        await manager.token("org-a")
    assert refresher.calls == 1
    clock.advance(400)
    assert (await manager.token("org-a")).access_token == "access-2"
    assert refresher.calls == 2
    assert refresher.reuses == 0


async def test_transient_failure_in_advisory_window_keeps_current_token(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """A 503 during an advisory refresh leaves callers on the valid token and backs off."""
    manager, first = await manager_with_token(refresher, clock)
    clock.advance(3600 - 300)
    refresher.failures.append(TokenEndpointUnavailable("down", status=503, retry_after=30))
    assert (await manager.token("org-a")).access_token == first.access_token
    await settle()
    assert refresher.calls == 1
    clock.advance(10)  # still inside Retry-After: no new attempt
    assert (await manager.token("org-a")).access_token == first.access_token
    await asyncio.sleep(0)
    assert refresher.calls == 1
    clock.advance(25)
    await manager.token("org-a")
    await settle()
    assert refresher.calls == 2
    assert (await manager.token("org-a")).access_token == "access-2"


async def test_a_handled_refresh_failure_is_logged_as_info_not_warning(
    refresher: RotatingRefresher, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A transient token-endpoint failure the manager retries is expected: INFO, not WARNING."""
    manager, first = await manager_with_token(refresher, clock)
    clock.advance(3600 - 300)
    refresher.failures.append(TokenEndpointUnavailable("down", status=503, retry_after=30))
    with caplog.at_level(logging.DEBUG, logger="actionstep_async"):
        assert (await manager.token("org-a")).access_token == first.access_token
        await settle()
    failed = [r for r in caplog.records if "token refresh failed" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.INFO]


async def test_mandatory_failure_with_unexpired_token_still_serves_it(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """In the mandatory window a failing refresh does not fail callers while the token works."""
    manager, first = await manager_with_token(refresher, clock)
    clock.advance(3600 - 30)
    refresher.failures.append(ConnectError("refused"))
    assert (await manager.token("org-a")).access_token == first.access_token
    assert refresher.calls == 1


async def test_cancelled_caller_does_not_cancel_the_refresh(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """Cancelling the caller that started a refresh lets it finish, save, and serve the others."""
    manager, _ = await manager_with_token(refresher, clock)
    clock.advance(3601)
    refresher.gate = asyncio.Event()
    starter = asyncio.create_task(manager.token("org-a"))
    await asyncio.sleep(0.01)
    others = [asyncio.create_task(manager.token("org-a")) for _ in range(10)]
    await asyncio.sleep(0.01)
    starter.cancel()
    await asyncio.sleep(0.01)
    refresher.gate.set()
    tokens = await asyncio.gather(*others)
    assert starter.cancelled()
    assert {t.access_token for t in tokens} == {"access-2"}
    stored = await manager.store.load("org-a")
    assert stored is not None
    assert stored.access_token == "access-2"
    assert refresher.calls == 1


async def test_concurrent_401s_for_the_same_token_refresh_once(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """100 concurrent token_rejected calls for one revoked token cause exactly one refresh."""
    manager, first = await manager_with_token(refresher, clock)
    refresher.delay = 0.01
    tokens = await asyncio.gather(*(manager.token_rejected("org-a", first) for _ in range(100)))
    assert refresher.calls == 1
    assert {t.access_token for t in tokens} == {"access-2"}
    # A late 401 for the old token gets the replacement without another refresh.
    assert (await manager.token_rejected("org-a", first)).access_token == "access-2"
    assert refresher.calls == 1


async def test_repeated_401_on_a_brand_new_token_does_not_storm(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """A 401 on a token that a 401-refresh just produced returns it instead of refreshing again."""
    manager, first = await manager_with_token(refresher, clock)
    second = await manager.token_rejected("org-a", first)
    again = await manager.token_rejected("org-a", second)
    assert again.access_token == second.access_token
    assert refresher.calls == 1
    clock.advance(60)
    third = await manager.token_rejected("org-a", second)
    assert third.access_token != second.access_token
    assert refresher.calls == 2


async def test_invalid_grant_is_remembered_and_reported_once(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """invalid_grant with nothing newer stored raises, fires the hook once, and is remembered."""
    seen: list[str] = []
    manager, _ = await manager_with_token(
        refresher, clock, on_reauthorization_required=lambda key, exc: seen.append(key)
    )
    clock.advance(3601)
    refresher.failures.append(ReauthorizationRequired("invalid_grant"))
    for _ in range(5):
        with pytest.raises(ReauthorizationRequired) as info:
            await manager.token("org-a")
        assert info.value.key == "org-a"
    assert refresher.calls == 1
    assert seen == ["org-a"]
    clock.advance(manager.policy.reauthorization_ttl + 1)
    assert (await manager.token("org-a")).access_token == "access-2"


async def test_invalid_grant_after_another_process_rotated_adopts_its_token(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """If the store holds a newer token when invalid_grant arrives, it is adopted silently."""
    manager, first = await manager_with_token(refresher, clock)
    clock.advance(3601)
    other = refresher.first_token(access_token="access-other", refresh_token="refresh-other")

    class RotatedElsewhere(RotatingRefresher):
        async def refresh(self, token: Token) -> Token:
            stored = await manager.store.load("org-a")
            assert stored is not None
            # Another host (with an expired lock) saves its result while our request is out.
            await manager.store.compare_and_set(
                "org-a", attrs.evolve(other), expected_version=stored.version
            )
            raise ReauthorizationRequired("invalid_grant")

    manager.refresher = RotatedElsewhere(clock)
    token = await manager.token("org-a")
    assert token.access_token == "access-other"
    assert first.version == 1


async def test_no_stored_token_requires_authorization(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """Asking for a key nobody authorized raises ReauthorizationRequired naming the key."""
    manager = TokenManager(refresher, clock=clock)
    with pytest.raises(ReauthorizationRequired, match="authorize first"):
        await manager.token("nobody")
    with pytest.raises(ReauthorizationRequired):
        await manager.refresh("nobody")


async def test_token_saved_by_another_process_is_adopted_without_refreshing(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """A sibling process's fresh token in the store is used instead of refreshing again."""
    store = MemoryTokenStore()
    ours = TokenManager(refresher, store, clock=clock, policy=NO_JITTER)
    theirs = TokenManager(refresher, store, clock=clock, policy=NO_JITTER)
    await ours.save("org-a", refresher.first_token())
    await theirs.token("org-a")
    clock.advance(3601)
    fresh = await theirs.token("org-a")
    assert refresher.calls == 1
    assert (await ours.token("org-a")).access_token == fresh.access_token
    assert refresher.calls == 1
    assert refresher.reuses == 0


async def test_slow_refresh_of_one_tenant_does_not_delay_another(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """Tenant B's refresh completes while tenant A's refresh is still blocked."""
    manager = TokenManager(refresher, clock=clock, policy=NO_JITTER)
    await manager.save("tenant-a", refresher.first_token())
    await manager.save("tenant-b", refresher.first_token())
    clock.advance(3601)
    gate = asyncio.Event()

    class Slow(RotatingRefresher):
        async def refresh(self, token: Token) -> Token:
            if token.access_token == "access-1":
                await gate.wait()
            return await refresher.refresh(token)

    manager.refresher = Slow(clock)
    slow = asyncio.create_task(manager.token("tenant-a"))
    b = await asyncio.wait_for(manager.token("tenant-b"), timeout=2)
    assert b.access_token.startswith("access-")
    assert not slow.done()
    gate.set()
    assert (await slow).access_token != "access-1"


async def test_failed_save_keeps_new_token_and_never_uses_the_stale_one(
    refresher: RotatingRefresher, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """When the store write fails, the new token is used from memory and saved later."""

    class FlakyStore(MemoryTokenStore):
        fail_writes = 0

        async def compare_and_set(
            self, key: str, token: Token, *, expected_version: int
        ) -> Token | None:
            if self.fail_writes and token.refresh_claimed_at is None:
                self.fail_writes -= 1
                raise TokenStoreError("disk full")
            return await super().compare_and_set(key, token, expected_version=expected_version)

    store = FlakyStore()
    manager = TokenManager(
        refresher,
        store,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0, save_retry_base=0.01, save_retry_cap=0.02),
    )
    await manager.save("org-a", refresher.first_token())
    clock.advance(3601)
    store.fail_writes = 2
    with caplog.at_level(logging.ERROR, logger="actionstep_async.tokens"):
        token = await manager.token("org-a")
    assert token.access_token == "access-2"
    assert "could not be saved" in caplog.text
    # Before the save lands, another expiry refreshes from the in-memory token, not the store.
    clock.advance(3601)
    assert (await manager.token("org-a")).access_token == "access-3"
    assert refresher.reuses == 0
    for _ in range(100):
        await asyncio.sleep(0.01)
        stored = await store.load("org-a")
        if stored is not None and stored.access_token == "access-3":
            break
    stored = await store.load("org-a")
    assert stored is not None
    assert stored.access_token == "access-3"
    await manager.aclose()


async def test_refresh_hook_runs_and_a_failing_hook_is_contained(
    refresher: RotatingRefresher, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """on_refresh receives each new token; an exception in a hook is logged, not raised."""
    seen: list[str] = []

    async def record(key: str, token: Token) -> None:
        seen.append(token.access_token)

    manager, _first = await manager_with_token(refresher, clock, on_refresh=record)
    await manager.refresh("org-a")
    await settle()
    assert seen == ["access-2"]

    def explode(key: str, token: Token) -> None:
        raise RuntimeError("hook bug")

    manager.on_refresh = explode
    with caplog.at_level(logging.ERROR):
        token = await manager.refresh("org-a")
    assert token.access_token == "access-3"
    assert "hook" in caplog.text


async def test_interrupted_refresh_claim_blocks_reuse_of_the_refresh_token(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """A claim left by a process that died mid-refresh leads to reauthorization, never reuse."""
    manager, _first = await manager_with_token(refresher, clock)
    stored = await manager.store.load("org-a")
    assert stored is not None
    # Simulate a crashed sibling: it claimed the refresh token and never saved a result.
    await manager.store.compare_and_set(
        "org-a",
        attrs.evolve(stored, refresh_claimed_at=clock()),
        expected_version=stored.version,
    )
    sibling = TokenManager(refresher, manager.store, clock=clock, policy=NO_JITTER)
    clock.advance(3601)
    with pytest.raises(ReauthorizationRequired, match="interrupted"):
        await sibling.token("org-a")
    assert refresher.calls == 0


async def test_live_claim_is_waited_for_and_its_result_adopted(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """A sibling still refreshing (claim younger than the timeout) is waited for, not raced."""
    manager, _first = await manager_with_token(refresher, clock)
    clock.advance(3601)
    stored = await manager.store.load("org-a")
    assert stored is not None
    claimed = attrs.evolve(stored, refresh_claimed_at=clock())
    await manager.store.compare_and_set("org-a", claimed, expected_version=stored.version)
    sibling = TokenManager(
        refresher, manager.store, clock=clock, policy=RefreshPolicy(jitter=0.0, claim_poll=0.01)
    )
    waiter = asyncio.create_task(sibling.token("org-a"))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    result = refresher.first_token(access_token="from-sibling", refresh_token="r-sibling")
    await manager.store.compare_and_set("org-a", result, expected_version=stored.version + 1)
    token = await asyncio.wait_for(waiter, timeout=2)
    assert token.access_token == "from-sibling"
    assert refresher.calls == 0


async def test_secrets_stay_out_of_manager_repr_and_logs(
    refresher: RotatingRefresher, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Manager repr and DEBUG logs through refreshes and failures carry no token values."""
    with caplog.at_level(logging.DEBUG):
        manager, _first = await manager_with_token(refresher, clock)
        clock.advance(3601)
        await manager.token("org-a")
        clock.advance(3601)
        refresher.failures.append(ReauthorizationRequired("invalid_grant"))
        with pytest.raises(ReauthorizationRequired) as info:
            await manager.token("org-a")
    output = caplog.text + repr(manager) + str(info.value) + repr(info.value)
    for n in (1, 2, 3):
        assert f"access-{n}" not in output
        assert f"refresh-{n}" not in output
    assert "refreshed token for 'org-a'" in caplog.text


@pytest.mark.parametrize("lifetime", [59.0, 900.0, 3600.0, 43200.0])
def test_refresh_windows_scale_with_lifetime(lifetime: float) -> None:
    """Every lifetime gets windows strictly inside it: never immediately, never after expiry."""
    policy = RefreshPolicy()
    token = Token("a", "r", expires_at=lifetime, issued_at=0.0, api_endpoint="x")
    for seed in range(50):
        advisory_at, mandatory_at = policy.windows(token, random.Random(seed))
        assert 0 < advisory_at <= mandatory_at < lifetime
        assert advisory_at >= lifetime * 0.9
        assert lifetime - mandatory_at <= 60


@given(
    lifetime=st.floats(min_value=1.0, max_value=10 * 86400),
    fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_jitter_keeps_the_advisory_point_inside_its_band(lifetime: float, fraction: float) -> None:
    """Property: jittered advisory starts fall between half and all of the advisory margin."""
    policy = RefreshPolicy()
    token = Token("a", "r", expires_at=lifetime, issued_at=0.0, api_endpoint="x")

    class Fixed(random.Random):
        def random(self) -> float:
            return fraction

    advisory_at, mandatory_at = policy.windows(token, Fixed())
    margin = min(policy.advisory_cap, policy.advisory_fraction * lifetime)
    assert lifetime - margin - 1e-6 <= advisory_at <= lifetime - margin / 2 + 1e-6
    assert advisory_at <= mandatory_at


def test_policy_rejects_overlapping_windows() -> None:
    """A mandatory window wider than the jittered advisory one is a configuration mistake."""
    with pytest.raises(ValueError, match="mandatory_fraction"):
        RefreshPolicy(mandatory_fraction=0.2)


async def test_store_that_lost_the_key_is_restored_from_memory(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """If the store forgets a key (Redis restart), the next refresh uses and re-saves our copy.

    The copy goes back at once, marked unconfirmed; its refresh token is spent only after the
    quarantine, in case a peer holds a newer copy.
    """
    manager, first = await manager_with_token(refresher, clock)
    await manager.token("org-a")
    await manager.store.delete("org-a")
    clock.advance(3601)
    waiter = asyncio.create_task(manager.token("org-a"))
    restored = None
    for _ in range(200):
        await asyncio.sleep(0.01)
        restored = await manager.store.load("org-a")
        if restored is not None:
            break
    assert restored is not None
    assert restored.access_token == first.access_token
    assert restored.restored_at == clock()
    assert not waiter.done()
    assert refresher.calls == 0
    clock.advance(manager.policy.restore_quarantine)
    token = await asyncio.wait_for(waiter, timeout=5)
    assert token.access_token == "access-2"
    assert refresher.presented[first.refresh_token] == 1
    stored = await manager.store.load("org-a")
    assert stored is not None
    assert stored.access_token == "access-2"


async def test_401_cooldown_still_adopts_a_newer_token_from_a_sibling(
    refresher: RotatingRefresher, clock: FakeClock
) -> None:
    """Within the anti-storm cooldown, a token another process stored is used, not the old one."""
    manager, first = await manager_with_token(refresher, clock)
    second = await manager.token_rejected("org-a", first)
    stored = await manager.store.load("org-a")
    assert stored is not None
    sibling = refresher.first_token(access_token="from-sibling", refresh_token="r-sibling")
    await manager.store.compare_and_set("org-a", sibling, expected_version=stored.version)
    again = await manager.token_rejected("org-a", second)
    assert again.access_token == "from-sibling"
    assert refresher.calls == 1


class _CountingStore(MemoryTokenStore):
    """Counts the loads: a cached answer must not have needed one."""

    loads = 0

    async def load(self, key: str) -> Token | None:
        self.loads += 1
        return await super().load(key)


@pytest.mark.parametrize(
    ("key", "offset", "cached"),
    [
        ("org-a", None, True),  # just saved
        ("org-a", -0.5, True),  # half a second before the token must be looked at again
        ("org-a", 0.5, False),
        ("org-a", 4000.0, False),  # expired
        ("org-b", -0.5, False),  # a key this manager never saw
    ],
)
async def test_cached_token_is_exactly_tokens_answer_from_memory(
    refresher: RotatingRefresher, clock: FakeClock, key: str, offset: float | None, cached: bool
) -> None:
    """cached_token answers when token() would answer at once from memory, with that token;
    otherwise None, and token() is left to look at the store or refresh."""
    store = _CountingStore()
    manager, _first = await manager_with_token(refresher, clock, store=store)
    state = manager._states["org-a"]
    if offset is not None:  # seconds from the moment token() stops serving from memory
        clock.advance(state.serve_until - clock() + offset)
    found = manager.cached_token(key)
    assert (found is not None) is cached
    if found is not None:
        loads, calls = store.loads, refresher.calls
        assert await manager.token(key) is found is state.token
        assert (store.loads, refresher.calls) == (loads, calls)
    await settle()
