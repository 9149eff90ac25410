"""``python -m actionstep_async`` and the ``actionstep-async`` console script."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

_EXTRA_HINT = (
    "actionstep-async: the command needs the 'cli' extra ({missing} is not installed).\n"
    'Install it with: pip install "actionstep-async[cli]"\n'
)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command and exit with its status (2 when the ``cli`` extra is missing)."""
    # Checked before importing the CLI so a library-only install gets advice, not a traceback.
    missing = [name for name in ("rich", "platformdirs") if importlib.util.find_spec(name) is None]
    if missing:
        sys.stderr.write(_EXTRA_HINT.format(missing=" and ".join(missing)))
        raise SystemExit(2)
    from ._cli._app import run

    raise SystemExit(run(argv))


if __name__ == "__main__":
    main()
