"""FileTokenStore: one JSON file per key, safe across tasks, processes and crashes.

For a key whose :func:`encode_key` is ``NAME`` the directory holds:

``NAME.json``
    The token (``dump_token`` plus the key, so a file is self-describing), 0600. Replaced
    atomically: temp file, fsync, ``os.replace``, fsync of the directory. Readers take no lock:
    they see the old file or the new one, never a torn one.
``NAME.json.tmp``
    The temp file of a write in progress, or one left behind by a writer that crashed. It is never
    read as a token, and the next write of the key removes it.
``NAME.lock``
    The file locked by :meth:`FileTokenStore.lock`: held around a whole refresh (seconds).
``NAME.cas``
    The file locked by ``compare_and_set`` and ``delete``: held for one read-compare-write.

Why two lock files. ``flock`` locks taken through different open file descriptions conflict even
inside one process, and every acquisition here opens a fresh descriptor. ``compare_and_set``
is normally called by a task that holds ``lock(key)``; if it locked ``NAME.lock`` again it would
wait for its own caller forever. So the write takes its own short lock on ``NAME.cas`` and is
atomic by itself, whether or not the caller holds ``lock(key)`` (a holder whose lock was broken,
or a caller that never locked, still cannot overwrite a newer token). The order is always
``.lock`` then ``.cas``, so the two cannot deadlock. Lock files are never deleted: unlinking a
file that another process is waiting to lock would let two processes "hold" the lock at once.

Within one process the fresh descriptor per acquisition already makes ``flock`` exclude other
tasks, threads and event loops. ``lock(key)`` also queues the tasks of one loop on a per-key
``asyncio.Lock``, so at most one task per key and loop polls the file lock and waiters are served
in order.

No blocking call runs on the event loop. Each operation is one function run in a worker thread
(one hop, rather than aiofiles' hop per call). ``lock(key)`` polls ``flock(LOCK_NB)`` in a worker
thread between short jittered sleeps on the loop instead of parking a thread in a blocking
``flock``: a parked thread can be neither timed out nor cancelled, and a few of them would starve
the default executor that every other file operation needs. A waiter cancelled while an attempt is
running in its thread releases whatever that attempt acquires, so cancellation never leaks a lock.

POSIX only (``fcntl``), on a local filesystem: ``flock`` over NFS is unreliable.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import random
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Final

import attrs

from .._errors import ConfigurationError, ResponseDecodeError, TokenStoreError
from .._tokens import Token, dump_token, load_token
from ._base import LoopLocks, encode_key

if sys.platform != "win32":
    import fcntl

__all__ = ["FileTokenStore"]

log = logging.getLogger("actionstep_async.stores")

_TOKEN: Final = ".json"
_TEMP: Final = ".json.tmp"
_REFRESH_LOCK: Final = ".lock"
_WRITE_LOCK: Final = ".cas"

_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_FILE_BYTES: Final = 1 << 20
# A write lock is held for one read and one fsync'd write; waiting this long means a peer is stuck.
_WRITE_LOCK_TIMEOUT: Final = 30.0
_POLL_MIN: Final = 0.001
_POLL_MAX: Final = 0.02
_SYMLINK_ERRNOS: Final = frozenset({errno.ELOOP, errno.EMLINK})


class FileTokenStore:
    """Tokens as files in one private directory, shared by every process on this host.

    ``lock_timeout`` bounds how long :meth:`lock` waits (``None``: no bound); running out raises
    :class:`TokenStoreError`. The lock is not reentrant: a task must not nest ``lock(key)``.
    The directory is created 0700 on first use; an existing one must be owned by this user and
    is tightened to 0700 if looser.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, lock_timeout: float | None = None
    ) -> None:
        if sys.platform == "win32":
            raise ConfigurationError("FileTokenStore needs POSIX file locks (fcntl)")
        if lock_timeout is not None and not lock_timeout > 0:
            raise ConfigurationError("lock_timeout must be positive or None")
        self._directory = Path(directory)
        self._lock_timeout = lock_timeout
        self._directory_ready = False
        self._directory_guard = threading.Lock()
        self._local_locks = LoopLocks()

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self._directory)!r})"

    @property
    def directory(self) -> Path:
        """The directory holding the token and lock files."""
        return self._directory

    async def load(self, key: str) -> Token | None:
        """The stored token for ``key`` with its version, or ``None``; a corrupt file raises."""
        name = encode_key(key)
        return await asyncio.to_thread(self._load_sync, key, name)

    async def compare_and_set(
        self, key: str, token: Token, *, expected_version: int
    ) -> Token | None:
        """Write ``token`` as version ``expected_version + 1`` iff the file is at that version;
        the token as stored, or ``None`` if the file held another version.

        Atomic across processes by itself (it takes the key's write lock), durable once it returns.
        """
        name = encode_key(key)
        stored = attrs.evolve(token, version=expected_version + 1)
        document = dump_token(stored, key=key)
        written = await asyncio.to_thread(
            self._compare_and_set_sync, key, name, expected_version, document.encode()
        )
        return stored if written else None

    async def keys(self) -> list[str]:
        """Every key with a token file (read from the files: names are one-way encoded)."""
        return await asyncio.to_thread(self._keys_sync)

    def _keys_sync(self) -> list[str]:
        with _os_errors("list", self._directory):
            self._ensure_directory()
            found = []
            for path in self._directory.glob("*" + _TOKEN):
                key = _key_of(path)
                if key is not None and path.name == encode_key(key) + _TOKEN:
                    found.append(key)
            return sorted(found)

    async def delete(self, key: str) -> None:
        """Remove the token file for ``key``; its lock files stay (see the module docstring)."""
        name = encode_key(key)
        await asyncio.to_thread(self._delete_sync, name)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Exclusive access to ``key`` for every task, thread and process using this directory."""
        name = encode_key(key)
        loop = asyncio.get_running_loop()
        deadline = None if self._lock_timeout is None else loop.time() + self._lock_timeout
        # Tasks of this process queue here first: only one per key polls the file lock.
        async with self._local_locks.hold(name, deadline, lambda: self._lock_timeout_error(key)):
            fd = await self._acquire_file_lock(loop, name, deadline, key)
            try:
                yield
            finally:
                _unlock(fd)

    # -- lock(key) -------------------------------------------------------------------------------

    async def _acquire_file_lock(
        self, loop: asyncio.AbstractEventLoop, name: str, deadline: float | None, key: str
    ) -> int:
        delay = _POLL_MIN
        while True:
            attempt = loop.run_in_executor(None, self._try_lock_sync, name)
            try:
                fd = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The attempt runs on in its thread; if it wins, release at once instead of leaking.
                attempt.add_done_callback(_release_abandoned)
                raise
            if fd is not None:
                return fd
            now = loop.time()
            if deadline is not None and now >= deadline:
                raise self._lock_timeout_error(key)
            pause = delay * random.uniform(0.5, 1.0)
            await asyncio.sleep(pause if deadline is None else min(pause, deadline - now))
            delay = min(delay * 2, _POLL_MAX)

    def _lock_timeout_error(self, key: str) -> TokenStoreError:
        return TokenStoreError(
            f"timed out after {self._lock_timeout}s waiting for the lock on key {key!r} in {self}"
        )

    def _try_lock_sync(self, name: str) -> int | None:
        path = self._path(name, _REFRESH_LOCK)
        with _os_errors("lock", path):
            self._ensure_directory()
            fd = _open_lock_file(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            return fd

    # -- load, compare-and-set, delete (all run in a worker thread) ------------------------------

    def _load_sync(self, key: str, name: str) -> Token | None:
        path = self._path(name, _TOKEN)
        with _os_errors("read", path):
            self._ensure_directory()
            return self._read_token(key, path)

    def _compare_and_set_sync(
        self, key: str, name: str, expected_version: int, document: bytes
    ) -> bool:
        path = self._path(name, _TOKEN)
        with _os_errors("write", path):
            self._ensure_directory()
            with self._write_lock(name):
                current = self._read_token(key, path)
                if (current.version if current else 0) != expected_version:
                    return False
                self._replace(name, document)
                return True

    def _delete_sync(self, name: str) -> None:
        path = self._path(name, _TOKEN)
        with _os_errors("delete", path):
            self._ensure_directory()
            with self._write_lock(name):
                _unlink_if_present(self._path(name, _TEMP))
                if _unlink_if_present(path):
                    _fsync_directory(self._directory)

    def _read_token(self, key: str, path: Path) -> Token | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise TokenStoreError(f"token path {path} is not a regular file")
            if info.st_size > _MAX_FILE_BYTES:
                raise TokenStoreError(f"token file {path} is too large to be a token")
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
                log.warning(
                    "token file %s was readable by others (mode %o); tightened it to 0600",
                    path,
                    stat.S_IMODE(info.st_mode),
                )
            data = _read_all(fd)
        finally:
            os.close(fd)
        return _decode(key, path, data)

    def _replace(self, name: str, document: bytes) -> None:
        temp = self._path(name, _TEMP)
        # Only a holder of the write lock creates the temp file, so one that exists is stale.
        _unlink_if_present(temp)
        fd = os.open(temp, _CREATE_FLAGS, 0o600)
        try:
            try:
                _write_all(fd, document)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self._path(name, _TOKEN))
        except BaseException:
            _unlink_if_present(temp)
            raise
        _fsync_directory(self._directory)

    @contextmanager
    def _write_lock(self, name: str) -> Iterator[None]:
        path = self._path(name, _WRITE_LOCK)
        fd = _open_lock_file(path)
        try:
            _flock_before(fd, time.monotonic() + _WRITE_LOCK_TIMEOUT, path)
            yield
        finally:
            _unlock(fd)

    # -- directory --------------------------------------------------------------------------------

    def _path(self, name: str, suffix: str) -> Path:
        return self._directory / (name + suffix)

    def _ensure_directory(self) -> None:
        if self._directory_ready:
            return
        # Idempotent, so two threads racing here both simply check the same directory.
        with self._directory_guard:
            os.makedirs(self._directory, mode=0o700, exist_ok=True)
            info = os.stat(self._directory)
            if not stat.S_ISDIR(info.st_mode):
                raise TokenStoreError(f"token store path {self._directory} is not a directory")
            if info.st_uid != os.geteuid():
                raise TokenStoreError(
                    f"token directory {self._directory} belongs to another user; refusing to use it"
                )
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(self._directory, 0o700)
                log.warning(
                    "token directory %s was accessible to others (mode %o); tightened it to 0700",
                    self._directory,
                    stat.S_IMODE(info.st_mode),
                )
            self._directory_ready = True


# -- helpers, all blocking: called from worker threads only (except _unlock) ----------------------


@contextmanager
def _os_errors(action: str, path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        where = exc.filename or path
        if exc.errno in _SYMLINK_ERRNOS:
            raise TokenStoreError(f"refusing to follow a symlink at {where}") from exc
        reason = exc.strerror or type(exc).__name__
        if str(where) != str(path):
            reason += f" ({where})"  # e.g. the directory, when it is the directory that failed
        raise TokenStoreError(f"could not {action} token file {path}: {reason}") from exc


def _decode(key: str, path: Path, data: bytes) -> Token:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenStoreError(f"token file {path} is corrupt: not valid JSON") from exc
    if not isinstance(document, dict) or document.get("key") != key:
        raise TokenStoreError(f"token file {path} is corrupt: it does not belong to key {key!r}")
    try:
        token = load_token(data)
    except ResponseDecodeError as exc:
        raise TokenStoreError(f"token file {path} is corrupt: {exc}") from exc
    if token.version < 1:
        raise TokenStoreError(f"token file {path} is corrupt: version {token.version}")
    return token


def _key_of(path: Path) -> str | None:
    """The key a token file names, or ``None`` if it cannot be read as one."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    key = document.get("key") if isinstance(document, dict) else None
    return key if isinstance(key, str) and key else None


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _flock_before(fd: int, deadline: float, path: Path) -> None:
    delay = _POLL_MIN / 2
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TokenStoreError(f"timed out waiting for the write lock {path}") from None
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX / 2)


def _unlock(fd: int) -> None:
    # Runs on the loop: unlocking and closing a held descriptor never waits for anyone.
    # LOCK_UN first so a forked child sharing the descriptor cannot keep the lock alive.
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _release_abandoned(attempt: asyncio.Future[int | None]) -> None:
    if attempt.cancelled() or attempt.exception() is not None:
        return
    fd = attempt.result()
    if fd is not None:
        _unlock(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_if_present(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; without it a power cut can bring the old file back.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
