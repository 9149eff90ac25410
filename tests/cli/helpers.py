"""Helpers that run the real ``actionstep-async`` command in a subprocess.

The fake runs on the test's event loop; the command is awaited with
``asyncio.create_subprocess_exec`` so the loop keeps serving the fake while the command runs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from actionstep_async import FileTokenStore, Token
from actionstep_async.testing import FakeActionstep

# If any of these ever shows up in the command's output, a secret leaked.
CLIENT_SECRET = "sentinel-cli-client-secret-93e1d7"
KEY = "default"


@attrs.frozen
class Completed:
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(tmp_path: Path) -> dict[str, str]:
    """The parent environment without any ACTIONSTEP_* setting, plus isolated paths."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONSTEP_")}
    config = tmp_path / "config.toml"
    config.touch()
    env.update(
        ACTIONSTEP_CONFIG=str(config),
        ACTIONSTEP_TOKEN_STORE=str(tmp_path / "tokens"),
        ACTIONSTEP_NO_BROWSER="1",
        COLUMNS="160",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
    )
    return env


async def start_cli(*args: str, env: Mapping[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actionstep_async",
        *args,
        env=dict(env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 60) -> Completed:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


async def run_cli(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60) -> Completed:
    return await finish(await start_cli(*args, env=env, cwd=cwd), timeout)


@attrs.define
class Setup:
    """A started fake, the environment pointing the command at it, and a working directory."""

    fake: FakeActionstep
    env: dict[str, str]
    cwd: Path
    redirect_uri: str

    @property
    def token_dir(self) -> Path:
        return Path(self.env["ACTIONSTEP_TOKEN_STORE"])

    async def store_token(self, **overrides: Any) -> Token:
        """Put a freshly issued token in the command's store, as a finished login would."""
        token = self.fake.issue_token(scopes=("all",))
        if overrides:
            token = attrs.evolve(token, **overrides)
        store = FileTokenStore(self.token_dir)
        assert await store.compare_and_set(KEY, token, expected_version=0)
        return token

    async def run(self, *args: str, timeout: float = 60) -> Completed:
        return await run_cli(*args, env=self.env, cwd=self.cwd, timeout=timeout)
