"""TokenManager: fresh tokens for many concurrent callers, with exactly one refresh per expiry.

The algorithm, per token key:

1. ``token(key)`` returns the cached token while it is fresh: no lock, no store access.
2. In the *advisory* window near expiry one background refresh starts and callers keep the current
   token; in the *mandatory* window (or once expired) every caller awaits that same refresh.
3. A refresh is one manager-owned task per key ("single flight"). Callers await it through
   ``asyncio.shield`` so a cancelled caller never cancels a refresh that may already have spent
   the refresh token at the server.
4. Inside the flight: take the store's lock (cross-process for file and Redis stores), re-read the
   store, adopt a token another process already refreshed, otherwise refresh and compare-and-set.
   A lost compare-and-set means someone else won: their token is adopted, never overwritten.
5. Failures: transient ones keep the valid token and back off with jitter (honouring
   Retry-After); ``invalid_grant`` re-reads the store, then raises ReauthorizationRequired and
   remembers it for a while; a failed save keeps the new token in memory and retries the save.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs

from ._arguments import check_refresher, check_store
from ._errors import (
    ActionstepError,
    ConnectError,
    OAuthError,
    ReauthorizationRequired,
    TokenEndpointUnavailable,
    TokenStoreError,
    TransientError,
)
from ._retry import backoff_delay
from ._tokens import Clock, Token
from .stores._base import TokenStore, validate_key
from .stores._memory import MemoryTokenStore

__all__ = ["RefreshPolicy", "Refresher", "TokenManager"]

log = logging.getLogger("actionstep_async.tokens")

RefreshHook = Callable[[str, Token], object]
ReauthorizationHook = Callable[[str, ReauthorizationRequired], object]


class Refresher(Protocol):
    """Anything that can spend a refresh token: :class:`~actionstep_async.OAuthClient` does."""

    async def refresh(self, token: Token) -> Token: ...


@attrs.frozen
class RefreshPolicy:
    """When to refresh, and how to behave when refreshing fails.

    Windows scale with the token's lifetime so a 59-second token and a 12-hour token both get a
    sane refresh point. The advisory window starts ``advisory_fraction`` of the lifetime before
    expiry (at most ``advisory_cap`` seconds), moved later by up to ``jitter`` of itself so a fleet
    does not refresh in lockstep. The mandatory window is ``mandatory_fraction`` of the lifetime
    (at most ``mandatory_cap``).

    ``claim_timeout`` bounds how long a process waits for another one that claimed the refresh
    token and has not saved the result yet; it must exceed the token request timeout.
    """

    advisory_fraction: float = 0.10
    advisory_cap: float = 600.0
    mandatory_fraction: float = 0.02
    mandatory_cap: float = 60.0
    jitter: float = 0.5
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    reauthorization_ttl: float = 300.0
    reactive_cooldown: float = 10.0
    save_retry_base: float = 0.5
    save_retry_cap: float = 30.0
    claim_timeout: float = 120.0
    claim_poll: float = 0.1

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.mandatory_fraction <= self.advisory_fraction * (1 - self.jitter) < 1:
            raise ValueError("need 0 <= mandatory_fraction <= advisory_fraction * (1 - jitter) < 1")

    def windows(self, token: Token, rng: random.Random) -> tuple[float, float]:
        """Absolute (advisory_at, mandatory_at) times for ``token``."""
        lifetime = max(token.lifetime, 0.0)
        advisory = min(self.advisory_cap, self.advisory_fraction * lifetime)
        advisory *= 1.0 - self.jitter * rng.random()
        mandatory = min(self.mandatory_cap, self.mandatory_fraction * lifetime, advisory)
        return token.expires_at - advisory, token.expires_at - mandatory

    def needs_refresh(self, token: Token, now: float) -> bool:
        """True once ``token`` is inside its (un-jittered) advisory window."""
        margin = min(self.advisory_cap, self.advisory_fraction * max(token.lifetime, 0.0))
        return now >= token.expires_at - margin


@attrs.define(eq=False)
class _Slot:
    """Everything the manager knows about one key. Mutated only on the event loop."""

    token: Token | None = None
    advisory_at: float = 0.0
    mandatory_at: float = 0.0
    flight: asyncio.Task[Token] | None = None
    failures: int = 0
    not_before: float = 0.0
    last_error: ActionstepError | None = None
    reauthorization_until: float = 0.0
    reauthorization: ReauthorizationRequired | None = None
    reactive_token: str | None = None
    reactive_at: float = 0.0
    unsaved: bool = False
    own_claim: float | None = None


class TokenManager:
    """Hands out fresh tokens per key and guarantees one refresh per expiry.

    ``refresher`` spends refresh tokens (normally an :class:`OAuthClient`). ``store`` is shared
    with every other process that uses the same connections; the default MemoryTokenStore only
    covers this process.
    """

    def __init__(
        self,
        refresher: Refresher,
        store: TokenStore | None = None,
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = time.time,
        on_refresh: RefreshHook | None = None,
        on_reauthorization_required: ReauthorizationHook | None = None,
        rng: random.Random | None = None,
    ) -> None:
        check_refresher(refresher)
        if store is not None:
            check_store(store)
        self.refresher = refresher
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.policy = policy or RefreshPolicy()
        self.clock = clock
        self.on_refresh = on_refresh
        self.on_reauthorization_required = on_reauthorization_required
        self.refresh_count = 0
        self._rng = rng or random.Random()
        self._slots: dict[str, _Slot] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"TokenManager(store={self.store!r}, keys={len(self._slots)})"

    # -- the hot path -------------------------------------------------------------------------

    async def token(self, key: str) -> Token:
        """A token for ``key`` that is not in its mandatory refresh window.

        Raises ReauthorizationRequired when no token is stored or the refresh token is dead,
        and a TransientError when the token expired and refreshing is failing.
        """
        slot = self._slots.get(key)
        if slot is not None and slot.token is not None and self.clock() < slot.advisory_at:
            return slot.token
        return await self._token_slow(key)

    async def token_rejected(self, key: str, token_sent: Token) -> Token:
        """The API answered 401 to ``token_sent``: return a token worth one retry.

        Refreshes only if ``token_sent`` is still the current token (compared by identity, not
        expiry); when another caller already replaced it, the replacement is returned at once.
        """
        slot = self._slot(key)
        current = slot.token
        if current is not None and current.access_token != token_sent.access_token:
            return current
        now = self.clock()
        if (
            slot.reactive_token == token_sent.access_token
            and now - slot.reactive_at < self.policy.reactive_cooldown
            # Unless the token has reached its mandatory window: then expiry explains the 401
            # (a short-lived token, or a request delayed past expiry) and a refresh is due.
            and now < slot.mandatory_at
        ):
            # This token came from a 401-triggered refresh moments ago; a second refresh would not
            # help (the 401 is about permissions, not the token) and would start a refresh storm.
            # A sibling process may have stored a newer token meanwhile, though: one read is cheap.
            stored = await self.store.load(key)
            if stored is not None and stored.access_token != token_sent.access_token:
                self._adopt(slot, stored)
                return stored
            return token_sent
        self._raise_if_remembered(slot, now)
        flight = self._flight(key, slot, rejected=token_sent)
        token = await asyncio.shield(flight)
        if token.access_token != token_sent.access_token:
            slot.reactive_token, slot.reactive_at = token.access_token, self.clock()
        return token

    # -- explicit operations ------------------------------------------------------------------

    async def save(self, key: str, token: Token) -> Token:
        """Store ``token`` under ``key`` (after a code exchange), replacing whatever was there."""
        validate_key(key)
        async with self.store.lock(key):
            stored = await self.store.load(key)
            expected = stored.version if stored else 0
            if not await self.store.compare_and_set(key, token, expected_version=expected):
                raise TokenStoreError(f"token for {key!r} changed while it was being saved")
        saved = attrs.evolve(token, version=expected + 1)
        slot = self._slot(key)
        slot.reauthorization, slot.reauthorization_until = None, 0.0
        slot.failures, slot.not_before, slot.last_error = 0, 0.0, None
        self._adopt(slot, saved)
        return saved

    async def load(self, key: str) -> Token | None:
        """The stored token for ``key`` without refreshing it (``None`` if there is none)."""
        token = await self.store.load(validate_key(key))
        if token is not None:
            slot = self._slot(key)
            if slot.token is None or token.version > slot.token.version:
                self._adopt(slot, token)
        return token

    async def refresh(self, key: str) -> Token:
        """Refresh ``key`` now, whatever its expiry (still one refresh for concurrent callers)."""
        slot = self._slot(key)
        current = slot.token or await self.store.load(validate_key(key))
        if current is None:
            raise ReauthorizationRequired(
                f"no token is stored for {key!r}; authorize first", key=key
            )
        return await asyncio.shield(self._flight(key, slot, rejected=current))

    async def delete(self, key: str) -> None:
        """Forget ``key`` here and in the store."""
        await self.store.delete(validate_key(key))
        self._slots.pop(key, None)

    async def aclose(self) -> None:
        """Wait for refreshes and saves in progress; they may already have spent a refresh token."""
        self._closed = True
        pending = [task for task in self._tasks if not task.done()]
        pending += [s.flight for s in self._slots.values() if s.flight and not s.flight.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> TokenManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[validate_key(key)] = _Slot()
        return slot

    def _adopt(self, slot: _Slot, token: Token) -> None:
        slot.token = token
        slot.advisory_at, slot.mandatory_at = self.policy.windows(token, self._rng)

    def _raise_if_remembered(self, slot: _Slot, now: float) -> None:
        if slot.reauthorization is not None and now < slot.reauthorization_until:
            raise slot.reauthorization

    async def _token_slow(self, key: str) -> Token:
        slot = self._slot(key)
        now = self.clock()
        self._raise_if_remembered(slot, now)
        token = slot.token
        in_flight = self._active_flight(slot) is not None
        if token is not None and now < slot.mandatory_at:
            # Advisory window: one background refresh, nobody waits for it.
            if not in_flight and now >= slot.not_before:
                _ = self._flight(key, slot, rejected=None)
            return token
        if not in_flight and now < slot.not_before:
            # Backing off after a failure: a token that still works beats an error.
            if token is not None and now < token.expires_at:
                return token
            if slot.last_error is not None:
                raise slot.last_error
        try:
            return await asyncio.shield(self._flight(key, slot, rejected=None))
        except (TransientError, TokenStoreError):
            # The refresh failed but our token has not expired yet: it still works.
            if token is not None and self.clock() < token.expires_at:
                return token
            raise

    @staticmethod
    def _active_flight(slot: _Slot) -> asyncio.Task[Token] | None:
        flight = slot.flight
        # A flight left on another (finished) loop is ignored: tasks are bound to their loop, and
        # one whose loop was closed mid-refresh will never complete.
        if flight is None or flight.done() or flight.get_loop() is not asyncio.get_running_loop():
            return None
        return flight

    def _flight(self, key: str, slot: _Slot, *, rejected: Token | None) -> asyncio.Task[Token]:
        """The one refresh task for ``key``, started if none is running on this loop."""
        flight = self._active_flight(slot)
        if flight is not None:
            return flight
        if self._closed:
            raise TokenStoreError("the TokenManager is closed")
        flight = asyncio.get_running_loop().create_task(self._run_flight(key, slot, rejected))
        slot.flight = flight
        flight.add_done_callback(lambda task: self._flight_done(slot, task))
        return flight

    def _flight_done(self, slot: _Slot, task: asyncio.Task[Token]) -> None:
        if slot.flight is task:
            slot.flight = None
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so an advisory refresh nobody awaited does not log "never retrieved".
            log.debug("refresh flight ended with %s", type(task.exception()).__name__)

    async def _run_flight(self, key: str, slot: _Slot, rejected: Token | None) -> Token:
        try:
            token = await self._locked_refresh(key, slot, rejected)
        except ReauthorizationRequired as exc:
            exc.key = key
            slot.reauthorization = exc
            slot.reauthorization_until = self.clock() + self.policy.reauthorization_ttl
            log.error("token for %r needs reauthorization: %s", key, exc)
            self._call_hook(self.on_reauthorization_required, key, exc)
            raise
        except ActionstepError as exc:
            self._back_off(slot, exc)
            raise
        slot.failures, slot.not_before, slot.last_error = 0, 0.0, None
        return token

    def _back_off(self, slot: _Slot, exc: ActionstepError) -> None:
        slot.failures += 1
        delay = max(
            self.policy.backoff_base,
            backoff_delay(
                slot.failures,
                base=self.policy.backoff_base,
                cap=self.policy.backoff_cap,
                rng=self._rng,
            ),
        )
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        slot.not_before = self.clock() + delay
        slot.last_error = exc
        log.warning(
            "token refresh failed (%s: %s); next attempt in %.1fs", type(exc).__name__, exc, delay
        )

    async def _locked_refresh(self, key: str, slot: _Slot, rejected: Token | None) -> Token:
        async with self.store.lock(key):
            while True:
                basis = await self._settled_basis(key, slot)
                if self._is_usable(basis, slot.token, rejected):
                    self._adopt(slot, basis)
                    return basis
                claimed = await self._claim(key, slot, basis)
                if claimed is not None:
                    break
            fresh = await self._spend(key, slot, basis, claimed)
            if fresh is not None:
                await self._save(key, slot, fresh, expected_version=claimed.version)
        if fresh is None:  # someone else rotated it meanwhile; already adopted
            assert slot.token is not None
            return slot.token
        log.info("refreshed token for %r: %s -> %s", key, basis.fingerprint, fresh.fingerprint)
        token = slot.token or fresh
        self._call_hook(self.on_refresh, key, token)
        if token.expires_at <= self.clock():
            # The server granted a lifetime shorter than the round trip, so the token expired
            # before it arrived (scenario A5). It is saved, since its refresh token is the live
            # one, but handing it out would only earn a 401 and another refresh per request: fail
            # as a transient error so callers back off instead of looping on refreshes.
            raise TransientError(
                f"the token endpoint issued a token for {key!r} that expired before it arrived"
                f" (lifetime {token.lifetime:.3g}s); backing off"
            )
        return token

    async def _settled_basis(self, key: str, slot: _Slot) -> Token:
        """The token to judge and refresh from, once nobody else is mid-refresh on it."""
        while True:
            mine = slot.token
            if slot.unsaved and mine is not None:
                # Our newest token never reached the store: the stored refresh token is spent.
                return mine
            stored = await self.store.load(key)
            if stored is None and mine is not None:
                # The store lost the key (a Redis restart without persistence): carry on from our
                # copy and write it back as a new record.
                log.warning("token for %r is missing from the store; restoring it", key)
                return attrs.evolve(mine, version=0, refresh_claimed_at=None)
            basis = stored if stored is not None else mine
            if basis is None:
                raise ReauthorizationRequired(
                    f"no token is stored for {key!r}; authorize first", key=key
                )
            claimed_at = basis.refresh_claimed_at
            if claimed_at is None:
                return basis
            age = self.clock() - claimed_at
            if claimed_at == slot.own_claim or age >= self.policy.claim_timeout:
                # A refresh was sent and never saved: the server may already have rotated, so
                # presenting this refresh token again could revoke the whole token family.
                raise ReauthorizationRequired(
                    f"a refresh of {key!r} was interrupted after its refresh token may have been"
                    " spent; authorize again",
                    key=key,
                )
            # Another process is refreshing (its lock expired under a slow token endpoint):
            # wait for its result rather than spend the same refresh token.
            await asyncio.sleep(min(self.policy.claim_poll, self.policy.claim_timeout - age))

    async def _claim(self, key: str, slot: _Slot, basis: Token) -> Token | None:
        """Mark ``basis`` in the store as being spent; ``None`` if the store changed under us."""
        if slot.unsaved:
            return basis
        claimed_at = self.clock()
        claimed = attrs.evolve(basis, refresh_claimed_at=claimed_at)
        if not await self.store.compare_and_set(key, claimed, expected_version=basis.version):
            return None
        slot.own_claim = claimed_at
        return attrs.evolve(claimed, version=basis.version + 1)

    async def _release(self, key: str, slot: _Slot, claimed: Token) -> None:
        """Undo a claim after a refresh the server certainly did not process."""
        slot.own_claim = None
        if slot.unsaved:
            return
        released = attrs.evolve(claimed, refresh_claimed_at=None)
        try:
            if await self.store.compare_and_set(key, released, expected_version=claimed.version):
                self._adopt(slot, attrs.evolve(released, version=claimed.version + 1))
        except TokenStoreError as exc:
            log.error("could not release the refresh claim on %r: %s", key, exc)

    async def _spend(self, key: str, slot: _Slot, basis: Token, claimed: Token) -> Token | None:
        """Call the token endpoint with ``claimed``'s refresh token; ``None`` if adopted instead."""
        try:
            fresh = await self.refresher.refresh(claimed)
        except ReauthorizationRequired:
            latest = await self.store.load(key)
            if latest is not None and latest.refresh_token != basis.refresh_token:
                log.info("refresh token for %r was already rotated elsewhere; adopting", key)
                slot.own_claim = None
                self._adopt(slot, latest)
                return None
            await self._release(key, slot, claimed)
            raise
        except (TokenEndpointUnavailable, ConnectError, OAuthError):
            # The server answered with an error or was never reached: nothing was rotated.
            await self._release(key, slot, claimed)
            raise
        self.refresh_count += 1
        slot.own_claim = None
        fresh = attrs.evolve(fresh, version=claimed.version + 1, refresh_claimed_at=None)
        self._adopt(slot, fresh)
        return fresh

    def _is_usable(self, basis: Token, mine: Token | None, rejected: Token | None) -> bool:
        """Whether ``basis`` (just read under the lock) can be used without refreshing."""
        if rejected is not None:
            return basis.access_token != rejected.access_token
        if mine is not None and basis.access_token == mine.access_token:
            return False  # the store still holds the very token that sent us here
        return not self.policy.needs_refresh(basis, self.clock())

    async def _save(self, key: str, slot: _Slot, fresh: Token, *, expected_version: int) -> None:
        try:
            saved = await self._write(key, slot, fresh, expected_version)
        except TokenStoreError as exc:
            slot.unsaved = True
            log.error(
                "refreshed token for %r could not be saved (%s); keeping it in memory and retrying",
                key,
                exc,
            )
            self._spawn(self._retry_save(key, slot, fresh))
            return
        if not saved:
            # Someone wrote a newer token even though we held the lock (its TTL ran out): theirs
            # wins, because only one refresh-token chain may survive.
            winner = await self.store.load(key)
            log.warning("token for %r was replaced during our refresh; adopting the winner", key)
            if winner is not None:
                self._adopt(slot, winner)

    async def _write(self, key: str, slot: _Slot, fresh: Token, expected_version: int) -> bool:
        if slot.unsaved:
            # The store missed at least one of our refreshes: its refresh token is spent, so ours
            # replaces whatever version it holds.
            stored = await self.store.load(key)
            expected_version = stored.version if stored else 0
        if not await self.store.compare_and_set(key, fresh, expected_version=expected_version):
            return False
        slot.unsaved = False
        if slot.token is not None and slot.token.access_token == fresh.access_token:
            self._adopt(slot, attrs.evolve(fresh, version=expected_version + 1))
        return True

    async def _retry_save(self, key: str, slot: _Slot, fresh: Token) -> None:
        attempt = 0
        while slot.unsaved and slot.token is not None:
            if slot.token.access_token != fresh.access_token:
                return  # a newer refresh took over; its own save carries the chain forward
            attempt += 1
            delay = backoff_delay(
                attempt, base=self.policy.save_retry_base, cap=self.policy.save_retry_cap
            )
            await asyncio.sleep(max(self.policy.save_retry_base, delay))
            try:
                async with self.store.lock(key):
                    saved = await self._write(key, slot, fresh, fresh.version - 1)
            except TokenStoreError as exc:
                log.error("saving refreshed token for %r failed again (%s)", key, exc)
                continue
            if saved:
                log.warning("refreshed token for %r saved after %d retries", key, attempt)

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_hook(self, hook: Callable[..., object] | None, *args: object) -> None:
        if hook is None:
            return
        try:
            result = hook(*args)
        except Exception:  # a user's hook must never break token handling; it is reported
            log.exception("token hook %r raised", hook)
            return
        if inspect.isawaitable(result):
            self._spawn(result)
