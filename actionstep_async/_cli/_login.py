"""``login``: the authorization-code flow with a one-shot listener on the loopback redirect URI.

The listener accepts exactly one request on the redirect path and then stops listening, so a
stray or forged second request can never complete a login; ``state`` is checked before the code
is exchanged.
"""

from __future__ import annotations

import asyncio
import os
import sys
import webbrowser
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import attrs
from aiohttp import web

from .._environment import is_loopback
from .._errors import OAuthError
from .._oauth import AuthorizationRequest, OAuthClient, parse_authorization_response
from .._serving import Serving, serve
from ._exits import USAGE, CommandError

__all__ = ["LoopbackListener", "authorize", "browser_available"]

NO_BROWSER_VARIABLE: Final = "ACTIONSTEP_NO_BROWSER"
_DONE_PAGE: Final = (
    "<!DOCTYPE html><html><head><title>actionstep-async</title></head><body>"
    "<h1>{title}</h1><p>{detail}</p></body></html>"
)


@attrs.frozen
class _Target:
    host: str
    port: int
    path: str


def parse_redirect_uri(redirect_uri: str) -> _Target:
    """Where to listen; only a plain-http loopback URI can be served by this process."""
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme != "http" or not is_loopback(host):
        raise CommandError(
            "login needs ACTIONSTEP_REDIRECT_URI to be a loopback URL such as"
            " http://127.0.0.1:8765/callback (registered with your Actionstep app), so this"
            f" command can receive the redirect; got {redirect_uri!r}",
            USAGE,
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise CommandError(f"ACTIONSTEP_REDIRECT_URI has an invalid port: {exc}", USAGE) from exc
    bind = "127.0.0.1" if host == "localhost" else host
    return _Target(bind, port if port is not None else 80, parts.path or "/")


class LoopbackListener:
    """Serves the redirect URI until the first request on its path arrives.

    Port 0 binds a free port; :attr:`redirect_uri` then names the port actually bound.
    """

    def __init__(self, redirect_uri: str) -> None:
        self._given = urlsplit(redirect_uri)
        self._target = parse_redirect_uri(redirect_uri)
        self._serving: Serving | None = None
        self._expected_state = ""
        self._result: asyncio.Future[str] | None = None
        self.port = self._target.port

    @property
    def redirect_uri(self) -> str:
        netloc = f"{self._given.hostname}:{self.port}"
        if ":" in (self._given.hostname or ""):
            netloc = f"[{self._given.hostname}]:{self.port}"
        return urlunsplit(("http", netloc, self._target.path, "", ""))

    async def __aenter__(self) -> LoopbackListener:
        app = web.Application()
        app.router.add_get(self._target.path, self._callback)
        try:
            serving = await serve(app, self._target.host, self._target.port, shutdown_timeout=0.5)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {self._target.host}:{self._target.port} for the redirect"
                f" ({exc.strerror}); is another login running?",
                USAGE,
            ) from exc
        self._serving = serving
        self.port = serving.port
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            await serving.close()

    def expect(self, state: str) -> None:
        """Start accepting the redirect; it must carry ``state``."""
        self._expected_state = state
        self._result = asyncio.get_running_loop().create_future()

    async def wait(self) -> str:
        """The authorization code from the first redirect, after checking its ``state``."""
        if self._result is None:
            raise RuntimeError("call expect(state) before wait()")
        return await self._result

    async def _callback(self, request: web.Request) -> web.Response:
        result = self._result
        if result is None or result.done():
            return web.Response(status=410, text="This login has already been handled.")
        try:
            code = parse_authorization_response(
                request.query_string, expected_state=self._expected_state
            )
        except OAuthError as exc:
            result.set_exception(exc)
            return self._page(400, "Authorization failed", f"{exc}. Return to the terminal.")
        result.set_result(code)
        return self._page(200, "Authorization received", "You can close this tab.")

    @staticmethod
    def _page(status: int, title: str, detail: str) -> web.Response:
        body = _DONE_PAGE.format(title=title, detail=detail.replace("<", "&lt;"))
        return web.Response(status=status, text=body, content_type="text/html")


def browser_available() -> bool:
    """Whether opening a browser can help: never under ACTIONSTEP_NO_BROWSER or without a display.

    Without a display, :mod:`webbrowser` may pick a console browser that takes over the terminal
    the user needs to read the URL from.
    """
    if os.environ.get(NO_BROWSER_VARIABLE):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def authorize(
    oauth: OAuthClient,
    listener: LoopbackListener,
    scopes: Iterable[str],
    *,
    show: Callable[[AuthorizationRequest], Awaitable[None]],
    open_browser: bool,
) -> str:
    """Show (and maybe open) the consent URL; return the code the redirect brings back."""
    request = oauth.authorization_request(tuple(scopes))
    listener.expect(request.state)
    await show(request)
    if open_browser:
        await asyncio.to_thread(webbrowser.open, request.url)
    return await listener.wait()
