"""RedisRateBudget: one organisation's rate budget shared by every process and host, in Redis.

Install with the ``redis`` extra and hand it to the key's governor::

    governor = Governor(key, shared=RedisRateBudget(redis))
    client = AsyncResourceClient(manager, key, governor=governor)

For a key whose :func:`encode_key` is ``NAME`` (keys share a hash tag, so a cluster works):

``{prefix}rate:{NAME}``
    A hash: ``paused`` (Redis time until which nobody sends: the latest 429's Retry-After),
    ``base``/``changed``/``gen``/``probing``/``ceiling``/``settled`` (the learned rate, as in
    ``actionstep_async._rate``) and ``tat`` (the next free send slot).
``{prefix}rate:{NAME}:leases``
    A sorted set of concurrency leases scored by their expiry: a worker killed mid-request
    holds its slot only until then.
``{prefix}rate:{NAME}:ok``
    Recent successes (scored by time), from which a 429 measures the accepted rate.
``{prefix}token-cooldown:{NAME}``
    Present while the token endpoint asked everyone to wait (its TTL is the wait).

Every time is Redis's own (``TIME`` inside the scripts), never a caller's clock. The scripts
mirror the pure functions of ``actionstep_async._rate``; change both together. Redis failures
raise ``BudgetUnavailable``, on which the governor carries on alone and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .._governor import BudgetUnavailable, Grant
from .._rate import GovernorPolicy
from ._base import encode_key

__all__ = ["RedisRateBudget"]

_T = TypeVar("_T")
_REDIS_ERRORS: Final = (RedisError, OSError)
_IDLE_TTL: Final = 86400
"""Seconds an unused key's budget stays in Redis."""

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# ARGV[1..3] of both rate scripts: growth, probe_doubling, max_rate (0: none); ARGV[11..13]
# are start_doubling, plateau, recovery. Mirrors rate_at.
_RATE_AT: Final = """
local function rate_at(h, now)
  local base = tonumber(h[2] or '0')
  if base <= 0 then
    return nil
  end
  local since = math.max(0, now - tonumber(h[3] or '0'))
  local ceiling = tonumber(h[7] or '0')
  local rate
  if h[6] == '1' then
    local doubling = tonumber(ARGV[2])
    if tonumber(h[5] or '0') == 0 then
      doubling = tonumber(ARGV[11])
    end
    rate = base * 2 ^ math.min(since / doubling, 30)
  elseif ceiling <= 0 then
    rate = base * (1 + tonumber(ARGV[1]) * since)
  else
    local recovery = tonumber(ARGV[13])
    local target = math.max(base, tonumber(ARGV[12]) * ceiling)
    local gap = (target - base) * math.exp(-since / recovery)
    local beyond = math.max(0, since - 3 * recovery)
    local growth = tonumber(ARGV[1])
    if h[8] ~= '1' then
      beyond = math.max(0, since - recovery)
      growth = growth * 10
    end
    rate = target - gap + target * growth * beyond
    -- 30 and 10: _rate.QUIET and _rate.QUIET_DOUBLING
    rate = rate * 2 ^ math.min(math.max(0, since - 30) / 10, 30)
  end
  local most = tonumber(ARGV[3])
  if most > 0 and rate > most then
    rate = most
  end
  return rate
end
local h = redis.call('HMGET', KEYS[1], 'paused', 'base', 'changed', 'tat', 'gen', 'probing',
  'ceiling', 'settled')
local gen = tonumber(h[5] or '0')
"""

# ARGV[4..]: lease, shared_concurrency, lease_ttl, poll interval, idle ttl, initial rate, bulk
# ('1': paced by the slow start before the first 429). Returns wait, generation, granted and
# the rate the slot was spaced at ('0': unpaced). The spacing is the rate at the slot's time.
_ACQUIRE: Final = (
    _NOW
    + _RATE_AT
    + """
local paused = tonumber(h[1] or '0')
if paused > now then
  return {tostring(paused - now), gen, 0, '0'}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return {ARGV[7], gen, 0, '0'}
end
if h[2] == false and tonumber(ARGV[9]) > 0 then
  h[2], h[3], h[6] = ARGV[9], tostring(now), '1'
  redis.call('HSET', KEYS[1], 'base', h[2], 'changed', h[3], 'probing', '1')
end
local wait = 0
local rate = nil
local send = math.max(tonumber(h[4] or '0'), now)
if ARGV[10] == '1' or gen > 0 then
  rate = rate_at(h, send)
end
if rate ~= nil then
  wait = send - now
  redis.call('HSET', KEYS[1], 'tat', tostring(send + 1 / rate))
end
redis.call('ZADD', KEYS[2], now + wait + tonumber(ARGV[6]), ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return {tostring(wait), gen, 1, tostring(rate or 0)}
"""
)

