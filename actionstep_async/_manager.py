"""TokenManager: fresh tokens for many concurrent callers, with exactly one refresh per expiry.

The algorithm, per token key:

1. ``token(key)`` returns the cached token while it is fresh: no lock, no store access.
2. In the *advisory* window near expiry one background refresh starts and callers keep the current
   token; in the *mandatory* window (or once expired) every caller awaits that same refresh.
3. A refresh is one manager-owned task per key ("single flight"). Callers queue for it
   (:class:`._single_flight.Flight`): they wake in arrival order, and a cancelled caller never
   cancels a refresh that may already have spent the refresh token at the server.
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
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol, runtime_checkable

import attrs

from ._arguments import check_refresher, check_store
from ._cooldown import TokenCooldown, share_cooldown, wait_cooldown
from ._environment import Environment
from ._errors import (
    ActionstepError,
    ConfigurationError,
    ConnectError,
    OAuthError,
    ReauthorizationRequired,
    TokenEndpointUnavailable,
    TokenStoreError,
    TransientError,
    TransportError,
    UsageError,
)
from ._refresh_decision import (
    Adopt,
    Decision,
    Fail,
    Restore,
    Serve,
    Wait,
    check_stored,
    decide,
    is_older,
)
from ._refresh_policy import RefreshPolicy
from ._retry import backoff_delay
from ._single_flight import Flight
from ._tokens import Clock, Token
from .stores._base import TokenStore, validate_key
from .stores._memory import MemoryTokenStore

__all__ = ["KeepAliveReport", "RefreshPolicy", "Refresher", "TokenManager"]

KEEP_ALIVE_AGE: Final = 7 * 86400.0
"""Default ``max_idle``: a third of Actionstep's 21-day refresh-token lifetime."""

log = logging.getLogger("actionstep_async.tokens")

RefreshHook = Callable[[str, Token], object]
ReauthorizationHook = Callable[[str, ReauthorizationRequired], object]


class Refresher(Protocol):
    """Anything that can spend a refresh token: :class:`~actionstep_async.OAuthClient` does."""

    async def refresh(self, token: Token) -> Token: ...


@attrs.frozen
class KeepAliveReport:
    """What :meth:`TokenManager.keep_alive` did, key by key."""

    refreshed: tuple[str, ...] = ()
    """Refresh token older than ``max_idle``: refreshed (here or, moments before, by a peer)."""
    young: tuple[str, ...] = ()
    """Refresh token younger than ``max_idle``: left alone."""
    dead: tuple[str, ...] = ()
    """ReauthorizationRequired: a person must authorize these keys again."""
    failed: tuple[str, ...] = ()
    """A transient error (token endpoint or store): try again later."""


@runtime_checkable
class _ListsKeys(Protocol):
    async def keys(self) -> list[str]: ...


