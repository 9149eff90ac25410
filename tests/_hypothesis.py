"""Example counts for property tests: thorough in CI, a handful locally.

The profiles themselves are registered in tests/conftest.py (chosen by the ``CI`` variable); a
test's own ``@settings(max_examples=...)`` would override the profile, so tests pass their
thorough count through :func:`examples` instead.
"""

from __future__ import annotations

import os

from hypothesis import settings

THOROUGH = os.environ.get("CI", "").lower() == "true"


def examples(thorough: int) -> int:
    """``thorough`` under CI; the loaded quick profile's (smaller) count otherwise."""
    if THOROUGH or settings.default is None:
        return thorough
    return min(thorough, settings.default.max_examples)