_PAUSED_FOR: Final = (
    _NOW
    + """
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused') or '0')
return tostring(math.max(0, paused - now))
"""
)

_RELEASE: Final = (
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
"""
)

# ARGV: lease, interval (1 / the rate its slot was spaced at). Closes up the schedule.
_GIVE_BACK: Final = (
    _NOW
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
if tat > now then
  redis.call('HSET', KEYS[1], 'tat', tostring(math.max(now, tat - tonumber(ARGV[2]))))
end
return 1
"""
)

# ARGV[4..]: retry_after (-1: none), sent generation, decrease, min_rate, window, idle ttl.
# Mirrors _rate.decreased and _rate.accepted_rate (successes since the last pause ended).
_RATE_LIMITED: Final = (
    _NOW
    + _RATE_AT
    + """
local resume = now
local retry_after = tonumber(ARGV[4])
if retry_after >= 0 then
  resume = now + retry_after
  if resume > tonumber(h[1] or '0') then
    redis.call('HSET', KEYS[1], 'paused', tostring(resume),
      'tat', tostring(math.max(tonumber(h[4] or '0'), resume)))
  end
end
if gen ~= tonumber(ARGV[5]) then
  return 0
end
local window = tonumber(ARGV[8])
if h[6] == '1' then
  -- _rate.measure_window: during a ramp only its last doubling period counts.
  local doubling = tonumber(ARGV[2])
  if gen == 0 then
    doubling = tonumber(ARGV[11])
  end
  window = math.min(window, doubling)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
local start = math.max(now - window, tonumber(h[3] or '0'))
local current = rate_at(h, now)
local reference = nil
local probing = '0'
local count = redis.call('ZCOUNT', KEYS[2], start, '+inf')
if count >= 2 then
  local first = tonumber(redis.call('ZRANGEBYSCORE', KEYS[2], start, '+inf', 'WITHSCORES',
    'LIMIT', 0, 1)[2])
  -- 0.5: _rate.MIN_SPAN
  local span = math.max(now - first, 0.5)
  reference = (count - 1) / span
  if span <= 0.5 then
    probing = '1'
  end
end
if reference == nil then
  probing = '1'
  reference = current
end
if reference == nil then
  redis.call('HSET', KEYS[1], 'gen', gen + 1)
  return 1
end
if current ~= nil and current < reference then
  reference = current
end
local most = tonumber(ARGV[3])
if most > 0 and reference > most then
  reference = most
end
local floor = tonumber(ARGV[7])
local ceiling = tonumber(h[7] or '0')
local settled = h[8] or '0'
if probing == '1' and (ceiling > 0 or h[6] == '1') then
  -- Nothing measured, but a ceiling or a probe: the refused rate caps the limit.
  probing = '0'
  local refused = math.max(floor, reference)
  if ceiling > 0 then
    ceiling = math.min(ceiling, refused)
  else
    ceiling = refused
  end
elseif probing == '0' then
  ceiling = math.max(floor, reference)
  settled = '1'
  if h[6] == '1' then
    settled = '0'
  end
end
redis.call('HSET', KEYS[1], 'base', tostring(math.max(floor, reference * tonumber(ARGV[6]))),
  'changed', tostring(math.max(now, resume)), 'gen', gen + 1, 'probing', probing,
  'ceiling', tostring(ceiling), 'settled', settled)
redis.call('EXPIRE', KEYS[1], ARGV[9])
return 1
"""
)

