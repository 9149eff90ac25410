"""The Token value and its JSON form."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from ._errors import ResponseDecodeError

__all__ = ["Clock", "Token", "dump_token", "load_token"]

Clock = Callable[[], float]
"""Returns the current wall-clock time in seconds since the epoch (``time.time`` by default)."""


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible tag for a secret, safe to log."""
    return hashlib.sha256(secret.encode()).hexdigest()[:10]


@attrs.frozen
class Token:
    """One OAuth2 grant for one Actionstep user and organisation.

    ``expires_at`` and ``issued_at`` are absolute wall-clock times, measured from when the token
    request was *sent*, so a slow response never makes a token look fresher than it is.
    ``version`` is the token store's generation counter used for compare-and-set writes.
    ``refresh_claimed_at`` is set in the store while some process is spending the refresh token,
    so that no other process ever presents it too. ``restored_at`` is set on a record a process
    wrote back from its own copy after the store lost or rolled back the key: until the policy's
    quarantine has passed, no process spends that refresh token, so a peer holding a newer copy
    can replace it first.
    The access and refresh tokens never appear in ``repr`` or ``str``; use :attr:`fingerprint`.
    """

    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    expires_at: float
    api_endpoint: str
    issued_at: float
    token_type: str = "bearer"
    orgkey: str | None = None
    scopes: tuple[str, ...] = ()
    version: int = 0
    refresh_claimed_at: float | None = None
    restored_at: float | None = None

    @property
    def lifetime(self) -> float:
        """Seconds between issue and expiry as granted by the server."""
        return self.expires_at - self.issued_at

    @property
    def fingerprint(self) -> str:
        """A short hash of the access token: identifies a token in logs without revealing it."""
        return fingerprint(self.access_token)

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value for this token."""
        return f"Bearer {self.access_token}"

    def expires_in(self, clock: Clock = time.time) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_at - clock()

    def __str__(self) -> str:
        return f"Token(fingerprint={self.fingerprint}, orgkey={self.orgkey!r}, v{self.version})"


_converter = cattrs.Converter(forbid_extra_keys=False)


def _strict(kind: type[Any]) -> Callable[[Any, type[Any]], Any]:
    # cattrs would coerce 5 -> "5" and "1e3" -> 1000.0; a stored token is ours, so be exact.
    def structure(value: Any, _: type[Any]) -> Any:
        if isinstance(value, bool) or not isinstance(value, kind):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            raise TypeError(f"expected {kind.__name__}")
        return value

    return structure


for _kind in (str, int, float):
    _converter.register_structure_hook(_kind, _strict(_kind))


def _scopes(value: Any, _: type[Any]) -> tuple[str, ...]:
    # cattrs would turn the string "actions" into ('a', 'c', ...) and a dict into its keys.
    if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


_converter.register_structure_hook_func(lambda kind: kind == tuple[str, ...], _scopes)


def dump_token(token: Token, **extra: Any) -> str:
    """Serialise a token (secrets included: this is what stores persist) to a JSON document."""
    document: dict[str, Any] = _converter.unstructure(token)
    document.update(extra)
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def load_token(document: str | bytes) -> Token:
    """Parse a JSON document made by :func:`dump_token`; raises ResponseDecodeError if unusable."""
    try:
        raw = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResponseDecodeError("stored token is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise ResponseDecodeError("stored token is not a JSON object")
    try:
        return _converter.structure(raw, Token)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        # transform_error names the failing fields without echoing their values.
        problems = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else type(exc).__name__
        )
        raise ResponseDecodeError(f"stored token is malformed: {problems}") from exc
