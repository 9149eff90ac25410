"""Run FakeActionstep as a standalone server: ``python -m actionstep_async.testing --port 8080``.

Once it accepts connections it prints ``FakeActionstep listening on http://HOST:PORT`` first, then
what a client needs (client id and secret, redirect URI, ``export ACTIONSTEP_...`` lines), and
serves until SIGINT or SIGTERM. Other processes drive it through ``/_fake/*``.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from collections.abc import Sequence

from ._data import SEEDED_RESOURCES
from ._server import FakeActionstep

_BULK_DEFAULT = "actions,participants,filenotes,timerecords"


_SUGGESTED_REDIRECT = "http://127.0.0.1:8765/callback"


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run a fake Actionstep API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--records", type=int, default=None, help="seeded records per resource")
    parser.add_argument(
        "--resources",
        default=_BULK_DEFAULT,
        help=f"comma list of resources that get --records (default {_BULK_DEFAULT})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expires-in", type=float, default=3600.0, help="access token lifetime")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    parser.add_argument("--burst", type=int, default=None, help="rate-limit burst size")
    parser.add_argument("--client-id", default="test-client-id")
    parser.add_argument("--client-secret", default="test-client-secret")
    parser.add_argument(
        "--redirect-uri",
        default=_SUGGESTED_REDIRECT,
        help=f"the registered redirect URI ({_SUGGESTED_REDIRECT})",
    )
    parser.add_argument(
        "--strict-redirect-uri",
        action="store_true",
        help="accept only --redirect-uri (default: any http loopback URI, like a CLI login)",
    )
    parser.add_argument("--reuse-detection", action="store_true")
    parser.add_argument("--grace-seconds", type=float, default=0.0)
    return parser


def _records(count: int | None, resources: str) -> dict[str, int]:
    if count is None:
        return {}
    names = [name.strip() for name in resources.split(",") if name.strip()]
    unknown = set(names) - set(SEEDED_RESOURCES)
    if unknown:
        choices = ", ".join(SEEDED_RESOURCES)
        raise SystemExit(f"cannot seed {sorted(unknown)}; choose from {choices}")
    return dict.fromkeys(names, count)


async def serve(args: argparse.Namespace) -> None:
    fake = FakeActionstep(
        _records(args.records, args.resources),
        seed=args.seed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uri=args.redirect_uri,
        strict_redirect_uri=args.strict_redirect_uri,
        expires_in=args.expires_in,
        reuse_detection=args.reuse_detection,
        grace_seconds=args.grace_seconds,
        host=args.host,
        port=args.port,
    )
    if args.rate_limit:
        fake.rate_limit(args.rate_limit, args.burst)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        sys.stdout.write(banner(fake, strict=args.strict_redirect_uri))
        sys.stdout.flush()
        await stop.wait()


def banner(fake: FakeActionstep, *, strict: bool) -> str:
    """The listening line, then the settings a client needs, ready to paste into a shell."""
    accepted = "only this one" if strict else "or any other http loopback URI"
    settings = {
        "ACTIONSTEP_ENVIRONMENT": fake.base_url,
        "ACTIONSTEP_CLIENT_ID": fake.client_id,
        "ACTIONSTEP_CLIENT_SECRET": fake.client_secret,
        "ACTIONSTEP_REDIRECT_URI": fake.redirect_uri,
    }
    exports = "".join(f"  export {name}={shlex.quote(value)}\n" for name, value in settings.items())
    return (
        f"FakeActionstep listening on {fake.base_url}\n"
        f"  base URL:      {fake.base_url}\n"
        f"  client id:     {fake.client_id}\n"
        f"  client secret: {fake.client_secret}\n"
        f"  redirect URI:  {fake.redirect_uri} ({accepted})\n"
        "Point actionstep-async at it (paste into your shell):\n" + exports
    )


def main(
    argv: Sequence[str] | None = None, *, prog: str = "python -m actionstep_async.testing"
) -> None:
    asyncio.run(serve(_parser(prog).parse_args(argv)))


if __name__ == "__main__":
    main()
