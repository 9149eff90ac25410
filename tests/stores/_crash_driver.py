"""Subprocess driver for the FileTokenStore crash-safety test.

Usage: python _crash_driver.py DIRECTORY RUNS SEED

RUNS times: fork a child that compare-and-sets new versions in a tight loop, SIGKILL it after a
random delay (every other run: a random delay after its first completed save), then load the
token in this process. Prints a JSON summary; ``failures`` lists every run after which the
file did not load, went back in version or mixed generations.
Forking (rather than starting a fresh interpreter per run) keeps 200 runs within seconds;
``asyncio.run`` joins its worker threads on exit, so this process is single-threaded at each fork.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import sys
import time

from actionstep_async import ActionstepError, Token
from actionstep_async.stores import FileTokenStore

KEY = "tenant/crash"


def generation(version: int) -> Token:
    return Token(
        access_token=f"access-{version}",
        refresh_token=f"refresh-{version}",
        expires_at=2e9,
        issued_at=2e9 - 3600,
        api_endpoint="https://ap-southeast-2.actionstep.com/api/",
    )


async def write_forever(directory: str, saved: int) -> None:
    store = FileTokenStore(directory)
    while True:
        current = await store.load(KEY)
        version = current.version if current else 0
        await store.compare_and_set(KEY, generation(version + 1), expected_version=version)
        if saved >= 0:
            os.write(saved, b"s")  # the first save is done: the parent may kill from now on
            os.close(saved)
            saved = -1


def main() -> int:
    directory, runs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    store = FileTokenStore(directory)
    failures: list[str] = []
    temp_left = 0
    last = 0
    for run in range(runs):
        readable, saved = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only ever dies by SIGKILL
            try:
                os.close(readable)
                asyncio.run(write_forever(directory, saved))
            finally:
                os._exit(1)
        os.close(saved)
        if run % 2:
            # Every other run kills only after a completed save, so that saves happen however
            # slowly this machine forks (coverage in the child makes the first save slow).
            select.select([readable], [], [], 30.0)
        os.close(readable)
        time.sleep(rng.uniform(0.0, 0.015))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        temp_left += any(name.endswith(".tmp") for name in os.listdir(directory))
        try:
            token = asyncio.run(store.load(KEY))
        except ActionstepError as exc:
            failures.append(f"run {run}: {exc!r}")
            continue
        version = token.version if token else 0
        if version < last:
            failures.append(f"run {run}: version went back from {last} to {version}")
        if token is not None and token.access_token != f"access-{version}":
            failures.append(f"run {run}: version {version} holds another generation's token")
        last = version
    summary = {"failures": failures, "final_version": last, "temp_left": temp_left}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
