"""JSON encoding (orjson when installed: it dominates the cost of a 200-record page)."""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

__all__ = ["dumps", "loads"]


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - only without the "speed" extra
        return None


_orjson = _optional("orjson")


def dumps(document: Any) -> bytes:
    if _orjson is not None:
        encoded: bytes = _orjson.dumps(document)
        return encoded
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def loads(body: bytes | str) -> Any:
    """Parse JSON; raises ValueError (orjson's error is one) on anything that is not."""
    if _orjson is not None:
        return _orjson.loads(body)
    return json.loads(body)
