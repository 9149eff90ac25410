"""A redis-server of a test's own on a random loopback port: restart, FLUSHALL, SIGSTOP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The machine (and CI) has redis-server; a missing binary must fail loudly, not skip.
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """``persistent=False`` is a Redis that forgets everything when restarted."""

    def __init__(
        self, directory: Path, *, persistent: bool = False, replica_of: int | None = None
    ) -> None:
        self.port = free_port()
        self.directory = directory
        self.persistent = persistent
        self.replica_of = replica_of
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for _ in range(5):
            if self._start_once():
                return
            self.port = free_port()  # another process took the port between probe and bind
        raise AssertionError("private redis did not start")

    def _start_once(self) -> bool:
        """Start on ``self.port``; False if the server answering there is not ours."""
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--save", ""]
        command += ["--appendonly", "yes" if self.persistent else "no"]
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                assert time.monotonic() < deadline, "private redis did not start"
                time.sleep(0.05)
                continue
            info = subprocess.run(
                ["redis-cli", "-p", str(self.port), "info", "server"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if f"process_id:{self.process.pid}" in info:
                return True
            break
        self.stop()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a frozen server cannot exit
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the server (it accepts connections but answers nothing) until the block ends."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def private_redis_server(directory: Path, **options: object) -> Iterator[PrivateRedis]:
    server = PrivateRedis(directory, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
