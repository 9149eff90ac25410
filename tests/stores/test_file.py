"""FileTokenStore: layout, permissions, symlinks, corruption, cancellation, processes, crashes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from actionstep_async import TokenStoreError
from actionstep_async._tokens import dump_token
from actionstep_async.stores import FileTokenStore
from actionstep_async.stores._base import encode_key

from .conftest import TokenFactory
from .test_contract import HOSTILE_KEYS

HERE = Path(__file__).parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_repr_shows_only_the_directory(file_store: FileTokenStore, token_dir: Path) -> None:
    """repr names the directory and nothing else."""
    assert repr(file_store) == f"FileTokenStore({str(token_dir)!r})"


async def test_file_names_are_flat_visible_and_one_per_key(
    file_store: FileTokenStore, make_token: TokenFactory, token_dir: Path
) -> None:
    """Hostile keys map to distinct, non-hidden file names with no path separators."""
    for key in HOSTILE_KEYS:
        assert await file_store.compare_and_set(key, make_token(), expected_version=0)
        async with file_store.lock(key):
            pass
    names = os.listdir(token_dir)
    assert all("/" not in name and not name.startswith(".") for name in names)
    assert all(len(name.encode()) <= 255 for name in names)
    token_files = sorted(name for name in names if name.endswith(".json"))
    assert token_files == sorted(encode_key(key) + ".json" for key in HOSTILE_KEYS)
    assert len(set(token_files)) == len(HOSTILE_KEYS)
    assert list(token_dir.parent.iterdir()) == [token_dir]


async def test_token_file_is_self_describing_json(
    file_store: FileTokenStore, make_token: TokenFactory, token_dir: Path
) -> None:
    """The file holds the token's JSON, its version and the key it belongs to."""
    await file_store.compare_and_set("tenant/1", make_token(), expected_version=0)
    document = json.loads((token_dir / "tenant%2F1.json").read_text())
    assert document["key"] == "tenant/1"
    assert document["version"] == 1
    assert document["refresh_token"] == "refresh-1"


async def test_new_files_are_0600_and_directory_0700(
    file_store: FileTokenStore, make_token: TokenFactory, token_dir: Path
) -> None:
    """Everything the store creates is private to this user."""
    await file_store.compare_and_set("k", make_token(), expected_version=0)
    async with file_store.lock("k"):
        pass
    assert mode(token_dir) == 0o700
    names = os.listdir(token_dir)
    assert sorted(names) == ["k.cas", "k.json", "k.lock"]
    assert all(mode(token_dir / name) == 0o600 for name in names)


