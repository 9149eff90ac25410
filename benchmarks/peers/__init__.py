"""Peer harnesses: each client library behind the same two-method interface.

A peer is configured the way its users would configure it (see each module's docstring) and
answers ``await peer.get(action_id)`` with the HTTP status it finally got (after whatever
refreshing and retrying the library does on its own). Every peer decodes the JSON body of a 200
with the same parser, so the comparison measures the libraries, not the JSON decoders.

Tokens never leave these modules except through the persistence files and stores they are meant
for; nothing here prints them.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

try:
    import orjson

    decode: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - the speed extra is installed for benchmarks
    decode = json.loads

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "JSON_API",
    "PEERS",
    "REDIRECT_URI",
    "Peer",
    "Setup",
    "decode",
    "open_peer",
    "read_token_file",
    "write_token_file",
]

CLIENT_ID: Final = "test-client-id"
CLIENT_SECRET: Final = "test-client-secret"  # the fake's; never printed all the same
REDIRECT_URI: Final = "http://127.0.0.1/callback"
JSON_API: Final = "application/vnd.api+json"
POOL_SIZE: Final = 100
"""Connections per client: aiohttp's default connector limit, given to httpx too."""

PEERS: Final = {
    "bare-aiohttp": "bare_aiohttp",
    "authlib": "authlib_peer",
    "aiohttp-oauth2-client": "aiohttp_oauth2_peer",
    "aiohttp-oauth2-client-authcode": "aiohttp_oauth2_peer",
    "ours-plain": "ours",
    "ours-typed": "ours",
    "ours-file": "ours",
    "ours-redis": "ours",
}
"""Peer name -> module in this package. The ``ours-*`` names select records or store;
``aiohttp-oauth2-client-authcode`` is that library's ``AuthorizationCodeGrant`` unchanged."""


@dataclass(frozen=True)
class Setup:
    """Everything a peer needs to start.

    ``token`` is a token document as ``/_fake/token`` mints it (absolute float ``expires_at``);
    when it is ``None`` the peer loads its token from ``token_file`` (peers) or from its store
    (ours), as a process that starts later would. ``store_dir`` is the FileTokenStore directory
    and ``redis_prefix`` the RedisTokenStore key prefix for the ``ours-file`` / ``ours-redis``
    peers. ``concurrency`` is the most requests the caller will have in flight.
    """

    base_url: str
    token: dict[str, Any] | None = None
    token_file: Path | None = None
    concurrency: int = 64
    store_dir: Path | None = None
    redis_prefix: str | None = None
    key: str = "bench"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/api/oauth/token"

    def action_url(self, action_id: int) -> str:
        return f"{self.base_url}/api/rest/actions/{action_id}"


class Peer(Protocol):
    """One configured client. ``get`` returns the final HTTP status; transport errors raise."""

    async def get(self, action_id: int) -> int: ...

    async def aclose(self) -> None: ...


async def open_peer(name: str, setup: Setup) -> Peer:
    """Build peer ``name`` (a key of :data:`PEERS`) inside the running event loop."""
    module = importlib.import_module(f"{__name__}.{PEERS[name]}")
    peer: Peer = await module.open_peer(name, setup)
    return peer


def read_token_file(path: Path) -> dict[str, Any]:
    """The token document a peer persisted (or the benchmark seeded) at ``path``."""
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def write_token_file(path: Path, token: dict[str, Any]) -> None:
    """Persist ``token`` the way a careful user would: temp file, then atomic rename, 0600."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(token), handle)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