@attrs.define(eq=False)
class _KeyState:
    """Everything the manager knows about one token key; changed only through its methods, and
    only on the event loop."""

    token: Token | None = None
    advisory_at: float = 0.0
    mandatory_at: float = 0.0
    flight: Flight[Token] | None = None
    failures: int = 0
    not_before: float = 0.0
    last_error: ActionstepError | None = None
    reauthorization_until: float = 0.0
    reauthorization: ReauthorizationRequired | None = None
    reactive_token: str | None = attrs.field(default=None, repr=False)
    reactive_at: float = 0.0
    unsaved: bool = False
    own_claim: float | None = None
    check_at: float = 0.0
    serve_until: float = 0.0
    """The hot path serves ``token`` without a look until then: min(advisory_at, check_at)."""

    def adopt(self, token: Token, windows: tuple[float, float], check_at: float) -> None:
        """Hand out ``token`` from now on, refreshing it in the (advisory, mandatory) windows and
        reading the store back at ``check_at``."""
        self.token = token
        self.advisory_at, self.mandatory_at = windows
        self.check_at = check_at
        self.serve_until = min(self.advisory_at, check_at)

    def check_started(self, next_check: float) -> None:
        self.check_at = next_check
        self.serve_until = min(self.advisory_at, next_check)

    def holds(self, token: Token) -> bool:
        """Whether ``token`` (by access token) is still the one handed out."""
        return self.token is not None and self.token.access_token == token.access_token

    def start_flight(self, flight: Flight[Token]) -> None:
        self.flight = flight

    def end_flight(self, task: asyncio.Task[Token]) -> None:
        if self.flight is not None and self.flight.task is task:
            self.flight = None

    def refreshed_ok(self) -> None:
        """A refresh (or an adoption) worked: forget earlier failures."""
        self.failures, self.not_before, self.last_error = 0, 0.0, None

    def refresh_failed(self, error: ActionstepError, retry_at: float) -> None:
        self.failures += 1
        self.not_before, self.last_error = retry_at, error

    def needs_reauthorization(self, error: ReauthorizationRequired, until: float) -> None:
        self.reauthorization, self.reauthorization_until = error, until

    def authorized(self) -> None:
        """A new grant was saved: nothing remembered about the old one applies."""
        self.reauthorization, self.reauthorization_until = None, 0.0
        self.refreshed_ok()

    def remember_reactive(self, access_token: str, at: float) -> None:
        """``access_token`` came from a refresh forced by a 401 at ``at``."""
        self.reactive_token, self.reactive_at = access_token, at

    def claimed(self, at: float | None) -> None:
        """This process claimed the stored refresh token at ``at`` (``None``: claim settled)."""
        self.own_claim = at

    def mark_unsaved(self) -> None:
        self.unsaved = True

    def mark_saved(self) -> None:
        self.unsaved = False


