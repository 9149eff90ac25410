"""The fake authorization server's state: codes, token families, rotation and revocation.

A *family* is everything descended from one authorization (or one :meth:`Authority.issue`):
revoking it kills every access and refresh token in it, which is what reuse detection does when
a spent refresh token comes back.
"""

from __future__ import annotations

import hmac
import math
import random
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import attrs

from .._environment import is_loopback
from ._counters import FakeCounters

__all__ = ["Authority", "GrantError", "Pair"]

# Every secret any fake in this process minted, so a test suite can scan its output for leaks.
_ISSUED: set[str] = set()


def issued_secrets() -> frozenset[str]:
    """Access tokens, refresh tokens and codes minted by every FakeActionstep in this process."""
    return frozenset(_ISSUED)


def remember_secret(value: str) -> None:
    """Add a secret the fake saw (a REST hook URL token) to :func:`issued_secrets`."""
    _ISSUED.add(value)


CODE_TTL: Final = 600.0
REFRESH_TTL: Final = 21 * 86400.0
"""Actionstep documents 21 days for refresh tokens."""


class GrantError(Exception):
    """An RFC 6749 error response: ``error`` code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@attrs.define(eq=False)
class _Family:
    ident: int
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    revoked: bool = False


@attrs.define(eq=False)
class _Access:
    value: str
    family: _Family
    issued_at: float
    expires_at: float
    revoked: bool = False


@attrs.define(eq=False)
class _Refresh:
    value: str
    family: _Family
    expires_at: float
    spent_at: float | None = None
    successor: Pair | None = None


@attrs.define(eq=False)
class Pair:
    """An access token and the refresh token issued with it."""

    access: _Access
    refresh: _Refresh

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.access.family.scopes


@attrs.define(eq=False)
class _Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    used_by: _Family | None = None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Authority:
    """Issues, rotates, checks and revokes tokens for one registered client."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        expires_in: float,
        counters: FakeCounters,
        seed: int = 0,
        reuse_detection: bool = False,
        grace_seconds: float = 0.0,
        refresh_expires_in: float = REFRESH_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.strict_redirect_uri = False
        """When False (the default) any http loopback URI is accepted besides the registered one."""
        self.expires_in = expires_in
        self.reuse_detection = reuse_detection
        self.grace_seconds = grace_seconds
        self.refresh_expires_in = refresh_expires_in
        self.counters = counters
        self.clock = clock
        # Own stream: token values stay the same however many records or faults a test uses.
        self._rng = random.Random(f"{seed}:tokens")
        self._families = 0
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}

    def _secret(self, prefix: str) -> str:
        value = f"{prefix}{self._rng.getrandbits(192):048x}"
        _ISSUED.add(value)
        return value

    # -- client authentication ------------------------------------------------------------

    def check_client(self, client_id: str | None, client_secret: str | None) -> str:
        """The authenticated client id, or GrantError(invalid_client)."""
        if not client_id or client_secret is None:
            raise GrantError("invalid_client", "Client authentication is required", 401)
        if not (_same(client_id, self.client_id) and _same(client_secret, self.client_secret)):
            raise GrantError("invalid_client", "Client authentication failed", 401)
        return client_id

    def client_known(self, client_id: str) -> bool:
        return _same(client_id, self.client_id)

    def redirect_allowed(self, redirect_uri: str) -> bool:
        """The registered URI, or (unless strict) any ``http://`` loopback URI, as for a CLI."""
        if _same(redirect_uri, self.redirect_uri):
            return True
        parts = urlsplit(redirect_uri)
        return (
            not self.strict_redirect_uri
            and parts.scheme == "http"
            and is_loopback(parts.hostname or "")
        )

    # -- issuing ----------------------------------------------------------------------------

    def new_code(self, scopes: tuple[str, ...], redirect_uri: str | None = None) -> str:
        code = self._secret("ac-")
        self._codes[code] = _Code(
            self.client_id,
            redirect_uri or self.redirect_uri,
            scopes,
            self.clock() + CODE_TTL,
        )
        return code

    def issue(self, scopes: tuple[str, ...], expires_in: float | None = None) -> Pair:
        """A fresh family, as if a user had just authorized."""
        self._families += 1
        family = _Family(self._families, self.client_id, self.redirect_uri, scopes)
        return self._pair(family, expires_in)

    def _pair(self, family: _Family, expires_in: float | None = None) -> Pair:
        now = self.clock()
        lifetime = self.expires_in if expires_in is None else expires_in
        access = _Access(self._secret("at-"), family, now, now + lifetime)
        refresh = _Refresh(self._secret("rt-"), family, now + self.refresh_expires_in)
        self._access[access.value] = access
        self._refresh[refresh.value] = refresh
        return Pair(access, refresh)

    def remaining(self, pair: Pair) -> int:
        """``expires_in`` to report for a pair (whole seconds, at least 1)."""
        return max(1, math.ceil(pair.access.expires_at - self.clock()))

    # -- grants -----------------------------------------------------------------------------

    def exchange_code(self, code: str, *, client_id: str, redirect_uri: str | None) -> Pair:
        grant = self._codes.get(code)
        if grant is None or grant.expires_at < self.clock():
            raise GrantError("invalid_grant", "The authorization code is invalid or expired")
        if grant.used_by is not None:
            # RFC 6749 4.1.2: a replayed code should revoke what it already produced.
            if self.reuse_detection:
                grant.used_by.revoked = True
            raise GrantError("invalid_grant", "The authorization code has already been used")
        if not _same(client_id, grant.client_id):
            raise GrantError("invalid_grant", "The code was issued to another client")
        if redirect_uri is None or not _same(redirect_uri, grant.redirect_uri):
            raise GrantError("invalid_grant", "redirect_uri does not match the authorization")
        self._families += 1
        family = _Family(self._families, client_id, grant.redirect_uri, grant.scopes)
        grant.used_by = family
        return self._pair(family)

    def refresh(self, value: str, *, client_id: str, redirect_uri: str | None) -> Pair:
        token = self._refresh.get(value)
        now = self.clock()
        if token is None:
            raise GrantError("invalid_grant", "The refresh token is invalid")
        family = token.family
        if token.spent_at is not None:
            self.counters.spent_token_reuses += 1
        if family.revoked:
            raise GrantError("invalid_grant", "The refresh token has been revoked")
        if not _same(client_id, family.client_id):
            raise GrantError("invalid_grant", "The refresh token was issued to another client")
        # Many clients omit redirect_uri on refresh and the real API tolerates it; a wrong one is
        # still refused.
        if redirect_uri is not None and not _same(redirect_uri, family.redirect_uri):
            raise GrantError("invalid_grant", "redirect_uri does not match the authorization")
        if token.spent_at is not None:
            if token.successor is not None and now - token.spent_at <= self.grace_seconds:
                self.counters.grace_reuses += 1
                return token.successor
            if self.reuse_detection:
                family.revoked = True
            raise GrantError("invalid_grant", "The refresh token has already been used")
        if token.expires_at < now:
            raise GrantError("invalid_grant", "The refresh token has expired")
        pair = self._pair(family)
        token.spent_at = now
        token.successor = pair
        return pair

    # -- resource-server checks and test controls ----------------------------------------------

    def check_access(self, value: str) -> str | None:
        """None if the bearer token is good, else the reason (for the 401 detail)."""
        token = self._access.get(value)
        if token is None:
            return "The access token is invalid"
        if token.revoked or token.family.revoked:
            return "The access token has been revoked"
        if token.expires_at <= self.clock():
            return "The access token has expired"
        return None

    def scopes_of(self, value: str) -> tuple[str, ...]:
        token = self._access.get(value)
        return token.family.scopes if token else ()

    def revoke_access(self, value: str) -> bool:
        token = self._access.get(value)
        if token is not None:
            token.revoked = True
        return token is not None

    def expire_access(self, value: str) -> bool:
        token = self._access.get(value)
        if token is not None:
            token.expires_at = min(token.expires_at, self.clock() - 1.0)
        return token is not None

    def revoke_family(self, value: str) -> bool:
        """Revoke the family of an access or refresh token."""
        token = self._access.get(value) or self._refresh.get(value)
        if token is not None:
            token.family.revoked = True
        return token is not None
