"""RedisTokenStore: tokens and refresh locks in Redis, shared by every process and host.

Install with the ``redis`` extra. For a key whose :func:`encode_key` is ``NAME``:

``{prefix}token:NAME``
    A hash with ``version`` (an integer, authoritative) and ``token`` (``dump_token`` plus the key).
    Read with one ``HMGET``, so version and token always come from the same write.
``{prefix}lock:NAME``
    The refresh lock: a random value with a TTL.

``compare_and_set`` is one Lua script (read the version, compare, write ``version + 1``), atomic on
the server whoever holds the lock. That matters: the lock is only advisory. Its TTL can run out
during a slow refresh, or a failover can drop it, and then the script is what stops a second writer
from overwriting the first writer's token.

``lock(key)`` sets the lock with a fresh ``uuid4`` value per acquisition (never shared between
tasks), polled with jittered sleeps until acquired or ``lock_timeout``. The set is one Lua script
(``SET NX PX``, or ``PEXPIRE`` if the lock already holds our value), so an attempt that timed out
after reaching the server and is retried counts as acquired instead of leaving an orphan lock.
Every Redis call is bounded by an asyncio timeout (``command_timeout``, and the lock deadline),
whatever the client's own ``socket_timeout``: a frozen Redis gives a TokenStoreError in bounded
time. Release and extension are
Lua scripts that act only while the value is still ours, so a holder whose lock expired never
deletes the next holder's lock. While the lock is held a watchdog task extends the TTL every
``lock_ttl / 3``; if an extension finds the lock gone it logs a warning and stops. Tasks of one
process first queue on a per-key ``asyncio.Lock``, so only one task per key and loop polls Redis.

The caller owns the Redis client: the store never closes it. Either ``decode_responses`` setting
works.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Final, TypeVar

import attrs
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .._errors import ConfigurationError, ResponseDecodeError, TokenStoreError
from .._tokens import Token, dump_token, load_token
from ._base import LoopLocks, encode_key

__all__ = ["RedisTokenStore"]

log = logging.getLogger("actionstep_async.stores")

_T = TypeVar("_T")

# OSError: a socket failure redis-py did not wrap (it wraps most into ConnectionError).
_REDIS_ERRORS: Final = (RedisError, OSError)

_COMPARE_AND_SET: Final = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'token', ARGV[3])
return 1
"""

_ACQUIRE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_EXTEND: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _NoAnswer(TokenStoreError):
    """A Redis call timed out: it may or may not have been executed."""


