"""The issue-15 acceptance run: the CLI's export of three resources under a tight rate limit.

Starts one standalone fake (``--records N --rate-limit R --burst B``) and runs
``actionstep-async export actions participants filenotes`` against it ``--runs`` times, each
with a fresh token and output directory, and reports per run the exit code, the time and the
share of data-API requests the fake answered 429::

    python -m benchmarks.export_rate_limit [--runs 20] [--records 20000] [--rate 15] [--burst 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from actionstep_async.stores import FileTokenStore

from ._fake_process import FakeServerProcess

RESOURCES = ("actions", "participants", "filenotes")
SECRET = "test-client-secret"


def rest_counts(counters: dict[str, object]) -> tuple[int, int]:
    """(data-API requests, of which 429) from the fake's counters."""
    requests = counters["requests"]
    assert isinstance(requests, dict)
    total = limited = 0
    for name, count in requests.items():
        _, route, status = name.split(" ")
        if route.startswith(("oauth", "_fake")):
            continue
        total += int(count)
        if status == "429":
            limited += int(count)
    return total, limited


async def one_run(fake: FakeServerProcess, args: argparse.Namespace, scratch: Path) -> str:
    await fake.control("POST", "reset", {})
    await fake.control("POST", "rate_limit", {"rate": args.rate, "burst": args.burst})
    tokens = scratch / "tokens"
    store = FileTokenStore(tokens)
    token = await fake.mint_token(expires_in=3600)
    assert await store.compare_and_set("default", token, expected_version=0)
    config = scratch / "config.toml"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONSTEP_")}
    env.update(
        ACTIONSTEP_CONFIG=str(config),
        ACTIONSTEP_TOKEN_STORE=str(tokens),
        ACTIONSTEP_CLIENT_ID="test-client-id",
        ACTIONSTEP_CLIENT_SECRET=SECRET,
        ACTIONSTEP_REDIRECT_URI="http://127.0.0.1/callback",
        ACTIONSTEP_ENVIRONMENT=fake.base_url,
        ACTIONSTEP_NO_BROWSER="1",
    )
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actionstep_async",
        "export",
        *RESOURCES,
        "--out",
        str(scratch / "out"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=args.timeout)
    elapsed = time.monotonic() - started
    total, limited = rest_counts(await fake.counters())
    tail = stderr.decode(errors="replace").strip().splitlines()[-1:] if process.returncode else []
    share = limited / max(total, 1)
    return (
        f"exit {process.returncode}  {elapsed:6.1f} s  requests {total:5d}  429s {limited:4d}"
        f" ({share:.2%}) {' '.join(tail)}"
    )


async def main(args: argparse.Namespace) -> None:
    extra = ("--resources", ",".join(RESOURCES), "--client-secret", SECRET)
    async with FakeServerProcess(records=args.records, extra_args=extra) as fake:
        print(
            f"export {' '.join(RESOURCES)}: --records {args.records} --rate-limit {args.rate:g}"
            f" --burst {args.burst}, {args.runs} runs"
        )
        for number in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="export-rate-") as scratch:
                line = await one_run(fake, args, Path(scratch))
            print(f"run {number:2d}: {line}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=900.0)
    asyncio.run(main(parser.parse_args()))
