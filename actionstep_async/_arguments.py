"""Constructor argument checks: a wrong type fails at once, naming the parameter and the fix."""

from __future__ import annotations

import os

from ._errors import ConfigurationError

__all__ = ["check_refresher", "check_store", "check_type"]

_STORE_METHODS = ("load", "compare_and_set", "delete", "lock")


def check_type(name: str, value: object, expected: type, what: str) -> None:
    """Raise ConfigurationError unless ``value`` is an ``expected``; ``what`` says what to pass."""
    if not isinstance(value, expected):
        raise ConfigurationError(f"{name} must be {what}, not {type(value).__name__}")


def check_store(store: object) -> None:
    """A TokenStore has load, compare_and_set, delete and lock; a path is a common slip."""
    if all(callable(getattr(store, method, None)) for method in _STORE_METHODS):
        return
    if isinstance(store, str | os.PathLike):
        raise ConfigurationError(
            f"store must be a TokenStore, not a path: pass FileTokenStore({os.fspath(store)!r})"
        )
    raise ConfigurationError(
        "store must be a TokenStore (MemoryTokenStore(), FileTokenStore(directory) or"
        f" RedisTokenStore(...)), not {type(store).__name__}"
    )


def check_refresher(refresher: object) -> None:
    if not callable(getattr(refresher, "refresh", None)):
        raise ConfigurationError(
            "refresher must be an OAuthClient (or an object with async refresh(token)),"
            f" not {type(refresher).__name__}"
        )
