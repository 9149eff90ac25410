"""Run FakeActionstep in its own process for benchmarks, and drive it through ``/_fake/*``.

Benchmarks measure the client's CPU and latency, so the server must not share the process.
"""

from __future__ import annotations

import asyncio
import sys
from types import TracebackType
from typing import Any

import aiohttp

from actionstep_async import Environment, Token

from ._client_setup import token_from
from .peers import REDIRECT_URI


class FakeServerProcess:
    """``async with FakeServerProcess(records=100_000) as fake:`` starts and stops the server."""

    def __init__(self, *, records: int = 1000, extra_args: tuple[str, ...] = ()) -> None:
        self.records = records
        self.extra_args = extra_args
        self.base_url = ""
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def environment(self) -> Environment:
        return Environment.local(self.base_url)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def __aenter__(self) -> FakeServerProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "actionstep_async.testing",
            "--port",
            "0",
            "--records",
            str(self.records),
            # The peers' redirect URI (the standalone fake's default is a CLI login's).
            "--redirect-uri",
            REDIRECT_URI,
            *self.extra_args,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout=120)
        self.base_url = line.decode().strip().rsplit(" ", 1)[-1]
        if not self.base_url.startswith("http://"):
            raise RuntimeError(f"fake server did not start: {line!r}")
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None
        async with self._session.request(
            method, f"{self.base_url}/_fake/{path}", json=body
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.control("GET", "counters")
        return result

    async def mint_token(
        self, *, expires_in: float | None = None, scopes: tuple[str, ...] = ("all",)
    ) -> Token:
        """A fresh token family from the fake (every scope unless ``scopes`` says otherwise)."""
        data = await self.control(
            "POST", "token", {"expires_in": expires_in, "scopes": list(scopes)}
        )
        return token_from(data)
