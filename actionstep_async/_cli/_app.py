"""Argument parsing, dispatch, signal handling and the mapping of errors to exit statuses."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from .._errors import (
    ActionstepError,
    APIError,
    AuthorizationDenied,
    ClientCredentialsError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ReauthorizationRequired,
    TokenEndpointUnavailable,
    TokenStoreError,
    TransientError,
    TransportError,
)
from .._query import MAX_PAGE_SIZE
from . import _commands
from ._config import VARIABLES, Settings, load_settings
from ._exits import (
    EXIT_CODES_HELP,
    FAILED,
    INTERRUPTED,
    NETWORK,
    REAUTHORIZE,
    STORE,
    USAGE,
    CommandError,
)
from ._hooks import add_hooks_parser
from ._resources import known_resources, unknown_resource_message
from ._sync import add_sync_parser

__all__ = ["build_parser", "run"]

_SIGTERM_STATUS: Final = 128 + signal.SIGTERM
_SIGPIPE_STATUS: Final = 128 + signal.SIGPIPE

_DESCRIPTION = """\
Talk to the Actionstep API from the shell: authorize, inspect tokens, read records and export
whole resources to JSON Lines. 'actionstep-async demo' needs no account or configuration.
"""

_CONFIG_HELP = (
    "configuration (environment variables win over the TOML file):\n"
    + "".join(f"  {variable:<26} {name}\n" for name, variable in VARIABLES.items())
    + (
        "  ACTIONSTEP_CONFIG          path of the TOML file (default: config.toml in the user's\n"
        "                             config directory), using the names on the right as keys\n"
        "  The client secret is read only from the environment or the file, never from arguments.\n"
    )
)

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _page_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"Actionstep serves at most {MAX_PAGE_SIZE} per page")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _add_query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter",
        action="append",
        metavar="FIELD[_OP]=VALUE",
        help="repeatable; OP is one of eq nteq lt lteq gt gteq like ilike ntlike ntilike in ntin"
        " (e.g. --filter name_ilike='*smith*' --filter id_in=1,2,3)",
    )
    parser.add_argument("--sort", metavar="FIELDS", help="comma list; -field for descending")


def _add_keep_alive(
    token_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    keep_alive = token_commands.add_parser(
        "keep-alive", help="refresh stored keys whose refresh token is getting old (for cron)"
    )
    keep_alive.add_argument(
        "--max-idle-days", type=float, default=7.0, help="refresh tokens older than this (7)"
    )
    keep_alive.set_defaults(handler=_commands.token_keep_alive)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actionstep-async",
        description=_DESCRIPTION,
        epilog=_CONFIG_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    adders = (_add_login, _add_token, _add_get, _add_export, _add_demo)
    for add in (*adders, add_hooks_parser, add_sync_parser, _add_fake_server):
        add(commands)
    return parser


def _add_login(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    login = commands.add_parser("login", help="authorize in the browser and store the token")
    login.add_argument(
        "--scope", action="append", help="repeatable (default: ACTIONSTEP_SCOPES or 'all')"
    )
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="only print the URL (also: ACTIONSTEP_NO_BROWSER=1)",
    )
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    login.set_defaults(handler=_commands.login)


def _add_token(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="show or refresh the stored token")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    show = token_commands.add_parser("show", help="expiry, organisation, endpoint, scopes")
    show.set_defaults(handler=_commands.token_show)
    refresh = token_commands.add_parser("refresh", help="refresh the stored token now")
    refresh.set_defaults(handler=_commands.token_refresh)
    for sub in (show, refresh):
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_keep_alive(token_commands)


def _add_get(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    get = commands.add_parser("get", help="print records as JSON")
    get.add_argument("resource", help="e.g. actions, participants, filenotes")
    get.add_argument("ids", nargs="?", metavar="ID[,ID...]", help="one id or a comma list")
    get.add_argument("--include", metavar="LINKS", help="comma list of links to side-load")
    get.add_argument("--fields", metavar="FIELDS", help="comma list of fields to return")
    _add_query_options(get)
    get.add_argument("--all", action="store_true", help="every page, as JSON Lines")
    get.add_argument("--page", type=_positive, default=1, help="page number (1)")
    get.add_argument("--page-size", type=_page_size, default=50, help="1-200 (50)")
    get.set_defaults(handler=_commands.get)


def _add_export(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="export whole resources to JSON Lines files (resumable)",
        description="One RESOURCE.jsonl per resource in --out. Interrupted? Run the same"
        " command again: finished pages are kept and the export continues. "
        + _commands.retry_budget_help(),
    )
    export.add_argument("resources", nargs="+", metavar="RESOURCE")
    export.add_argument("--out", required=True, metavar="DIR")
    _add_query_options(export)
    export.add_argument("--concurrency", type=_positive, default=8, help="pages in flight (8)")
    export.add_argument("--page-size", type=_page_size, default=MAX_PAGE_SIZE)
    export.add_argument("--restart", action="store_true", help="discard unfinished state")
    export.add_argument("--no-progress", action="store_true", help="no progress bars")
    export.set_defaults(handler=_commands.export)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="run everything against a built-in fake server (no account needed)"
    )
    demo.add_argument(
        "--out", metavar="DIR", help="where to export (default: a temp dir, removed afterwards)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    demo.add_argument(
        "--actions", type=_positive, default=20_000, help="actions seeded in the fake (20000)"
    )
    demo.add_argument(
        "--participants",
        type=_positive,
        default=5_000,
        help="participants seeded in the fake (5000)",
    )
    demo.add_argument("--concurrency", type=_positive, default=8, help="pages in flight (8)")
    demo.add_argument(
        "--rate-limit-share",
        type=_share,
        default=0.05,
        help="share of requests the fake answers 429, 0 to 1 (0.05)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_fake_server(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fake = commands.add_parser(
        "fake-server",
        help="run FakeActionstep standalone (for your own integration tests)",
        add_help=False,
    )
    fake.add_argument("args", nargs=argparse.REMAINDER, help="see: fake-server --help")


def _host(url: str | None) -> str:
    return (urlsplit(url).netloc if url else "") or "the server"


def _resource_of(url: str) -> str | None:
    """The resource segment of a REST URL (``.../api/rest/actions/1`` -> ``actions``)."""
    parts = urlsplit(url).path.split("/")
    return parts[parts.index("rest") + 1] if "rest" in parts[:-1] else None


def _explain(exc: BaseException, settings: Settings | None) -> tuple[str, int]:
    """The message and exit status for an error that ends a command."""
    if isinstance(exc, CommandError):
        return str(exc), exc.status
    if isinstance(exc, NotFoundError) and (resource := _resource_of(exc.url)):
        message = unknown_resource_message(resource, known_resources())
        if message is not None:
            return message, USAGE
    if isinstance(exc, ReauthorizationRequired):
        return f"{exc}; run 'actionstep-async login' to authorize again", REAUTHORIZE
    if isinstance(exc, AuthorizationDenied):
        return f"authorization refused: {exc}", REAUTHORIZE
    if isinstance(exc, TokenStoreError):
        return f"token store failed: {exc}", STORE
    if isinstance(exc, RateLimitedError):
        return f"{_host(exc.url)} kept answering 429 (rate limited) after retries: {exc}", FAILED
    if isinstance(exc, ClientCredentialsError):
        return (
            f"{exc} (ACTIONSTEP_CLIENT_ID / ACTIONSTEP_CLIENT_SECRET)",
            USAGE,
        )
    if isinstance(exc, ConfigurationError | InvalidRequestError):
        return str(exc), USAGE
    if isinstance(exc, TransportError):
        return f"network trouble talking to {_host(exc.url)}: {exc}", NETWORK
    if isinstance(exc, TokenEndpointUnavailable):
        host = "the token endpoint"
        if settings is not None:
            with contextlib.suppress(CommandError):
                host = _host(settings.environment().token_url)
        return f"{host} is unavailable: {exc}", NETWORK
    if isinstance(exc, APIError) and isinstance(exc, TransientError):
        return f"{_host(exc.url)} kept failing after retries: {exc}", NETWORK
    if isinstance(exc, aiohttp.ClientError):
        return f"network trouble: {type(exc).__name__}: {exc}", NETWORK
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", FAILED
    return f"{exc}", FAILED


async def _main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        # Cancelling lets every layer clean up (the export saves its page list) before we exit.
        received.append(signum)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    settings: Settings | None = None
    try:
        if args.command == "demo":
            from ._demo import demo

            return await demo(args)
        settings = load_settings()
        handler: Command = args.handler
        return await handler(args, settings)
    except asyncio.CancelledError:
        if not received:
            raise
        note = " (finished pages are kept: run the same command to resume)"
        sys.stderr.write(f"\ninterrupted{note if args.command in ('export', 'sync') else ''}\n")
        return INTERRUPTED if received[0] == signal.SIGINT else _SIGTERM_STATUS
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _SIGPIPE_STATUS
    except (CommandError, ActionstepError, aiohttp.ClientError, OSError) as exc:
        message, status = _explain(exc, settings)
        sys.stderr.write(f"actionstep-async: {message}\n")
        return status
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


_DASH_VALUE_OPTIONS: Final = frozenset({"--sort"})


def attach_dash_values(arguments: Sequence[str]) -> list[str]:
    """``--sort -id`` as ``--sort=-id``: argparse would take ``-id`` for an option."""
    result: list[str] = []
    pending = False
    for argument in arguments:
        if pending and argument.startswith("-") and not argument.startswith("--"):
            result[-1] += "=" + argument
        else:
            result.append(argument)
        pending = argument in _DASH_VALUE_OPTIONS
    return result


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["fake-server"]:
        # Handed over untouched: argparse.REMAINDER does not capture leading options.
        from ..testing.__main__ import main as fake_server

        fake_server(arguments[1:], prog="actionstep-async fake-server")
        return 0
    args = build_parser().parse_args(attach_dash_values(arguments))
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        # Ctrl-C before the handler was installed or after it was removed.
        sys.stderr.write("\ninterrupted\n")
        return INTERRUPTED
