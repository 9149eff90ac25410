"""A local mirror of Actionstep in SQLite or PostgreSQL (the ``mirror`` extra).

``Mirror(client, "sqlite:///actionstep.db")`` and ``await mirror.sync(["actions"])``.
"""

from __future__ import annotations

from ._columns import sql_type
from ._errors import MirrorError
from ._mirror import HookEvent, Mirror, SyncReporter, SyncResult

__all__ = ["HookEvent", "Mirror", "MirrorError", "SyncReporter", "SyncResult", "sql_type"]
