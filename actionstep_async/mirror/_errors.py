"""The mirror's error type."""

from __future__ import annotations

from .._errors import ActionstepError

__all__ = ["MirrorError"]


class MirrorError(ActionstepError):
    """A mirror cannot run as configured: bad database URL, unknown resource, wrong database."""
