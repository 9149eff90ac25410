"""Child process: upload and download files against a fake elsewhere, report peak RSS.

``python -m tests.documents._memory_worker TOKEN_JSON OUT_DIR FILE...`` uploads and downloads
each FILE in turn (the first is the warm-up, which reaches the steady state of part buffers)
and prints one JSON line: each file's name and the peak resident set size (kB, getrusage)
after its round trip.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path

from actionstep_async import (
    AsyncResourceClient,
    Environment,
    OAuthClient,
    TokenManager,
)
from actionstep_async._tokens import load_token


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def main(token_json: str, out: Path, sources: list[Path]) -> None:
    data = json.loads(token_json)
    token = load_token(data["token"])
    oauth = OAuthClient(
        client_id=data["client_id"],
        client_secret=data["client_secret"],
        redirect_uri=data["redirect_uri"],
        environment=Environment.local(data["base_url"]),
    )
    manager = TokenManager(oauth)
    await manager.save("memory", token)
    peaks = {}
    async with AsyncResourceClient(manager, "memory") as client:
        for source in sources:
            record = await client.documents.upload(source, name=source.name, action=1)
            await client.documents.download(record, out / f"{source.name}.out")
            peaks[source.name] = _peak_kb()
    await manager.aclose()
    sys.stdout.write(json.dumps(peaks) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), [Path(arg) for arg in sys.argv[3:]]))
