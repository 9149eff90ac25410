"""Subprocess worker for the cross-process lock tests.

Usage: python _lock_worker.py {file|redis} LOCATION KEY CYCLES LOG [lock|race]

Prints ``ready``, waits for a line on stdin (so all workers start together), then:

- ``lock`` (default): CYCLES times take the store lock, log ``<pid``, read, compare-and-set
  version + 1, log ``>pid``. Exits 3 if a compare-and-set under the lock ever loses (the lock
  failed to exclude someone).
- ``race``: no lock at all; read and compare-and-set until CYCLES saves have won, logging each
  version won. Only compare-and-set's own atomicity keeps two processes from winning one version.
"""

from __future__ import annotations

import asyncio
import os
import sys

from redis.asyncio import Redis

from actionstep_async import Token
from actionstep_async.stores import FileTokenStore, TokenStore
from actionstep_async.stores.redis import RedisTokenStore


def generation(version: int) -> Token:
    return Token(
        access_token=f"access-{version}",
        refresh_token=f"refresh-{version}",
        expires_at=2e9,
        issued_at=2e9 - 3600,
        api_endpoint="https://ap-southeast-2.actionstep.com/api/",
    )


async def race(store: TokenStore, key: str, cycles: int, log: int) -> int:
    won = 0
    while won < cycles:
        current = await store.load(key)
        version = current.version if current else 0
        if await store.compare_and_set(key, generation(version + 1), expected_version=version):
            os.write(log, f"{version + 1}\n".encode())
            won += 1
    return 0


async def run(kind: str, location: str, key: str, cycles: int, log_path: str, mode: str) -> int:
    client = Redis(host="127.0.0.1", port=6379) if kind == "redis" else None
    store: TokenStore = (
        FileTokenStore(location, lock_timeout=30.0)
        if client is None
        else RedisTokenStore(client, prefix=location, lock_timeout=30.0, poll_interval=0.005)
    )
    tag = str(os.getpid())
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if mode == "race":
            return await race(store, key, cycles, log)
        for _ in range(cycles):
            async with store.lock(key):
                os.write(log, f"<{tag}\n".encode())
                current = await store.load(key)
                version = current.version if current else 0
                await asyncio.sleep(0.001)  # widen the window a broken lock would let others in
                new = generation(version + 1)
                if not await store.compare_and_set(key, new, expected_version=version):
                    return 3
                os.write(log, f">{tag}\n".encode())
    finally:
        os.close(log)
        if client is not None:
            await client.aclose()
    return 0


def main() -> int:
    kind, location, key, cycles, log_path = sys.argv[1:6]
    mode = sys.argv[6] if len(sys.argv) > 6 else "lock"
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    return asyncio.run(run(kind, location, key, int(cycles), log_path, mode))


if __name__ == "__main__":
    sys.exit(main())
