"""Serving a small aiohttp app on one address: the CLI's redirect listener and the fake."""

from __future__ import annotations

import attrs
from aiohttp import web

__all__ = ["Serving", "serve"]


@attrs.define
class Serving:
    """An app listening on ``host:port`` (the port actually bound, when 0 was asked for)."""

    runner: web.AppRunner
    host: str
    port: int

    async def close(self) -> None:
        """Stop listening and close every connection."""
        await self.runner.cleanup()


async def serve(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 0.25
) -> Serving:
    """Start ``app`` on ``host:port``; if binding fails nothing is left open and OSError rises.

    No access log: request lines can carry authorization codes or tokens.
    """
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return Serving(runner, str(bound_host), int(bound_port))
