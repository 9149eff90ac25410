"""Where the OAuth endpoints live, and which data hosts may receive a bearer token."""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

import attrs

from ._errors import ConfigurationError, UnsafeEndpointError

__all__ = ["PRODUCTION", "STAGING", "Environment"]

# A DNS label: letters, digits and inner hyphens. Anything else (userinfo tricks, percent escapes,
# unicode look-alikes, backslashes) is refused rather than normalised.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_API_PATHS: Final = frozenset({"/api", "/api/"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class Environment:
    """An Actionstep environment: OAuth URLs and the hosts allowed in ``api_endpoint``.

    Use :data:`PRODUCTION` or :data:`STAGING`, or :meth:`local` for a FakeActionstep server.
    ``allow_loopback`` and ``allow_http`` are explicit opt-ins that the presets never set.
    """

    name: str
    authorize_url: str
    token_url: str
    api_host_suffixes: tuple[str, ...]
    allow_loopback: bool = False
    allow_http: bool = False

    def __attrs_post_init__(self) -> None:
        for url in (self.authorize_url, self.token_url):
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ConfigurationError(f"{self.name}: {url!r} is not an absolute http(s) URL")
            if parts.scheme == "http" and not self.allow_http:
                raise ConfigurationError(
                    f"{self.name}: {url!r} uses plain http; pass allow_http=True to permit it"
                )

    @classmethod
    def local(cls, base_url: str, *, name: str = "local") -> Environment:
        """An environment served from ``base_url`` on loopback, such as a FakeActionstep server."""
        base = base_url.rstrip("/")
        host = urlsplit(base).hostname or ""
        if not is_loopback(host):
            raise ConfigurationError(f"Environment.local needs a loopback URL, got host {host!r}")
        return cls(
            name=name,
            authorize_url=f"{base}/api/oauth/authorize",
            token_url=f"{base}/api/oauth/token",
            api_host_suffixes=(),
            allow_loopback=True,
            allow_http=True,
        )

    def validate_api_endpoint(self, url: object) -> str:
        """Return ``url`` normalised to ``scheme://host[:port]/api/``, or raise UnsafeEndpointError.

        The endpoint arrives in a token response, so it is untrusted input: a token must never be
        sent to a host outside this environment.
        """
        if not isinstance(url, str) or not url or len(url) > 2048:
            raise UnsafeEndpointError("api_endpoint is missing or not a string")
        if not url.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
            raise UnsafeEndpointError("api_endpoint contains characters that are never valid")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsafeEndpointError("api_endpoint is not a valid URL") from exc
        host = parts.hostname or ""
        loopback = self.allow_loopback and is_loopback(host)
        plain_http_ok = parts.scheme == "http" and self.allow_http and loopback
        if parts.scheme != "https" and not plain_http_ok:
            scheme = parts.scheme or "nothing"
            raise UnsafeEndpointError(f"api_endpoint must use https, not {scheme}")
        if "@" in parts.netloc:
            raise UnsafeEndpointError("api_endpoint must not carry user information")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise UnsafeEndpointError("api_endpoint must not carry a query or fragment")
        if parts.path not in _API_PATHS:
            raise UnsafeEndpointError("api_endpoint path must be /api/")
        if loopback:
            netloc = parts.netloc
        else:
            if port not in (None, 443):
                raise UnsafeEndpointError("api_endpoint must not name a port other than 443")
            if not self._host_allowed(host):
                raise UnsafeEndpointError(
                    f"api_endpoint host is not under {', '.join(self.api_host_suffixes) or 'any'}"
                    f" allowed domain of the {self.name} environment"
                )
            netloc = host
        return f"{parts.scheme}://{netloc}/api/"

    def _host_allowed(self, host: str) -> bool:
        labels = host.split(".")
        if not all(_LABEL.match(label) for label in labels):
            return False
        return any(
            host.endswith("." + suffix) and host != suffix for suffix in self.api_host_suffixes
        )


PRODUCTION: Final = Environment(
    name="production",
    authorize_url="https://go.actionstep.com/api/oauth/authorize",
    token_url="https://api.actionstep.com/api/oauth/token",
    api_host_suffixes=("actionstep.com",),
)
STAGING: Final = Environment(
    name="staging",
    authorize_url="https://go.actionstepstaging.com/api/oauth/authorize",
    token_url="https://api.actionstepstaging.com/api/oauth/token",
    api_host_suffixes=("actionstepstaging.com",),
)
