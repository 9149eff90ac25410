"""The resource client fixtures (a fake, a TokenManager bound to it, clients) reused here."""

from __future__ import annotations

from ..client.conftest import make_client, manager

__all__ = ["make_client", "manager"]
