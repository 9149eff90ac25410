"""Token stores: where tokens live, shared between tasks, processes and hosts.

``MemoryTokenStore`` and ``FileTokenStore`` are here; the Redis store lives in
``actionstep_async.stores.redis`` so that ``redis`` stays an optional dependency.
"""

from __future__ import annotations

from ._base import TokenStore, validate_key
from ._file import FileTokenStore
from ._memory import MemoryTokenStore

__all__ = ["FileTokenStore", "MemoryTokenStore", "TokenStore", "validate_key"]