class TokenManager:
    """Hands out fresh tokens per key and guarantees one refresh per expiry.

    ``refresher`` spends refresh tokens (normally an :class:`OAuthClient`). ``store`` is shared
    with every other process that uses the same connections; the default MemoryTokenStore only
    covers this process.
    """

    cooldown: TokenCooldown | None = None
    """Set to a shared cool-down (a ``RedisRateBudget``) so that a token endpoint's 429/503
    ``Retry-After`` seen by one process makes every process wait before refreshing."""

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
        environment: Environment | None = None,
    ) -> None:
        check_refresher(refresher)
        if store is not None:
            check_store(store)
        self.refresher = refresher
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        # A store the manager made itself has no other writer: nothing to check or wait for.
        self._shared_store = store is not None
        timeout = getattr(refresher, "timeout", None)
        request_timeout = float(timeout) if isinstance(timeout, int | float) else None
        self.policy = (policy or RefreshPolicy()).sized_for(request_timeout)
        if environment is None:
            found = getattr(refresher, "environment", None)
            environment = found if isinstance(found, Environment) else None
        self.environment = environment
        """Every token's ``api_endpoint`` is checked against it when saved, loaded or adopted."""
        self.clock = clock
        self.on_refresh = on_refresh
        self.on_reauthorization_required = on_reauthorization_required
        self.refresh_count = 0
        self._rng = rng or random.Random()
        self._states: dict[str, _KeyState] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"TokenManager(store={self.store!r}, keys={len(self._states)})"

    # -- the hot path -------------------------------------------------------------------------

    async def token(self, key: str) -> Token:
        """A token for ``key`` that is not in its mandatory refresh window.

        Raises ReauthorizationRequired when no token is stored or the refresh token is dead,
        and a TransientError when the token expired and refreshing is failing.
        """
        token = self.cached_token(key)
        return token if token is not None else await self._token_slow(key)

    def cached_token(self, key: str) -> Token | None:
        """What :meth:`token` returns at once from memory (step 1: fresh, no lock, no store
        access), or None when it would have to look further: the request path's fast path."""
        state = self._states.get(key)
        if state is not None and state.token is not None and self.clock() < state.serve_until:
            return state.token
        return None

    async def token_rejected(self, key: str, token_sent: Token) -> Token:
        """The API answered 401 to ``token_sent``: return a token worth one retry.

        Refreshes only if ``token_sent`` is still the current token (compared by identity, not
        expiry); when another caller already replaced it, the replacement is returned at once.
        """
        state = self._state(key)
        current = state.token
        if current is not None and current.access_token != token_sent.access_token:
            return current
        now = self.clock()
        if (
            state.reactive_token == token_sent.access_token
            and now - state.reactive_at < self.policy.reactive_cooldown
            # Unless the token has reached its mandatory window: then expiry explains the 401
            # (a short-lived token, or a request delayed past expiry) and a refresh is due.
            and now < state.mandatory_at
        ):
            # This token came from a 401-triggered refresh moments ago; a second refresh would not
            # help (the 401 is about permissions, not the token) and would start a refresh storm.
            # A sibling process may have stored a newer token meanwhile, though: one read is cheap.
            stored = await self._load(key)
            if (
                stored is not None
                and stored.access_token != token_sent.access_token
                and not is_older(stored, token_sent)
            ):
                self._adopt(state, stored)
                return stored
            return token_sent
        self._raise_if_remembered(state, now)
        token = await self._flight(key, state, rejected=token_sent).join()
        if token.access_token != token_sent.access_token:
            state.remember_reactive(token.access_token, self.clock())
        return token

    # -- explicit operations ------------------------------------------------------------------

    async def save(self, key: str, token: Token) -> Token:
        """Store ``token`` under ``key`` (after a code exchange), replacing whatever was there."""
        validate_key(key)
        self._checked(token)
        async with self.store.lock(key):
            stored = await self.store.load(key)
            expected = stored.version if stored else 0
            saved = await self.store.compare_and_set(key, token, expected_version=expected)
            if saved is None:
                raise TokenStoreError(f"token for {key!r} changed while it was being saved")
        state = self._state(key)
        state.authorized()
        self._adopt(state, saved)
        return saved

    async def load(self, key: str) -> Token | None:
        """The stored token for ``key`` without refreshing it (``None`` if there is none)."""
        token = await self._load(validate_key(key))
        if token is not None:
            state = self._state(key)
            if state.token is None or is_older(state.token, token):
                self._adopt(state, token)
        return token

    async def refresh(self, key: str) -> Token:
        """Refresh ``key`` now, whatever its expiry (still one refresh for concurrent callers)."""
        state = self._state(key)
        current = state.token or await self._load(validate_key(key))
        if current is None:
            raise ReauthorizationRequired(
                f"no token is stored for {key!r}; authorize first", key=key
            )
        return await self._flight(key, state, rejected=current).join()

    async def keep_alive(
        self, keys: Iterable[str] | None = None, *, max_idle: float = KEEP_ALIVE_AGE
    ) -> KeepAliveReport:
        """Refresh every stored key whose refresh token is older than ``max_idle`` seconds.

        Refresh tokens die unused (about 21 days on Actionstep), so run this from cron for
        connections nobody may use for weeks. ``keys`` defaults to every key in the store (stores
        with a ``keys()`` method: all built-in ones). Each key is refreshed once across the fleet,
        as always; keys that need a new authorization are reported, not raised.
        """
        if keys is None:
            if not isinstance(self.store, _ListsKeys):
                raise ConfigurationError(f"{self.store!r} cannot list its keys; pass keys=")
            keys = await self.store.keys()
        outcome: dict[str, list[str]] = {"refreshed": [], "young": [], "dead": [], "failed": []}
        for key in keys:
            outcome[await self._keep_alive_one(key, max_idle)].append(key)
        return KeepAliveReport(**{name: tuple(found) for name, found in outcome.items()})

    async def _keep_alive_one(self, key: str, max_idle: float) -> str:
        try:
            stored = await self._load(validate_key(key))
            if stored is None:
                return "dead"
            if self.clock() - stored.issued_at < max_idle:
                return "young"
            state = self._state(key)
            if state.token is None or is_older(state.token, stored):
                self._adopt(state, stored)
            await self._flight(key, state, rejected=stored).join()
        except ReauthorizationRequired:
            return "dead"
        except ActionstepError as exc:
            log.warning("keep-alive refresh of %r failed: %s", key, exc)
            return "failed"
        return "refreshed"

    async def delete(self, key: str) -> None:
        """Forget ``key`` here and in the store."""
        await self.store.delete(validate_key(key))
        self._states.pop(key, None)

    async def aclose(self) -> None:
        """Wait for refreshes and saves in progress; they may already have spent a refresh token."""
        self._closed = True
        pending = [task for task in self._tasks if not task.done()]
        flights = [state.flight.task for state in self._states.values() if state.flight]
        pending += [task for task in flights if not task.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> TokenManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    def _state(self, key: str) -> _KeyState:
        state = self._states.get(key)
        if state is None:
            state = self._states[validate_key(key)] = _KeyState()
        return state

    def _adopt(self, state: _KeyState, token: Token) -> None:
        """Hand out ``token`` (just read from or written to the store)."""
        next_check = self.clock() + self.policy.store_check_interval
        state.adopt(token, self.policy.windows(token, self._rng), next_check)

    def _checked(self, token: Token) -> Token:
        """``token`` if its ``api_endpoint`` suits the environment, else UnsafeEndpointError."""
        if self.environment is not None:
            self.environment.validate_api_endpoint(token.api_endpoint)
        return token

    async def _load(self, key: str) -> Token | None:
        """The stored token, refused (UnsafeEndpointError) if it names a foreign api_endpoint."""
        token = await self.store.load(key)
        return None if token is None else self._checked(token)

    def _raise_if_remembered(self, state: _KeyState, now: float) -> None:
        if state.reauthorization is not None and now < state.reauthorization_until:
            raise state.reauthorization

    async def _token_slow(self, key: str) -> Token:
        state = self._state(key)
        now = self.clock()
        self._raise_if_remembered(state, now)
        token = state.token
        if token is not None and now >= state.check_at:
            self._start_check(key, state, now)
        if token is not None and now < state.advisory_at:
            return token
        in_flight = self._active_flight(state) is not None
        if token is not None and (now < state.mandatory_at or self._quarantined(token, now)):
            # Advisory window (or a restored token still valid during its quarantine): one
            # background refresh, nobody waits for it.
            if not in_flight and now >= state.not_before:
                _ = self._flight(key, state, rejected=None)
            return token
        if not in_flight and now < state.not_before:
            # Backing off after a failure: a token that still works beats an error.
            if token is not None and now < token.expires_at:
                return token
            if state.last_error is not None:
                raise state.last_error
        try:
            return await self._flight(key, state, rejected=None).join()
        except (TransientError, TokenStoreError):
            # The refresh failed but our token has not expired yet: it still works.
            if token is not None and self.clock() < token.expires_at:
                return token
            raise

    @staticmethod
    def _active_flight(state: _KeyState) -> Flight[Token] | None:
        flight = state.flight
        # A flight left on another (finished) loop is ignored: tasks are bound to their loop, and
        # one whose loop was closed mid-refresh will never complete.
        if flight is None or flight.task.done():
            return None
        if flight.task.get_loop() is not asyncio.get_running_loop():
            return None
        return flight

    def _flight(self, key: str, state: _KeyState, *, rejected: Token | None) -> Flight[Token]:
        """The one refresh task for ``key``, started if none is running on this loop."""
        flight = self._active_flight(state)
        if flight is not None:
            return flight
        if self._closed:
            raise TokenStoreError("the TokenManager is closed")
        loop = asyncio.get_running_loop()
        bound = self._loop
        if bound is not loop and bound is not None and bound.is_running():
            # Two live loops would each run a refresh and read the other's claim as a crash.
            raise UsageError(
                "this TokenManager is refreshing on another running event loop; create one"
                " TokenManager per loop (they may share a file or Redis store)"
            )
        self._loop = loop
        task = loop.create_task(self._run_flight(key, state, rejected))
        flight = Flight(task)
        state.start_flight(flight)
        task.add_done_callback(lambda done: self._flight_done(state, done))
        return flight

    @staticmethod
    def _flight_done(state: _KeyState, task: asyncio.Task[Token]) -> None:
        state.end_flight(task)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so an advisory refresh nobody awaited does not log "never retrieved".
            log.debug("refresh flight ended with %s", type(task.exception()).__name__)

    async def _run_flight(self, key: str, state: _KeyState, rejected: Token | None) -> Token:
        try:
            token = await self._locked_refresh(key, state, rejected)
        except ReauthorizationRequired as exc:
            exc.key = key
            state.needs_reauthorization(exc, self.clock() + self.policy.reauthorization_ttl)
            log.error("token for %r needs reauthorization: %s", key, exc)
            self._call_hook(self.on_reauthorization_required, key, exc)
            raise
        except ActionstepError as exc:
            self._back_off(state, exc)
            if self.cooldown is not None and isinstance(exc, TransientError) and exc.retry_after:
                self._spawn(share_cooldown(self.cooldown, key, exc.retry_after))
            raise
        state.refreshed_ok()
        return token

    def _back_off(self, state: _KeyState, exc: ActionstepError) -> None:
        delay = max(
            self.policy.backoff_base,
            backoff_delay(
                state.failures + 1,
                base=self.policy.backoff_base,
                cap=self.policy.backoff_cap,
                rng=self._rng,
            ),
        )
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        state.refresh_failed(exc, self.clock() + delay)
        log.info(
            "token refresh failed (%s: %s); next attempt in %.1fs", type(exc).__name__, exc, delay
        )

    async def _locked_refresh(self, key: str, state: _KeyState, rejected: Token | None) -> Token:
        loop = asyncio.get_running_loop()
        # With a shared store, a missing record may be a store that lost it: a peer holding a
        # copy writes it back within store_check_interval, so wait up to the quarantine first.
        missing_until = loop.time() + (self.policy.restore_quarantine if self._shared_store else 0)
        await wait_cooldown(self.cooldown, key)
        async with self.store.lock(key):
            while True:
                decision = await self._decide(key, state, rejected)
                missing = isinstance(decision, Fail) and decision.reason == "missing"
                if missing and loop.time() < missing_until:
                    decision = Wait(self.policy.claim_poll)
                if isinstance(decision, Wait):
                    await asyncio.sleep(decision.seconds)
                    continue
                if isinstance(decision, Fail):
                    raise self._failure(key, decision)
                if isinstance(decision, Restore):
                    await self._restore(key, state, decision)
                    continue
                if isinstance(decision, Serve | Adopt):
                    self._adopt(state, decision.token)
                    return decision.token
                basis = decision.basis
                claimed = await self._claim(key, state, basis) if decision.claim else basis
                if claimed is not None:
                    break
            fresh = await self._spend(key, state, basis, claimed)
            if fresh is not None:
                await self._save(key, state, fresh, expected_version=claimed.version)
        if fresh is None:  # someone else rotated it meanwhile; already adopted
            assert state.token is not None
            return state.token
        return self._refreshed(key, state, basis, fresh)

    async def _decide(self, key: str, state: _KeyState, rejected: Token | None) -> Decision:
        """Read the store (unless it is behind us) and decide the next step."""
        own = state.token
        stored = None if state.unsaved and own is not None else await self._load(key)
        return decide(
            stored,
            own,
            rejected,
            own_claim=state.own_claim,
            unsaved=state.unsaved,
            now=self.clock(),
            policy=self.policy,
        )

    @staticmethod
    def _failure(key: str, decision: Fail) -> ReauthorizationRequired:
        if decision.reason == "missing":
            return ReauthorizationRequired(
                f"no token is stored for {key!r}; authorize first", key=key
            )
        # A refresh was sent and never saved: the server may already have rotated, so presenting
        # this refresh token again could revoke the whole token family.
        who = "this process" if decision.own else "another process"
        return ReauthorizationRequired(
            f"a refresh of {key!r} that {who} started {decision.claim_age:.0f}s ago was"
            " interrupted (killed, or its connection lost) after sending the refresh token, which"
            " may now be spent; no result was saved. Authorize this key again (for example"
            " `actionstep-async login`)",
            key=key,
        )

    async def _restore(self, key: str, state: _KeyState, restore: Restore) -> None:
        """Write our copy back over a lost or older record, marked unconfirmed (quarantined)."""
        written = await self.store.compare_and_set(
            key, restore.token, expected_version=restore.expected_version
        )
        if written is None:
            return  # the store changed meanwhile: judge the new record
        log.warning(
            "token for %r was missing from the store or older than ours; wrote back %s"
            " (its refresh token waits %.0fs for a newer copy before it is spent)",
            key,
            written.fingerprint,
            self.policy.restore_quarantine,
        )
        self._adopt(state, written)

    def _quarantined(self, token: Token, now: float) -> bool:
        """A restored token still valid and within its quarantine: serve it, refresh later."""
        if token.restored_at is None or now >= token.expires_at:
            return False
        return now < token.restored_at + self.policy.restore_quarantine

    def _start_check(self, key: str, state: _KeyState, now: float) -> None:
        state.check_started(now + self.policy.store_check_interval)
        if self._shared_store and self._active_flight(state) is None and not self._closed:
            self._spawn(self._check_store(key, state))

    async def _check_store(self, key: str, state: _KeyState) -> None:
        """Read the stored record in the background; repair a lost or rolled-back one."""
        try:
            stored = await self._load(key)
            if self._active_flight(state) is not None or state.unsaved:
                return  # the flight judges the store itself
            action = check_stored(stored, state.token, now=self.clock())
            if isinstance(action, Restore):
                await self._restore(key, state, action)
            elif isinstance(action, Adopt):
                self._adopt(state, action.token)
        except ActionstepError as exc:
            log.warning("background check of the token for %r failed: %s", key, exc)

    def _refreshed(self, key: str, state: _KeyState, basis: Token, fresh: Token) -> Token:
        log.info("refreshed token for %r: %s -> %s", key, basis.fingerprint, fresh.fingerprint)
        token = state.token or fresh
        self._call_hook(self.on_refresh, key, token)
        if token.expires_at <= self.clock():
            # The server granted a lifetime shorter than the round trip, so the token expired
            # before it arrived. It is saved, since its refresh token is the live one, but handing
            # it out would only earn a 401 and another refresh per request: fail as a transient
            # error so callers back off instead of looping on refreshes.
            raise TransientError(
                f"the token endpoint issued a token for {key!r} that expired before it arrived"
                f" (lifetime {token.lifetime:.3g}s); backing off"
            )
        return token

    async def _claim(self, key: str, state: _KeyState, basis: Token) -> Token | None:
        """Mark ``basis`` in the store as being spent; ``None`` if the store changed under us."""
        claimed_at = self.clock()
        claimed = await self.store.compare_and_set(
            key, attrs.evolve(basis, refresh_claimed_at=claimed_at), expected_version=basis.version
        )
        if claimed is not None:
            state.claimed(claimed_at)
        return claimed

    async def _release(self, key: str, state: _KeyState, claimed: Token) -> None:
        """Undo a claim after a refresh the server certainly did not process."""
        state.claimed(None)
        if state.unsaved:
            return
        released = attrs.evolve(claimed, refresh_claimed_at=None)
        try:
            stored = await self.store.compare_and_set(
                key, released, expected_version=claimed.version
            )
        except TokenStoreError as exc:
            log.error("could not release the refresh claim on %r: %s", key, exc)
            return
        if stored is not None:
            self._adopt(state, stored)

    async def _spend(
        self, key: str, state: _KeyState, basis: Token, claimed: Token
    ) -> Token | None:
        """Call the token endpoint with ``claimed``'s refresh token; ``None`` if adopted instead."""
        try:
            fresh = await self.refresher.refresh(claimed)
        except ReauthorizationRequired:
            latest = await self._await_newer(key, basis)
            if latest is not None:
                log.info("refresh token for %r was already rotated elsewhere; adopting", key)
                state.claimed(None)
                self._adopt(state, latest)
                return None
            await self._release(key, state, claimed)
            raise
        except (TokenEndpointUnavailable, ConnectError, OAuthError):
            # The server answered with an error or was never reached: nothing was rotated.
            await self._release(key, state, claimed)
            raise
        except TransportError as exc:
            if not exc.may_have_been_sent:  # a timeout before any byte left: nothing was spent
                await self._release(key, state, claimed)
            raise
        self.refresh_count += 1
        state.claimed(None)
        # Until it is saved, the new token carries the version it was refreshed from.
        fresh = attrs.evolve(
            fresh, version=claimed.version, refresh_claimed_at=None, restored_at=None
        )
        self._adopt(state, fresh)
        return fresh

    async def _await_newer(self, key: str, basis: Token) -> Token | None:
        """After ``invalid_grant``: a newer token a peer stores within the quarantine, if any.

        A peer that refreshed while the store lost or rolled back its record writes it back
        within ``store_check_interval``; the quarantine is longer than that.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.policy.restore_quarantine if self._shared_store else 0.0)
        while True:
            latest = await self._load(key)
            if (
                latest is not None
                and latest.refresh_token != basis.refresh_token
                and not is_older(latest, basis)
            ):
                return latest
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(self.policy.claim_poll)

    async def _save(
        self, key: str, state: _KeyState, fresh: Token, *, expected_version: int
    ) -> None:
        try:
            saved = await self._write(key, state, fresh, expected_version)
        except TokenStoreError as exc:
            state.mark_unsaved()
            log.error(
                "refreshed token for %r could not be saved (%s); keeping it in memory and retrying",
                key,
                exc,
            )
            self._spawn(self._retry_save(key, state, fresh))
            return
        if not saved:
            # Someone wrote a newer token even though we held the lock (its TTL ran out): theirs
            # wins, because only one refresh-token chain may survive. An older one (the store
            # rolled back meanwhile) never wins: ours is written over it.
            winner = await self._load(key)
            if winner is None or is_older(winner, fresh):
                expected = winner.version if winner is not None else 0
                if await self._write(key, state, fresh, expected):
                    return
                winner = await self._load(key)
            log.info("token for %r was replaced during our refresh; adopting the winner", key)
            if winner is not None:
                self._adopt(state, winner)

    async def _write(self, key: str, state: _KeyState, fresh: Token, expected_version: int) -> bool:
        if state.unsaved:
            # The store missed at least one of our refreshes: its refresh token is spent, so ours
            # replaces whatever version it holds.
            stored = await self.store.load(key)
            expected_version = stored.version if stored else 0
        saved = await self.store.compare_and_set(key, fresh, expected_version=expected_version)
        if saved is None:
            return False
        state.mark_saved()
        if state.holds(fresh):
            self._adopt(state, saved)
        return True

    async def _retry_save(self, key: str, state: _KeyState, fresh: Token) -> None:
        attempt = 0
        while state.unsaved:
            if not state.holds(fresh):
                return  # a newer refresh took over; its own save carries the chain forward
            attempt += 1
            delay = backoff_delay(
                attempt, base=self.policy.save_retry_base, cap=self.policy.save_retry_cap
            )
            await asyncio.sleep(max(self.policy.save_retry_base, delay))
            try:
                async with self.store.lock(key):
                    if not state.holds(fresh):
                        return  # superseded while we slept: never write an older token back
                    # unsaved: _write reads the stored version itself.
                    saved = await self._write(key, state, fresh, fresh.version)
            except TokenStoreError as exc:
                log.error("saving refreshed token for %r failed again (%s)", key, exc)
                continue
            if saved:
                log.info("refreshed token for %r saved after %d retries", key, attempt)

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
