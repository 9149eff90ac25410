"""Pytest plugin: fail the run if any secret shows up in logs, output, exceptions or reprs.

Every log record of the whole run is captured at DEBUG level, as is every test's captured output.
Every ``ActionstepError`` created during a test is kept until the test's call phase ends, then
its str, repr, attributes and whole ``__cause__``/``__context__`` chain are scanned (caught ones
too: ``pytest.raises`` hides nothing from this). The library's own objects (managers, clients,
tokens, requests, stores...) are repr'd when built and again, while alive, when the call ends.
At the end the run fails if a sentinel secret, the fake's client secret, or any token or code a
FakeActionstep minted appears in any of it.

Cheap by design: at most :data:`_CAP` objects per class and test are watched, and texts are cut
into token-shaped words looked up in a set instead of searching for every secret.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actionstep_async.testing import issued_secrets
from actionstep_async.testing._auth import _ISSUED

from ._secrets import SENTINELS


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except (TypeError, ValueError):  # a malformed record is itself worth seeing
            self.lines.append(repr(record.msg))


_HANDLER = _Everything()
_REPORTS: list[str] = []


_CAP = 200
_WORDS = re.compile(r"[A-Za-z0-9_.~-]{12,}")
_RAISED: list[BaseException] = []
_LIVE: list[Callable[[], object]] = []
_SEEN: dict[type, int] = {}
_OBJECT_TEXTS: list[str] = []
"""Texts of exceptions and reprs that contained a secret (kept for the final report)."""


def _leaking(texts: Iterator[str]) -> list[str]:
    secrets = _ISSUED  # the live set: no copy per object
    hits = []
    for text in texts:
        if any(sentinel in text for sentinel in SENTINELS) or any(
            word in secrets for word in _WORDS.findall(text)
        ):
            hits.append(text)
    return hits


def _chain_texts(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield f"{type(current).__name__}: {current!s} {current!r} {current.args!r}"
        yield repr(getattr(current, "__dict__", {}))
        pending += [current.__cause__, current.__context__]


def _watch(cls: type, record: Callable[[Any], None]) -> None:
    original = cls.__init__  # type: ignore[misc]

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        record(self)

    cls.__init__ = __init__  # type: ignore[misc]


def _record_error(error: BaseException) -> None:
    if len(_RAISED) < 10 * _CAP:
        _RAISED.append(error)


def _record_object(obj: object) -> None:
    cls = type(obj)
    if _SEEN.get(cls, 0) >= _CAP:
        return
    _SEEN[cls] = _SEEN.get(cls, 0) + 1
    _OBJECT_TEXTS.extend(_leaking(iter([repr(obj)])))
    with contextlib.suppress(TypeError):  # slotted without __weakref__: the birth repr only
        _LIVE.append(weakref.ref(obj))


def _watched_classes() -> list[type]:
    from actionstep_async import _client, _manager, _oauth, _tokens, _transport, stores
    from actionstep_async.stores import redis as redis_store
    from actionstep_async.testing import _mock

    return [
        _client.AsyncResourceClient,
        _client._Prepared,
        _client._TransportHolder,
        _manager.TokenManager,
        _manager._KeyState,
        _oauth.OAuthClient,
        _oauth.AuthorizationRequest,
        _tokens.Token,
        _transport.Request,
        _transport.Response,
        _transport.AiohttpTransport,
        stores.MemoryTokenStore,
        stores.FileTokenStore,
        redis_store.RedisTokenStore,
        _mock.MockTransport,
    ]


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_HANDLER)
    root.setLevel(logging.DEBUG)
    from actionstep_async import ActionstepError

    _watch(ActionstepError, _record_error)
    for cls in _watched_classes():
        _watch(cls, _record_object)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield
    alive = (ref() for ref in _LIVE)
    texts = [repr(obj) for obj in alive if obj is not None]
    for error in _RAISED:
        texts.extend(_chain_texts(error))
    _OBJECT_TEXTS.extend(f"{item.nodeid}: {text}" for text in _leaking(iter(texts)))
    _RAISED.clear()
    _LIVE.clear()
    _SEEN.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _REPORTS.extend(text for _, text in report.sections)
    if report.longrepr is not None:
        _REPORTS.append(report.longreprtext)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_HANDLER)
    secrets = {*SENTINELS, *issued_secrets()}
    leaks = [
        line for line in (*_HANDLER.lines, *_REPORTS) if any(secret in line for secret in secrets)
    ]
    leaks += _OBJECT_TEXTS
    if leaks:
        sys.stderr.write(f"\nSECRET LEAK: {len(leaks)} captured lines contain a secret, e.g.:\n")
        for line in leaks[:5]:
            redacted = line
            for secret in secrets:
                redacted = redacted.replace(secret, "<SECRET>")
            sys.stderr.write(f"  {redacted[:300]}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
