"""The resource client fixtures, reused for the typing tests that also run."""

from __future__ import annotations

from ..client.conftest import make_client, manager

__all__ = ["make_client", "manager"]