async def test_loose_directory_is_tightened(
    token_dir: Path, make_token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An existing 0755 directory is made 0700, with a warning."""
    token_dir.mkdir(mode=0o755)
    token_dir.chmod(0o755)
    store = FileTokenStore(token_dir)
    with caplog.at_level(logging.WARNING):
        await store.compare_and_set("k", make_token(), expected_version=0)
    assert mode(token_dir) == 0o700
    assert "tightened it to 0700" in caplog.text


async def test_loose_token_file_is_tightened_on_load(
    file_store: FileTokenStore,
    make_token: TokenFactory,
    token_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 0644 token file still loads, becomes 0600 and is reported without its content."""
    await file_store.compare_and_set("k", make_token(), expected_version=0)
    (token_dir / "k.json").chmod(0o644)
    with caplog.at_level(logging.WARNING):
        loaded = await file_store.load("k")
    assert loaded == make_token(version=1)
    assert mode(token_dir / "k.json") == 0o600
    assert "tightened it to 0600" in caplog.text
    assert "refresh-1" not in caplog.text


async def test_directory_of_another_user_is_refused(
    token_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory not owned by the current user is never used."""
    token_dir.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: token_dir.stat().st_uid + 1)
    with pytest.raises(TokenStoreError, match="belongs to another user"):
        await FileTokenStore(token_dir).load("k")


async def test_directory_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """Pointing the store at a regular file raises TokenStoreError."""
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    with pytest.raises(TokenStoreError):
        await FileTokenStore(path).load("k")


async def test_symlinked_token_path_is_refused(
    file_store: FileTokenStore, make_token: TokenFactory, token_dir: Path, tmp_path: Path
) -> None:
    """A symlink at the token path is neither read nor written through."""
    await file_store.compare_and_set("other", make_token("theirs"), expected_version=0)
    target = tmp_path / "elsewhere.json"
    target.write_bytes((token_dir / "other.json").read_bytes())
    (token_dir / "k.json").symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(TokenStoreError, match="refusing to follow a symlink"):
        await file_store.load("k")
    with pytest.raises(TokenStoreError, match="refusing to follow a symlink"):
        await file_store.compare_and_set("k", make_token(), expected_version=0)
    assert target.read_bytes() == before
    assert (token_dir / "k.json").is_symlink()


async def test_symlinked_lock_file_is_refused(
    file_store: FileTokenStore, token_dir: Path, tmp_path: Path
) -> None:
    """A symlink planted at a lock file path makes lock(key) fail instead of following it."""
    await file_store.load("k")
    (token_dir / "k.lock").symlink_to(tmp_path / "planted")
    with pytest.raises(TokenStoreError, match="refusing to follow a symlink"):
        async with file_store.lock("k"):
            pass
    assert not (tmp_path / "planted").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b"\xff\xfe",
        b'{"key": "k"}',
        b"TRUNCATED",
        b"WRONG KEY",
        b"VERSION 0",
    ],
    ids=["empty", "torn", "array", "binary", "fields", "truncated", "wrong-key", "version-0"],
)
async def test_corrupt_file_raises_and_is_never_overwritten(
    file_store: FileTokenStore, make_token: TokenFactory, token_dir: Path, content: bytes
) -> None:
    """A corrupt token file raises TokenStoreError on load and on save, and stays as it was."""
    good = dump_token(make_token(version=1), key="k").encode()
    content = {
        b"TRUNCATED": good[: len(good) // 2],
        b"WRONG KEY": dump_token(make_token(version=1), key="someone-else").encode(),
        b"VERSION 0": dump_token(make_token(version=0), key="k").encode(),
    }.get(content, content)
    token_dir.mkdir(mode=0o700)
    (token_dir / "k.json").write_bytes(content)
    (token_dir / "k.json").chmod(0o600)
    with pytest.raises(TokenStoreError, match="is corrupt"):
        await file_store.load("k")
    with pytest.raises(TokenStoreError, match="is corrupt"):
        await file_store.compare_and_set("k", make_token(), expected_version=0)
    assert (token_dir / "k.json").read_bytes() == content


async def test_stale_temp_file_is_ignored_then_removed(
    file_store: FileTokenStore, make_token: TokenFactory, token_dir: Path
) -> None:
    """A temp file left by a crashed writer is never loaded and the next save clears it."""
    await file_store.compare_and_set("k", make_token("a1"), expected_version=0)
    (token_dir / "k.json.tmp").write_bytes(b'{"torn')
    loaded = await file_store.load("k")
    assert loaded is not None
    assert loaded.access_token == "a1"
    assert await file_store.compare_and_set("k", make_token("a2"), expected_version=1)
    assert not (token_dir / "k.json.tmp").exists()


async def test_failed_write_removes_its_temp_file_and_keeps_the_old_token(
    file_store: FileTokenStore,
    make_token: TokenFactory,
    token_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed rename raises TokenStoreError, removes the temp file and keeps the old token."""
    await file_store.compare_and_set("k", make_token("a1"), expected_version=0)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TokenStoreError, match="No space left"):
        await file_store.compare_and_set("k", make_token("a2"), expected_version=1)
    monkeypatch.undo()
    assert sorted(os.listdir(token_dir)) == ["k.cas", "k.json"]
    loaded = await file_store.load("k")
    assert loaded is not None
    assert (loaded.access_token, loaded.version) == ("a1", 1)


async def test_lock_excludes_other_store_objects_in_this_process(token_dir: Path) -> None:
    """Two store objects on one directory (no shared asyncio lock) still exclude each other."""
    first, second = FileTokenStore(token_dir), FileTokenStore(token_dir, lock_timeout=0.1)
    async with first.lock("k"):
        with pytest.raises(TokenStoreError, match="timed out"):
            async with second.lock("k"):
                pass
    async with second.lock("k"):
        pass


async def test_lock_timeout_applies_to_waiters_in_the_same_process(token_dir: Path) -> None:
    """A task queued behind another task of the same store also gives up after lock_timeout."""
    store = FileTokenStore(token_dir, lock_timeout=0.1)
    async with store.lock("k"):
        with pytest.raises(TokenStoreError, match="timed out"):
            async with store.lock("k"):
                pass


async def test_waiter_cancelled_while_its_attempt_runs_does_not_leak_the_lock(
    token_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the thread trying the lock wins after its waiter was cancelled, the lock is released."""
    store = FileTokenStore(token_dir)
    entered, proceed = threading.Event(), threading.Event()
    real_try = store._try_lock_sync

    def gated_try(name: str) -> int | None:
        entered.set()
        proceed.wait(5)
        return real_try(name)

    monkeypatch.setattr(store, "_try_lock_sync", gated_try)

    async def hold() -> None:
        async with store.lock("k"):
            raise AssertionError("the cancelled waiter must never get in")

    waiter = asyncio.create_task(hold())
    await asyncio.to_thread(entered.wait, 5)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    proceed.set()  # the abandoned attempt now acquires the flock in its thread
    async with asyncio.timeout(5), FileTokenStore(token_dir).lock("k"):
        pass


async def test_waiters_cancelled_at_random_moments_never_leak_the_lock(token_dir: Path) -> None:
    """Thirty waiters cancelled at random points while another holder has the lock leak nothing."""
    holder, waiters = FileTokenStore(token_dir), FileTokenStore(token_dir)
    rng = random.Random(7)
    async with holder.lock("k"):
        for _ in range(30):
            task = asyncio.create_task(waiters.lock("k").__aenter__())
            await asyncio.sleep(rng.uniform(0, 0.01))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    async with asyncio.timeout(5), FileTokenStore(token_dir).lock("k"):
        pass


def run_workers(
    kind: str, location: str, key: str, workers: int, cycles: int, log: Path, mode: str = "lock"
) -> None:
    """Run the worker script in separate processes, started together, and check they succeed."""
    script = str(HERE / "_lock_worker.py")
    procs = [
        subprocess.Popen(
            [sys.executable, script, kind, location, key, str(cycles), str(log), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


HOLD_FOREVER = """
import asyncio, sys
from actionstep_async.stores import FileTokenStore
from actionstep_async.stores.redis import RedisTokenStore
from redis.asyncio import Redis

async def hold(kind, location):
    store = (
        FileTokenStore(location)
        if kind == "file"
        else RedisTokenStore(Redis(), prefix=location, lock_ttl=0.5)
    )
    async with store.lock("k"):
        sys.stdout.write("locked\\n")
        sys.stdout.flush()
        await asyncio.sleep(3600)

asyncio.run(hold(sys.argv[1], sys.argv[2]))
"""


def kill_while_holding_lock(kind: str, location: str) -> None:
    """Start a process that takes lock("k") and holds it, then SIGKILL it once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOREVER, kind, location], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def assert_each_version_won_once(log: Path, expected_cycles: int) -> None:
    assert sorted(int(line) for line in log.read_text().split()) == list(
        range(1, expected_cycles + 1)
    )


def assert_brackets_never_interleave(log: Path, expected_cycles: int) -> None:
    lines = log.read_text().split()
    assert len(lines) == 2 * expected_cycles
    for opening, closing in zip(lines[::2], lines[1::2], strict=True):
        assert opening.startswith("<"), (opening, closing)
        assert closing == ">" + opening[1:], (opening, closing)


@pytest.mark.slow
async def test_lock_and_cas_across_processes(
    token_dir: Path, tmp_path: Path, file_store: FileTokenStore
) -> None:
    """Four processes doing 25 lock/read/increment/save cycles each never overlap or lose one."""
    log = tmp_path / "brackets.log"
    run_workers("file", str(token_dir), "shared/key", workers=4, cycles=25, log=log)
    assert_brackets_never_interleave(log, 100)
    final = await file_store.load("shared/key")
    assert final is not None
    assert (final.version, final.access_token) == (100, "access-100")


@pytest.mark.slow
async def test_lock_of_a_killed_holder_is_free_at_once(token_dir: Path) -> None:
    """The kernel drops the file lock of a process killed while holding it."""
    kill_while_holding_lock("file", str(token_dir))
    async with asyncio.timeout(2), FileTokenStore(token_dir).lock("k"):
        pass


@pytest.mark.slow
async def test_compare_and_set_alone_is_atomic_across_processes(
    token_dir: Path, tmp_path: Path, file_store: FileTokenStore
) -> None:
    """Four processes racing compare-and-set without any lock never both win the same version."""
    log = tmp_path / "wins.log"
    run_workers("file", str(token_dir), "raced", workers=4, cycles=25, log=log, mode="race")
    assert_each_version_won_once(log, 100)
    final = await file_store.load("raced")
    assert final is not None
    assert (final.version, final.access_token) == (100, "access-100")


@pytest.mark.slow
async def test_writer_killed_at_random_points_never_leaves_an_unloadable_file(
    tmp_path: Path,
) -> None:
    """200 SIGKILLs of a writer mid-save: the token always loads and its version never goes back."""
    directory = tmp_path / "crash"
    result = subprocess.run(
        [sys.executable, str(HERE / "_crash_driver.py"), str(directory), "200", "20240521"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["failures"] == []
    assert summary["final_version"] > 0
    loaded = await FileTokenStore(directory).load("tenant/crash")
    assert loaded is not None
    assert loaded.version == summary["final_version"]
