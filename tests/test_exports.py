"""The public API surface stays curated."""

from __future__ import annotations

import types

import actionstep_async


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute of the package once, and nothing private."""
    public = {
        name
        for name, value in vars(actionstep_async).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert set(actionstep_async.__all__) == public
    assert len(actionstep_async.__all__) == len(set(actionstep_async.__all__))


def test_version_comes_from_package_metadata() -> None:
    """__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert actionstep_async.__version__ == version("actionstep-async")
