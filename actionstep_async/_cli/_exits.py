"""Exit statuses, and the one error type commands raise to end with a message."""

from __future__ import annotations

from typing import Final

OK: Final = 0
FAILED: Final = 1
"""The API refused a request, or an export's output could not be verified."""
USAGE: Final = 2
"""Bad arguments or missing/invalid configuration: fix the command or the settings."""
REAUTHORIZE: Final = 3
"""No usable token: run ``actionstep-async login``."""
NETWORK: Final = 4
"""A host could not be reached, or kept failing, after the retries."""
STORE: Final = 5
"""The local token store failed: a file or directory we cannot use, or Redis unreachable."""
INTERRUPTED: Final = 130
"""Ctrl-C (128 + SIGINT, the shell convention); an export can be resumed."""

EXIT_CODES_HELP: Final = f"""\
exit status:
  {OK}    success
  {FAILED}    the API refused a request, 429s included (the message says why)
  {USAGE}    bad arguments or missing configuration (the message names the setting)
  {REAUTHORIZE}    authorization needed: run 'actionstep-async login'
  {NETWORK}    network trouble (the message names the host)
  {STORE}    the token store failed (the message names the file or Redis)
  {INTERRUPTED}  interrupted (Ctrl-C); run the same export again to resume it
"""


class CommandError(Exception):
    """Ends the command with ``message`` on stderr and ``status`` as the exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status
