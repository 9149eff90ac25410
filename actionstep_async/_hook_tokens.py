"""The secret in a REST hook's URL: Actionstep signs nothing, so the target URL is the credential.

Every subscription gets its own token, ``<nonce>.<mac>``: a fresh random nonce from
:mod:`secrets` and an HMAC-SHA256 of it under the receiver's :class:`HookSecret`. The receiver
checks a token with the secret alone (no shared table between the process that subscribes and
the processes that receive), in constant time, and ``ensure`` recognises the hooks it owns by
the same check. Rotating the secret invalidates every token at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._errors import ConfigurationError, InvalidRequestError

__all__ = ["TOKEN_PARAMETER", "HookSecret", "redact_target", "split_target"]

TOKEN_PARAMETER: Final = "hook_token"
"""The query parameter of the target URL that carries the token."""

_CONTEXT: Final = b"actionstep-async resthook token v1\x00"
_NONCE_BYTES: Final = 16
_MAC_BYTES: Final = 16
_MIN_SECRET: Final = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class HookSecret:
    """The key that mints and checks hook URL tokens; keep it with your client secret.

    ``HookSecret.generate()`` makes a new one (store ``reveal()`` somewhere safe, e.g. an
    environment variable); ``HookSecret(text)`` loads it. The repr never shows it.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        given: object = secret
        if not isinstance(given, str) or len(secret) < _MIN_SECRET:
            raise ConfigurationError(f"a hook secret needs at least {_MIN_SECRET} characters")
        self._key = secret.encode()

    @classmethod
    def generate(cls) -> HookSecret:
        """A new random secret (256 bits from :mod:`secrets`)."""
        return cls(secrets.token_urlsafe(32))

    def reveal(self) -> str:
        """The secret itself, to store it. Never log it."""
        return self._key.decode()

    def __repr__(self) -> str:
        return "HookSecret(<hidden>)"

    def _mac(self, nonce: str) -> str:
        digest = hmac.new(self._key, _CONTEXT + nonce.encode(), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def mint(self) -> str:
        """A new unguessable token for one subscription."""
        nonce = _b64(secrets.token_bytes(_NONCE_BYTES))
        return f"{nonce}.{self._mac(nonce)}"

    def verify(self, token: str | None) -> bool:
        """Whether ``token`` was minted with this secret (constant time in the MAC)."""
        if not token or len(token) > 128:
            return False
        nonce, dot, mac = token.partition(".")
        if not dot or not nonce:
            return False
        return hmac.compare_digest(self._mac(nonce).encode(), mac.encode())

    def sign(self, target_url: str) -> str:
        """``target_url`` with a freshly minted token added as ``hook_token``."""
        base, _ = split_target(target_url)
        parts = urlsplit(base)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query.append((TOKEN_PARAMETER, self.mint()))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def owns(self, url: str) -> bool:
        """Whether ``url`` carries a token minted with this secret."""
        return self.verify(split_target(url)[1])


def check_target(target_url: object) -> str:
    """``target_url`` if it is an absolute http(s) URL without a token of its own."""
    if not isinstance(target_url, str) or not target_url.isascii():
        raise InvalidRequestError("the target URL must be an ASCII string")
    parts = urlsplit(target_url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise InvalidRequestError("the target URL must be an absolute http(s) URL, no fragment")
    if split_target(target_url)[1] is not None:
        raise InvalidRequestError(f"the target URL must not carry {TOKEN_PARAMETER}; it is added")
    return target_url


def split_target(url: str) -> tuple[str, str | None]:
    """``(url without the token, the token or None)``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tokens = [value for name, value in query if name == TOKEN_PARAMETER]
    kept = [(name, value) for name, value in query if name != TOKEN_PARAMETER]
    base = urlunsplit(parts._replace(query=urlencode(kept)))
    return base, tokens[0] if tokens else None


def redact_target(url: str) -> str:
    """The URL as it may be shown: the token replaced by ``...``."""
    base, token = split_target(url)
    if token is None:
        return base
    return f"{base}{'&' if '?' in base else '?'}{TOKEN_PARAMETER}=..."
