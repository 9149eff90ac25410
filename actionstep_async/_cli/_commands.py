"""The commands that talk to a configured Actionstep: login, token show/refresh, get, export."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from rich.console import Console

from .._client import AsyncResourceClient
from .._governor import Governor
from .._manager import TokenManager
from .._models import Page, Record
from .._oauth import AuthorizationRequest
from .._retry import RetryPolicy
from .._tokens import Token
from ..stores import FileTokenStore
from ._config import Settings, open_store
from ._documents import export_documents
from ._exits import NETWORK, OK, REAUTHORIZE, USAGE, CommandError
from ._export import ExportOptions, export_resources
from ._login import LoopbackListener, authorize, browser_available
from ._output import (
    ExportProgress,
    err_console,
    explain_stats,
    out_console,
    print_summary,
    region_host,
    token_table,
    write_json,
    write_json_lines,
)
from ._retries import reporting_retries
from ._stats import RequestStats

__all__ = [
    "export",
    "get",
    "login",
    "parse_filters",
    "token_keep_alive",
    "token_refresh",
    "token_show",
]

# A bulk job would rather wait out a bad minute than lose an hour of progress to one error.
EXPORT_RETRY = RetryPolicy(max_attempts=10, max_elapsed=300.0, backoff_cap=30.0)
PROBE_RETRY = RetryPolicy()
"""The first request of an export: an unreachable server fails as quickly as ``get`` does."""


def retry_budget_help() -> str:
    """The export's retry budgets in words, for --help (true whatever the policies become)."""
    return (
        f"A first request checks the server ({PROBE_RETRY.max_attempts} attempts within"
        f" {PROBE_RETRY.max_elapsed:g} s, so an unreachable server fails in seconds); then each"
        f" page is tried up to {EXPORT_RETRY.max_attempts} times within"
        f" {EXPORT_RETRY.max_elapsed:g} s on 429, 5xx and connection failures, and every retry"
        " or wait is shown as it happens."
    )


def parse_filters(items: Sequence[str] | None) -> dict[str, str]:
    """``FIELD[_OP]=VALUE`` arguments as a mapping; the library validates names and operators."""
    filters: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--filter {item!r}: expected FIELD[_OP]=VALUE", USAGE)
        if key in filters:
            raise CommandError(f"--filter {key} is given twice; use {key}_in=A,B for a list", USAGE)
        filters[key] = value
    return filters


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


