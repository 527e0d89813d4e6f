"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits with status 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad recipe name, key, value, path or file. The message is the whole story: no traceback is shown."""


def one_line(message: str) -> str:
    """Collapse a message onto one line so stderr stays a single, greppable line."""
    return " ".join(str(message).split())
