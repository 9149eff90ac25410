"""The ``actionstep-async`` command (the ``cli`` extra): login, token, get, export, demo.

Private: the command line is the interface, not these modules. Exit codes are listed in
:mod:`actionstep_async._cli._app`.
"""

from __future__ import annotations