_COOL_DOWN: Final = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"""


class RedisRateBudget:
    """The shared half of the governor: rate, pause and leases of each key in Redis.

    ``poll_interval`` is how long a caller waits before asking again when every shared
    concurrency lease is taken. The caller owns the Redis client; either ``decode_responses``
    setting works.
    """

    def __init__(
        self, redis: Redis, *, prefix: str = "actionstep:", poll_interval: float = 0.02
    ) -> None:
        if not poll_interval > 0:
            raise ValueError("poll_interval must be positive")
        self._redis = redis
        self._prefix = prefix
        self._poll = str(poll_interval)
        self._acquire = redis.register_script(_ACQUIRE)
        self._paused_for = redis.register_script(_PAUSED_FOR)
        self._release = redis.register_script(_RELEASE)
        self._rate_limited = redis.register_script(_RATE_LIMITED)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._cool_down = redis.register_script(_COOL_DOWN)

    def __repr__(self) -> str:
        return f"RedisRateBudget(prefix={self._prefix!r})"

    def rate_key(self, key: str) -> str:
        """The Redis hash holding ``key``'s shared rate and pause."""
        return f"{self._prefix}rate:{{{encode_key(key)}}}"

    async def acquire(
        self, key: str, lease: str, policy: GovernorPolicy, *, bulk: bool = False
    ) -> Grant:
        name = self.rate_key(key)
        args: list[str | float] = [
            *_rate_args(policy),
            lease,
            policy.shared_concurrency,
            policy.lease_ttl,
            self._poll,
            _IDLE_TTL,
            policy.initial_rate or 0,
            "1" if bulk else "0",
            *_shape_args(policy),
        ]
        wait, generation, granted, rate = await _guard(
            self._acquire(keys=[name, name + ":leases"], args=args)
        )
        spaced = float(rate)
        return Grant(float(wait), int(generation), lease if int(granted) else None, spaced or None)

    async def paused_for(self, key: str) -> float:
        """Seconds until the shared pause of ``key`` ends (0: not paused)."""
        return float(await _guard(self._paused_for(keys=[self.rate_key(key)])))

    async def release(self, key: str, lease: str, *, ok: bool) -> None:
        name = self.rate_key(key)
        args = [lease, "1" if ok else "0", 60.0, _IDLE_TTL]
        await _guard(self._release(keys=[name + ":leases", name + ":ok"], args=args))

    async def give_back(self, key: str, lease: str, interval: float) -> None:
        """Return an unused send slot (``interval`` s of the schedule) and its lease."""
        name = self.rate_key(key)
        args: list[str | float] = [lease, interval]
        await _guard(self._give_back(keys=[name, name + ":leases"], args=args))

    async def rate_limited(
        self, key: str, retry_after: float | None, generation: int, policy: GovernorPolicy
    ) -> None:
        name = self.rate_key(key)
        args: list[str | float] = [
            *_rate_args(policy),
            -1 if retry_after is None else retry_after,
            generation,
            policy.decrease,
            policy.min_rate,
            policy.window,
            _IDLE_TTL,
            0,
            *_shape_args(policy),
        ]
        await _guard(self._rate_limited(keys=[name, name + ":ok"], args=args))

    # -- the token endpoint's cool-down (TokenManager.cooldown) ---------------------------------

    def cooldown_key(self, key: str) -> str:
        return f"{self._prefix}token-cooldown:{{{encode_key(key)}}}"

    async def cool_down(self, key: str, seconds: float) -> None:
        """Every process waits ``seconds`` before its next token request for ``key``."""
        milliseconds = max(1, round(seconds * 1000))
        await _guard(self._cool_down(keys=[self.cooldown_key(key)], args=[milliseconds]))

    async def cooling_for(self, key: str) -> float:
        """Seconds left of the token endpoint's cool-down for ``key`` (0: none)."""
        remaining = await _guard(self._redis.pttl(self.cooldown_key(key)))
        return max(0.0, int(remaining) / 1000)


def _rate_args(policy: GovernorPolicy) -> list[str | float]:
    return [policy.growth, policy.probe_doubling, policy.max_rate or 0]


def _shape_args(policy: GovernorPolicy) -> list[str | float]:
    """ARGV[11..13] of both rate scripts."""
    return [policy.start_doubling, policy.plateau, policy.recovery]


async def _guard(call: Awaitable[_T]) -> _T:
    try:
        return await call
    except _REDIS_ERRORS as exc:
        raise BudgetUnavailable(type(exc).__name__) from exc
