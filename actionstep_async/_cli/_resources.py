"""Resource names the command knows, and the message for a name the server does not."""

from __future__ import annotations

import difflib
from collections.abc import Collection

__all__ = ["known_resources", "unknown_resource_message"]


def known_resources() -> frozenset[str]:
    """The resource catalogue's names plus the hand-modelled ones outside it (``timerecords``)."""
    from .._catalogue import CATALOGUE
    from .._models import TYPED_MODELS

    return frozenset(CATALOGUE) | frozenset(TYPED_MODELS)


def unknown_resource_message(name: str, known: Collection[str]) -> str | None:
    """What to say when the server answered 404 for ``name``; None if ``name`` is known.

    A known name's 404 is about the id (or the record), and the server's message says so.
    """
    if name in known:
        return None
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown resource {name!r}{hint}"