@asynccontextmanager
async def connect(
    settings: Settings,
    *,
    stats: RequestStats | None = None,
    concurrency: int = 8,
    adaptive: bool = False,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[tuple[TokenManager, AsyncResourceClient]]:
    """A TokenManager on the configured store and a client on a session we trace."""
    oauth = settings.oauth_client()
    key = settings.token_key
    trace = [stats.trace_config()] if stats is not None else []
    async with open_store(settings) as store:
        manager = TokenManager(oauth, store)
        try:
            async with (
                aiohttp.ClientSession(trace_configs=trace) as session,
                AsyncResourceClient(
                    manager,
                    key,
                    session=session,
                    concurrency=concurrency,
                    adaptive=adaptive,
                    retry=retry,
                ) as client,
            ):
                yield manager, client
        finally:
            await manager.aclose()


def _say(console: Console, text: str) -> None:
    console.print(text, highlight=False, markup=False)


# -- login / token ---------------------------------------------------------------------------


async def _refused_at_once(url: str) -> str | None:
    """The authorization server's complaint if it rejects the request before any consent page
    (an unregistered redirect URI or client id), so login need not wait out its timeout."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if not 400 <= response.status < 500:
                return None
            text = (await response.text(errors="replace")).strip()
    except (aiohttp.ClientError, TimeoutError):
        return None  # the browser will show what is wrong; nothing to add here
    return f"{response.status} {' '.join(text.split())[:200]}"


async def _show_request(request: AuthorizationRequest) -> None:
    refusal = await _refused_at_once(request.url)
    if refusal is not None:
        raise CommandError(
            f"the authorization server refused the request ({refusal}); check"
            " ACTIONSTEP_CLIENT_ID and that ACTIONSTEP_REDIRECT_URI is registered",
            REAUTHORIZE,
        )
    # Plain writes, never wrapped: the URL must survive copy-and-paste (and test parsing) intact.
    sys.stdout.write(f"Open this URL to authorize (scopes: {' '.join(request.scopes)}):\n")
    sys.stdout.write(f"{request.url}\n")
    sys.stdout.flush()


async def login(args: argparse.Namespace, settings: Settings) -> int:
    oauth = settings.oauth_client()
    # "--scope 'actions participants'" and repeated --scope both work.
    scopes = (
        tuple(s for item in args.scope for s in item.split()) if args.scope else settings.scopes
    )
    key = settings.token_key
    async with LoopbackListener(oauth.redirect_uri) as listener:
        sys.stdout.write(f"Waiting for the redirect on {listener.redirect_uri}\n")
        try:
            async with asyncio.timeout(args.timeout):
                code = await authorize(
                    oauth,
                    listener,
                    scopes,
                    show=_show_request,
                    open_browser=not args.no_browser and browser_available(),
                )
        except TimeoutError:
            raise CommandError(
                f"no redirect arrived within {args.timeout:g}s; run 'actionstep-async login' again",
                REAUTHORIZE,
            ) from None
    token = await oauth.exchange_code(code, scopes=scopes)
    async with open_store(settings) as store:
        manager = TokenManager(oauth, store)
        try:
            saved = await manager.save(key, token)
        finally:
            await manager.aclose()
    _say(
        out_console(),
        f"Logged in: organisation {saved.orgkey or '(not sent)'}, region host"
        f" {region_host(saved)}; token {saved.fingerprint} stored as {key!r} in {store!r}.",
    )
    return OK


def _token_json(token: Token, key: str) -> dict[str, Any]:
    return {
        "key": key,
        "orgkey": token.orgkey,
        "api_endpoint": token.api_endpoint,
        "scopes": list(token.scopes),
        "expires_at": token.expires_at,
        "expires_in": round(token.expires_in(), 1),
        "issued_at": token.issued_at,
        "fingerprint": token.fingerprint,
        "version": token.version,
    }


def _print_token(token: Token, key: str, *, as_json: bool, title: str) -> None:
    if as_json:
        write_json(_token_json(token, key))
    else:
        out_console().print(token_table(token, key=key, title=title))


async def token_show(args: argparse.Namespace, settings: Settings) -> int:
    key = settings.token_key
    async with open_store(settings) as store:
        # A read must not create the token directory: no directory means no token.
        missing = isinstance(store, FileTokenStore) and not store.directory.exists()
        token = None if missing else await store.load(key)
    if token is None:
        raise CommandError(
            f"no token is stored as {key!r} in {store!r}; run 'actionstep-async login'",
            REAUTHORIZE,
        )
    _print_token(token, key, as_json=args.json, title="Stored token")
    return OK


async def token_refresh(args: argparse.Namespace, settings: Settings) -> int:
    key = settings.token_key
    async with open_store(settings) as store:
        manager = TokenManager(settings.oauth_client(), store)
        try:
            token = await manager.refresh(key)
        finally:
            await manager.aclose()
    _print_token(token, key, as_json=args.json, title="Refreshed token")
    return OK


async def token_keep_alive(args: argparse.Namespace, settings: Settings) -> int:
    """Refresh every stored key whose refresh token is older than --max-idle-days (for cron)."""
    async with open_store(settings) as store:
        manager = TokenManager(settings.oauth_client(), store)
        try:
            report = await manager.keep_alive(max_idle=args.max_idle_days * 86400)
        finally:
            await manager.aclose()
    write_json({name: list(keys) for name, keys in attrs.asdict(report).items()})
    if report.dead:
        return REAUTHORIZE
    return NETWORK if report.failed else OK


# -- get -------------------------------------------------------------------------------------


def _page_document(page: Page[Any]) -> dict[str, Any]:
    """A page in Actionstep's own envelope shape, so output looks like the API's."""
    paging = page.paging
    return {
        page.resource: [dict(record) for record in page.records],
        "linked": {
            kind: [dict(r) for r in records if isinstance(r, Record)]
            for kind, records in page.linked.items()
        },
        "meta": {
            "paging": {
                page.resource: {
                    "recordCount": paging.record_count,
                    "pageCount": paging.page_count,
                    "page": paging.page,
                    "pageSize": paging.page_size,
                }
            }
        },
    }


async def get(args: argparse.Namespace, settings: Settings) -> int:
    filters = parse_filters(args.filter)
    include, fields, sort = _names(args.include), _names(args.fields), _names(args.sort)
    async with connect(settings) as (_, client):
        if args.ids:
            if filters or sort or args.all:
                raise CommandError("--filter, --sort and --all apply to lists, not to ids", USAGE)
            ids = [part for part in args.ids.split(",") if part]
            if include or fields:
                # client.get takes no query options; an id filter gives the same records with
                # their side-loads, in the page envelope.
                page = await client.list(
                    args.resource,
                    filters={"id_in": ",".join(ids)},
                    include=include,
                    fields=fields,
                    page_size=min(max(len(ids), 1), 200),
                )
                write_json(_page_document(page))
            elif len(ids) == 1:
                write_json(dict(await client.get(args.resource, ids[0])))
            else:
                write_json([dict(record) for record in await client.get(args.resource, ids)])
        elif args.all:
            records = client.iterate(
                args.resource,
                filters=filters,
                include=include,
                fields=fields,
                sort=sort,
                page_size=args.page_size,
            )
            async for record in records:
                write_json_lines([record])
        else:
            page = await client.list(
                args.resource,
                filters=filters,
                include=include,
                fields=fields,
                sort=sort,
                page=args.page,
                page_size=args.page_size,
            )
            write_json(_page_document(page))
    return OK


# -- export ----------------------------------------------------------------------------------


async def export(args: argparse.Namespace, settings: Settings) -> int:
    options = ExportOptions(
        out=Path(args.out),
        filters=parse_filters(args.filter),
        sort=_names(args.sort),
        page_size=args.page_size,
        concurrency=args.concurrency,
        restart=args.restart,
    )
    stats = RequestStats()
    err = err_console()
    started = time.monotonic()
    async with connect(
        settings, stats=stats, concurrency=options.concurrency, adaptive=True, retry=EXPORT_RETRY
    ) as (manager, client):
        # Fail fast with "run login" before any output directory is touched.
        await manager.token(settings.token_key)
        with reporting_retries(lambda text: _say(err, text)):
            # An unreachable server fails within the normal budget, not the bulk one.
            await client.with_options(retry=PROBE_RETRY).list(args.resources[0], page_size=1)
            with ExportProgress(err, enabled=not args.no_progress) as progress:
                watcher = asyncio.ensure_future(_show_pauses(client.governor, err))
                try:
                    results = await export_resources(
                        client.bulk(),
                        args.resources,
                        options,
                        progress,
                        warn=lambda text: _say(err, f"warning: {text}"),
                    )
                finally:
                    watcher.cancel()
        if args.documents:
            fetched, kept = await export_documents(client, options.out)
            _say(err, f"documents: {fetched:,} downloaded, {kept:,} already there")
        refreshes = manager.refresh_count
    out = out_console()
    print_summary(out, results, stats, refreshes=refreshes, elapsed=time.monotonic() - started)
    out.print(explain_stats(client.stats))
    return OK


async def _show_pauses(governor: Governor, console: Console) -> None:
    """Say so while a 429's Retry-After holds every request of the export back."""
    shown = 0.0
    while True:
        until = governor.paused_until
        remaining = until - time.monotonic()
        if until > shown and remaining > 0:
            shown = until
            _say(console, f"rate limited: every request waits {remaining:.1f} s (Retry-After)")
        await asyncio.sleep(0.2)
