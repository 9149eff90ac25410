"""Issue 12 section 6 (idle connections stay alive) and section 7 (claim timeout sizing)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import attrs
import pytest

from actionstep_async import (
    KeepAliveReport,
    OAuthClient,
    ReauthorizationRequired,
    RefreshPolicy,
    TokenManager,
)
from actionstep_async.stores import FileTokenStore
from actionstep_async.testing import FakeActionstep

DAY = 86400.0


class ShiftedClock:
    """Real time plus days the test adds: the manager and the fake share it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_keep_alive_refreshes_idle_keys_once_across_processes(tmp_path: Path) -> None:
    """Keys idle for 8 days are refreshed (one refresh per key for two concurrent managers),
    young keys are left alone and a key past the fake's 21-day refresh expiry is reported dead."""
    clock = ShiftedClock()
    async with FakeActionstep(expires_in=3600) as fake:
        fake.auth.clock = clock
        store = FileTokenStore(tmp_path / "tokens")
        policy = RefreshPolicy(store_check_interval=0.2, restore_quarantine=0.4)
        oauth = attrs.evolve(fake.oauth_client(), clock=clock)
        a = TokenManager(oauth, store, clock=clock, policy=policy)
        b = TokenManager(oauth, store, clock=clock, policy=policy)
        dead = await a.save("dead", fake.issue_token())
        clock.offset += 14 * DAY
        for key in ("idle-1", "idle-2"):
            await a.save(key, fake.issue_token())
        clock.offset += 8 * DAY  # idle keys: 8 days old; "dead": 22 days, past 21
        await a.save("young", fake.issue_token())
        reports = await asyncio.gather(a.keep_alive(), b.keep_alive())
        for report in reports:
            # A key the other manager refreshed moments before is young by the time it is seen.
            assert set(report.refreshed) | set(report.young) == {"idle-1", "idle-2", "young"}
            assert "young" in report.young
            assert report.dead == ("dead",)
            assert report.failed == ()
        assert {key for r in reports for key in r.refreshed} == {"idle-1", "idle-2"}
        dead_tries = fake.counters.refresh_presented[dead.refresh_token]
        # One refresh per idle key across both managers; the dead key is never rotated.
        assert fake.counters.token_calls_by_grant["refresh_token"] - dead_tries == 2
        assert fake.counters.spent_token_reuses == 0
        clock.offset += 8 * DAY  # the refreshed keys are alive 16 days after their last use
        assert await a.keep_alive(["idle-1", "idle-2"]) == KeepAliveReport(
            refreshed=("idle-1", "idle-2")
        )
        with pytest.raises(ReauthorizationRequired):
            await a.token("dead")


async def test_fake_refresh_token_expiry_is_configurable() -> None:
    """The fake's refresh tokens die after refresh_expires_in (21 days by default)."""
    clock = ShiftedClock()
    async with FakeActionstep(refresh_expires_in=10 * DAY) as fake:
        fake.auth.clock = clock
        oauth = fake.oauth_client()
        token = fake.issue_token()
        clock.offset += 11 * DAY
        with pytest.raises(ReauthorizationRequired):
            await oauth.refresh(token)


async def test_claim_timeout_defaults_from_the_token_request_timeout() -> None:
    """claim_timeout is the token request timeout plus a margin, unless set."""
    oauth = OAuthClient("id", "secret", "http://127.0.0.1/callback", timeout=4.0)
    assert TokenManager(oauth).policy.claim_timeout == 4.0 + 15.0
    chosen = TokenManager(oauth, policy=RefreshPolicy(claim_timeout=7.0))
    assert chosen.policy.claim_timeout == 7.0


async def test_interrupted_refresh_error_says_what_happened_and_what_to_do(
    tmp_path: Path,
) -> None:
    """A claim left by a killed process: the error names the cause and the remedy, after the
    sized timeout (not 120 s)."""
    async with FakeActionstep() as fake:
        oauth = attrs.evolve(fake.oauth_client(), timeout=0.5)
        store = FileTokenStore(tmp_path / "tokens")
        manager = TokenManager(oauth, store)
        assert manager.policy.claim_timeout == 15.5
        saved = await manager.save("org", fake.issue_token(expires_in=1))
        claimed = attrs.evolve(saved, refresh_claimed_at=time.time() - 16)
        await store.compare_and_set("org", claimed, expected_version=saved.version)
        await asyncio.sleep(1.1)
        with pytest.raises(ReauthorizationRequired) as caught:
            await manager.token("org")
        message = str(caught.value)
        assert "another process" in message
        assert "interrupted" in message
        assert "Authorize this key again" in message
        assert fake.counters.token_calls == 0