class RedisTokenStore:
    """Tokens in Redis behind a per-key lock that spans processes and hosts.

    ``lock_ttl`` (seconds) is how long a lock outlives a holder that died; budget it as the token
    request timeout times attempts plus the write, with margin. While held, the lock is extended
    every ``lock_ttl / 3`` unless ``extend=False`` (tests use that to force the TTL shorter than a
    slow refresh). ``lock_timeout`` bounds the wait for the lock (``None``: no bound) and
    ``poll_interval`` is the mean pause between attempts. The lock is not reentrant. Redis
    failures raise :class:`TokenStoreError`. Each Redis call waits at most ``command_timeout``
    seconds (an asyncio timeout, independent of the client's ``socket_timeout``).

    ``wait_replicas=N`` makes every token write wait (Redis ``WAIT``, up to ``wait_timeout``
    seconds) until N replicas acknowledged it; with fewer, the write raises TokenStoreError and the
    manager keeps the token in memory and retries the save, so a failover to a replica cannot lose
    a refresh the manager considers saved.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "actionstep:",
        lock_ttl: float = 30.0,
        lock_timeout: float | None = 60.0,
        poll_interval: float = 0.05,
        extend: bool = True,
        command_timeout: float = 5.0,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if not lock_ttl >= 0.001:
            raise ConfigurationError("lock_ttl must be at least 0.001 seconds")
        if lock_timeout is not None and not lock_timeout > 0:
            raise ConfigurationError("lock_timeout must be positive or None")
        if not poll_interval > 0:
            raise ConfigurationError("poll_interval must be positive")
        if not command_timeout > 0:
            raise ConfigurationError("command_timeout must be positive")
        if wait_replicas < 0 or not wait_timeout > 0:
            raise ConfigurationError("wait_replicas must be >= 0 and wait_timeout positive")
        self._redis = redis
        self._prefix = prefix
        self._lock_ttl = lock_ttl
        self._lock_timeout = lock_timeout
        self._poll_interval = poll_interval
        self._extend = extend
        self._command_timeout = command_timeout
        self._wait_replicas = wait_replicas
        self._wait_timeout = wait_timeout
        self._compare_and_set = redis.register_script(_COMPARE_AND_SET)
        self._acquire_script = redis.register_script(_ACQUIRE)
        self._release_script = redis.register_script(_RELEASE)
        self._extend_script = redis.register_script(_EXTEND)
        self._local_locks = LoopLocks()
        # Strong references to shielded releases that outlive a cancelled caller.
        self._releases: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"RedisTokenStore(prefix={self._prefix!r})"

    def token_key(self, key: str) -> str:
        """The Redis key holding the token for ``key``."""
        return f"{self._prefix}token:{encode_key(key)}"

    def lock_key(self, key: str) -> str:
        """The Redis key of the refresh lock for ``key``."""
        return f"{self._prefix}lock:{encode_key(key)}"

    async def load(self, key: str) -> Token | None:
        """The stored token for ``key`` with its version, or ``None``; a corrupt entry raises."""
        name = self.token_key(key)
        version, document = await self._call(
            "load", name, self._redis.hmget(name, "version", "token")
        )
        if document is None:
            return None
        if version is None:
            raise TokenStoreError(f"token entry {name} is corrupt: it has no version")
        try:
            token = load_token(document)
        except ResponseDecodeError as exc:
            raise TokenStoreError(f"token entry {name} is corrupt: {exc}") from exc
        try:
            stored_version = int(version)
        except ValueError:
            # Not chained: int()'s message quotes the value, which could be anything, even a secret.
            raise TokenStoreError(f"token entry {name} is corrupt: bad version") from None
        if stored_version < 1:
            raise TokenStoreError(f"token entry {name} is corrupt: version {stored_version}")
        return attrs.evolve(token, version=stored_version)

    async def compare_and_set(
        self, key: str, token: Token, *, expected_version: int
    ) -> Token | None:
        """Write ``token`` as version ``expected_version + 1`` iff Redis holds that version; the
        token as stored, or ``None`` if Redis held another version."""
        name = self.token_key(key)
        new_version = expected_version + 1
        stored = attrs.evolve(token, version=new_version)
        document = dump_token(stored, key=key)
        args: list[str | int] = [expected_version, new_version, document]
        if not self._wait_replicas:
            written = await self._call(
                "compare-and-set", name, self._compare_and_set(keys=[name], args=args)
            )
            return stored if written else None
        return stored if await self._replicated_write(name, args) else None

    async def _replicated_write(self, name: str, args: list[str | int]) -> bool:
        """Compare-and-set, then ``WAIT``, on one connection: WAIT counts that client's writes."""
        pipe = self._redis.pipeline(transaction=False)
        await self._compare_and_set(keys=[name], args=args, client=pipe)
        _ = pipe.wait(self._wait_replicas, max(1, round(self._wait_timeout * 1000)))
        written, acknowledged = await self._call(
            "compare-and-set",
            name,
            pipe.execute(),
            limit=self._command_timeout + self._wait_timeout,
        )
        if written and int(acknowledged) < self._wait_replicas:
            raise TokenStoreError(
                f"token written to {name}, but only {acknowledged} of {self._wait_replicas}"
                f" replicas acknowledged it within {self._wait_timeout:g}s"
            )
        return bool(written)

    async def keys(self) -> list[str]:
        """Every key with a token under this prefix (``SCAN``, then each entry's own key)."""
        pattern = f"{self._prefix}token:*"
        names: list[str | bytes] = await self._call(
            "scan", pattern, self._scan(pattern), limit=self._command_timeout * 4
        )
        found = []
        for name in names:
            document = await self._call("load", str(name), self._redis.hget(name, "token"))
            try:
                key = json.loads(document).get("key") if document is not None else None
            except (ValueError, AttributeError):
                key = None
            if isinstance(key, str) and key and self.token_key(key) == _text(name):
                found.append(key)
        return sorted(found)

    async def _scan(self, pattern: str) -> list[str | bytes]:
        return [name async for name in self._redis.scan_iter(match=pattern, count=500)]

    async def delete(self, key: str) -> None:
        """Forget the token for ``key`` (no error if absent)."""
        name = self.token_key(key)
        await self._call("delete", name, self._redis.delete(name))

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Exclusive access to ``key`` for every task, process and host using this Redis prefix."""
        name = self.lock_key(key)
        loop = asyncio.get_running_loop()
        deadline = None if self._lock_timeout is None else loop.time() + self._lock_timeout
        # Tasks of this process queue here first: only one per key polls Redis.
        async with self._local_locks.hold(name, deadline, lambda: self._lock_timeout_error(key)):
            value = uuid.uuid4().hex
            await self._acquire(loop, name, value, deadline, key)
            watchdog = asyncio.create_task(self._keep_alive(name, value)) if self._extend else None
            try:
                yield
            finally:
                try:
                    if watchdog is not None:
                        watchdog.cancel()
                        await asyncio.wait([watchdog])
                finally:
                    await self._release(name, value)

    # -- internals ------------------------------------------------------------------------------

    async def _call(
        self, action: str, name: str, command: Awaitable[_T], *, limit: float | None = None
    ) -> _T:
        task = asyncio.current_task()
        cancel_requests = task.cancelling() if task is not None else 0
        if limit is None:
            limit = self._command_timeout
        try:
            async with asyncio.timeout(max(limit, 0.001)):
                result = await command
        except TimeoutError:
            raise _NoAnswer(f"Redis {action} of {name} got no answer within {limit:.3g}s") from None
        except _REDIS_ERRORS as exc:
            raise TokenStoreError(f"Redis {action} of {name} failed: {exc}") from exc
        # On Python 3.11 asyncio.wait_for inside redis-py drops a cancellation that arrives as the
        # reply does (CPython gh-86296). The request is still counted, so honour it here: a lock
        # waiter that ignored its cancellation would go on to take a lock nobody releases.
        if task is not None and task.cancelling() > cancel_requests:
            raise asyncio.CancelledError
        return result

    async def _acquire(
        self,
        loop: asyncio.AbstractEventLoop,
        name: str,
        value: str,
        deadline: float | None,
        key: str,
    ) -> None:
        ttl_ms = max(1, round(self._lock_ttl * 1000))
        maybe_set = False
        while True:
            left = self._command_timeout if deadline is None else deadline - loop.time()
            # After an attempt that got no answer (it may have set the lock), the script also
            # counts a lock already holding our value as acquired.
            command = (
                self._acquire_script(keys=[name], args=[value, ttl_ms])
                if maybe_set
                else self._redis.set(name, value, nx=True, px=ttl_ms)
            )
            try:
                acquired = await self._call(
                    "lock", name, command, limit=min(self._command_timeout, left)
                )
            except _NoAnswer:
                maybe_set = True
                if deadline is not None and loop.time() >= deadline:
                    await self._release(name, value)
                    raise self._lock_timeout_error(key) from None
                continue
            except BaseException:
                # The SET may have reached the server before the failure or cancellation: undo it
                # (harmless if it did not, since release checks our unique value).
                await self._release(name, value)
                raise
            if acquired:
                return
            now = loop.time()
            if deadline is not None and now >= deadline:
                raise self._lock_timeout_error(key)
            pause = self._poll_interval * random.uniform(0.5, 1.5)
            await asyncio.sleep(pause if deadline is None else min(pause, deadline - now))

    def _lock_timeout_error(self, key: str) -> TokenStoreError:
        return TokenStoreError(
            f"timed out after {self._lock_timeout}s waiting for the lock on key {key!r} in {self}"
        )

    async def _keep_alive(self, name: str, value: str) -> None:
        ttl_ms = max(1, round(self._lock_ttl * 1000))
        while True:
            await asyncio.sleep(self._lock_ttl / 3)
            try:
                # Through _call so that a cancellation redis-py drops still stops the watchdog;
                # lock() awaits the cancelled watchdog and would otherwise wait forever.
                still_ours = await self._call(
                    "extend", name, self._extend_script(keys=[name], args=[value, ttl_ms])
                )
            except TokenStoreError as exc:
                # The lock may still be ours; try again next tick rather than give up on a blip.
                log.warning("could not extend the lock %s: %s", name, exc)
                continue
            if not still_ours:
                log.warning(
                    "lost the lock %s while holding it (TTL ran out or Redis failed over); "
                    "compare-and-set still protects the stored token",
                    name,
                )
                return

    async def _release(self, name: str, value: str) -> None:
        # Shielded so a second cancellation cannot leave the lock held until its TTL runs out.
        task = asyncio.create_task(self._release_now(name, value))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        await asyncio.shield(task)

    async def _release_now(self, name: str, value: str) -> None:
        try:
            await self._call("unlock", name, self._release_script(keys=[name], args=[value]))
        except TokenStoreError as exc:
            # Not raised: the caller's work is done. Retried in the background until the TTL
            # would have freed the lock anyway, so a Redis that thaws sooner has no orphan lock.
            log.info("could not release the lock %s (retrying until its TTL): %s", name, exc)
            self._spawn_release_retry(name, value)

    def _spawn_release_retry(self, name: str, value: str) -> None:
        task = asyncio.create_task(self._retry_release(name, value))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _retry_release(self, name: str, value: str) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._lock_ttl
        while loop.time() < give_up:
            await asyncio.sleep(min(self._poll_interval * 4, max(give_up - loop.time(), 0)))
            try:
                await self._call("unlock", name, self._release_script(keys=[name], args=[value]))
                return
            except TokenStoreError:
                continue
