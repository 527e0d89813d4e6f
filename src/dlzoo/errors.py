"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits with status 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad recipe name, key, value, path or file. The message is the whole story: no traceback is shown.

    Under torchrun every process meets most mistakes at once (a bad key, a missing file), and only rank 0 reports
    them; `this_process_only` marks one that a single process met (a broken picture it read while training), which
    that process reports, whichever rank it is."""

    def __init__(self, message: str, this_process_only: bool = False):
        super().__init__(message)
        self.this_process_only = this_process_only


def one_line(message: str) -> str:
    """Collapse a message onto one line so stderr stays a single, greppable line."""
    return " ".join(str(message).split())
