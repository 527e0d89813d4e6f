"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits with status 2."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable

# Set by the CLI's Ctrl-C handler, which raises KeyboardInterrupt too. Python drops an exception raised where it
# ignores them (a weakref callback of the import machinery, met while a command starts, prints "Exception ignored"),
# and training would then run on to its end: the training loop checks this at every step (`stop_if_interrupted`).
INTERRUPTED = threading.Event()


def stop_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that came but was swallowed on its way."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


class UserError(Exception):
    """A bad recipe name, key, value, path or file. The message is the whole story: no traceback is shown.

    Under torchrun every process meets most mistakes at once (a bad key, a missing file), and only rank 0 reports
    them; `this_process_only` marks one that a single process met (a broken picture it read while training), which
    that process reports, whichever rank it is."""

    def __init__(self, message: str, this_process_only: bool = False):
        super().__init__(message)
        self.this_process_only = this_process_only


def unknown_name(what: str, name: str, known: Iterable[str], otherwise: str = "") -> UserError:
    """`unknown recipe 'fashon'; did you mean 'fashion'?`; with no close name, `otherwise` (default: the names)."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else otherwise or f"known: {', '.join(known)}"
    return UserError(f"unknown {what} '{name}'; {hint}")


def one_line(message: str) -> str:
    """Collapse a message onto one line so stderr stays a single, greppable line."""
    return " ".join(str(message).split())
