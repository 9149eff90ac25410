"""FileTokenStore: placeholder until the real implementation lands."""

from __future__ import annotations

__all__ = ["FileTokenStore"]


class FileTokenStore:  # pragma: no cover - replaced by the file store implementation
    pass
