"""main() in-process: what happens before any command runs."""

from __future__ import annotations

import pytest


def test_missing_cli_extra_explains_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without rich installed, main() names the cli extra and exits 2 instead of a traceback."""
    import importlib.util

    from actionstep_async.__main__ import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a)
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2
    assert 'pip install "actionstep-async[cli]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["get", "actions", "--sort", "-id"], ["get", "actions", "--sort=-id"]),
        (["get", "actions", "--sort", "name,-id"], ["get", "actions", "--sort", "name,-id"]),
        (["get", "actions", "--sort=-id"], ["get", "actions", "--sort=-id"]),
        (["get", "actions", "--sort", "--all"], ["get", "actions", "--sort", "--all"]),
        (["get", "-id"], ["get", "-id"]),
    ],
)
def test_a_dash_value_after_sort_is_its_value(given: list[str], parsed: list[str]) -> None:
    """``--sort -id``, as --help documents it, reaches argparse as ``--sort=-id``."""
    from actionstep_async._cli._app import attach_dash_values

    assert attach_dash_values(given) == parsed
