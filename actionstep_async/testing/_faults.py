"""Fault injection: declarative rules, a seeded dice roll, and a token-bucket rate limiter."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, get_args

import attrs

__all__ = ["ALL_ROUTES", "TOKEN_ROUTE", "FaultKind", "FaultRule", "Faults", "TokenBucket"]

FaultKind = Literal["status", "rate_limit", "latency", "drop", "html", "malformed"]
_KINDS: Final = frozenset(get_args(FaultKind))
TOKEN_ROUTE: Final = "oauth/token"
AUTHORIZE_ROUTE: Final = "oauth/authorize"
ALL_ROUTES: Final = "*"


def _check_kind(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in _KINDS:
        raise ValueError(f"unknown fault kind {value!r}; use one of {sorted(_KINDS)}")


def _check_probability(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError("probability must be between 0 and 1")


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


@attrs.frozen
class FaultRule:
    """One kind of misbehaviour, applied to matching requests before they are handled.

    ``resource`` chooses where: ``None`` means every ``/api/rest/`` resource (the data API),
    a resource name (``"actions"``) just that one, ``"oauth/token"`` the token endpoint,
    ``"oauth/authorize"`` the consent page, and ``"*"`` every route. ``method`` narrows it to one
    HTTP verb. ``count`` limits how many times the rule fires (``None``: unlimited) and
    ``probability`` makes it fire on a seeded random subset of matching requests.

    Kinds: ``status`` (``status``, default 500, with an ``errors`` body), ``rate_limit`` (429;
    a ``Retry-After`` header only when ``retry_after`` is set), ``latency`` (sleeps ``latency``
    seconds, then the request proceeds and later rules still apply), ``drop`` (the connection is
    closed with no response; with ``after=True`` the request is handled first, so a write is
    applied but its answer is lost), ``html`` (an HTML page, ``status`` default 200) and
    ``malformed`` (truncated JSON, ``status`` default 200).
    """

    kind: FaultKind = attrs.field(validator=_check_kind)
    probability: float = attrs.field(default=1.0, validator=_check_probability)
    count: int | None = None
    resource: str | None = None
    method: str | None = attrs.field(default=None, converter=_upper)
    status: int | None = None
    retry_after: float | None = None
    latency: float = 0.0
    after: bool = False

    def applies_to(self, route: str, method: str, *, rest: bool) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.resource is None:
            return rest
        return self.resource in (ALL_ROUTES, route)

    @property
    def response_status(self) -> int:
        if self.status is not None:
            return self.status
        return {"status": 500, "rate_limit": 429}.get(self.kind, 200)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> FaultRule:
        """Build a rule from the control endpoint's JSON; unknown keys are an error."""
        names = {field.name for field in attrs.fields(cls)}
        unknown = set(document) - names
        if unknown:
            raise ValueError(f"unknown FaultRule fields: {sorted(unknown)}")
        return cls(**document)


@attrs.define
class _Armed:
    rule: FaultRule
    fired: int = 0


class Faults:
    """The active rules. Dice come from their own seeded stream so that adding token requests or
    records never changes which requests a probabilistic rule hits."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(f"{seed}:faults")
        self._rules: list[_Armed] = []

    def add(self, rule: FaultRule) -> None:
        self._rules.append(_Armed(rule))

    def clear(self) -> None:
        self._rules.clear()
        self._rng = random.Random(f"{self._seed}:faults")

    @property
    def rules(self) -> list[FaultRule]:
        return [armed.rule for armed in self._rules]

    def select(self, route: str, method: str, *, rest: bool) -> list[FaultRule]:
        """The rules that fire for this request: any latency rules, then at most one other."""
        fired: list[FaultRule] = []
        for armed in self._rules:
            rule = armed.rule
            if not rule.applies_to(route, method, rest=rest):
                continue
            if rule.count is not None and armed.fired >= rule.count:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            armed.fired += 1
            fired.append(rule)
            if rule.kind != "latency":
                break
        return fired


class TokenBucket:
    """``rate`` requests per second on average, bursts of up to ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        retry_after: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.retry_after = retry_after
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> float | None:
        """Spend one token; returns None if allowed, else whole seconds until one is available."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return float(max(1, math.ceil((1.0 - self._tokens) / self.rate)))
