"""Scenario 3: a token that is valid locally but revoked at the server.

Each client starts with a fresh token and makes one request (so connections and state are
warm). Then the fake revokes that access token (``/_fake/revoke``) and the client fires N GETs
at once. Only a client that reacts to 401 can recover: ours tells the TokenManager which token
was refused (``token_rejected``), which refreshes once for everybody, and retries each request
once. A final single GET shows whether the client has recovered for later requests.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._fake_process import FakeServerProcess
from ..peers import Setup, open_peer
from ._common import Section, fire_all_at_once, fmt, mint, percentile, table, token_calls

PEERS = ("authlib", "aiohttp-oauth2-client", "ours-plain")
HANDLING = {
    "authlib": "none (refreshes only on local expiry)",
    "aiohttp-oauth2-client": "none (refreshes only on local expiry)",
    "ours-plain": "refresh once on 401 (identity check), retry once",
}
POOL = 100
RECORDS = 1000


@dataclass(frozen=True)
class Sizes:
    requests: int = 1000


QUICK = Sizes(requests=200)


async def run(fake: FakeServerProcess, sizes: Sizes, charts: Path) -> Section:
    rows = []
    ours: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-revoked-") as scratch:
        for name in PEERS:
            await fake.control("POST", "reset", {})
            token = await mint(fake)
            setup = Setup(
                fake.base_url,
                token=token,
                token_file=Path(scratch) / f"{name}.json",
                concurrency=POOL,
            )
            peer = await open_peer(name, setup)
            try:
                warm = await peer.get(1)
                await fake.control("POST", "revoke", {"token": token["access_token"]})
                before, _ = await token_calls(fake)
                fired = await fire_all_at_once(peer, sizes.requests, records=RECORDS)
                after = await peer.get(2)
            finally:
                await peer.aclose()
            calls, reuses = await token_calls(fake)
            if name.startswith("ours"):
                ours["after the 401s"] = calls - before
            assert warm == 200, f"{name}: warm-up request got {warm}"
            rows.append(
                [
                    name,
                    HANDLING[name],
                    f"{fired.failed:,} / {fired.requests:,}",
                    str(calls - before),
                    str(reuses),
                    fmt(percentile(fired.latencies, 0.99) * 1000),
                    "yes" if after == 200 else f"no ({after})",
                ]
            )
    section = Section(
        title="3. Revoked token",
        intro=(
            f"{sizes.requests:,} GETs at once with an access token the server revoked but that"
            " has not expired locally. Token calls are counted after the revocation."
        ),
    )
    section.tables.append(
        table(
            [
                "client",
                "401 handling",
                "failed requests",
                "token calls",
                "spent-token reuses",
                "p99 ms",
                "next request succeeds",
            ],
            rows,
            text=2,
        )
    )
    section.data["ours_token_calls"] = ours
    return section
