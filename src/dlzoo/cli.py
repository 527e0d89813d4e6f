"""`dlzoo`: one command-line tool for every recipe. Subcommands live in `dlzoo.commands`, one module per theme;
each registers itself with `@command`. User errors end as one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dlzoo.errors import INTERRUPTED, UserError, one_line


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


_COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None):
    """Register `run(args)` as `dlzoo NAME`; `arguments(parser)` declares its options."""

    def decorate(run: Callable[[argparse.Namespace], int | None]):
        _COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return decorate


def seed_number(text: str) -> int:
    """The type of a command's --seed: an integer in [0, 2^32), as `trainer.seed` (torch and numpy take no more)."""
    from dlzoo.config import check_seed

    try:
        return check_seed(int(text), "a seed")
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is an integer, not {text!r}") from None
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and status 2, like every other user error."""

    def error(self, message: str):
        command = self.prog.removeprefix("dlzoo").strip()  # main() already says "dlzoo: error:"
        raise UserError(f"{command}: {message} (see --help)" if command else f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    import dlzoo.commands

    for module in pkgutil.iter_modules(dlzoo.commands.__path__):
        importlib.import_module(f"dlzoo.commands.{module.name}")
    from dlzoo import __version__

    parser = _Parser(prog="dlzoo", description="The classic deep-learning curriculum as tested, fast recipes.")
    parser.add_argument("--version", action="version", version=f"dlzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _ORDER + sorted(set(_COMMANDS) - set(_ORDER)):
        if name in _COMMANDS:
            entry = _COMMANDS[name]
            entry.add_arguments(sub.add_parser(name, help=entry.help, description=entry.help))
    return parser


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """`--device`, with the choices of training's `trainer.device`."""
    from dlzoo.config import TrainerConfig

    choices = typing.get_args(typing.get_type_hints(TrainerConfig)["device"])
    parser.add_argument("--device", default="auto", choices=choices, help="auto: a GPU when there is one")


def check_device_exists(device: str, option: str = "--device ") -> None:
    """Refuse a `device` (cuda, mps) this machine lacks, in the words the user typed (`option`): the engine, which
    checks it again, names its config key, trainer.device, which commands other than train do not take."""
    if device in ("auto", "cpu"):
        return
    from dlzoo.engine.runtime import pick_device

    try:
        pick_device(device)
    except UserError:
        raise UserError(f"{option}{device}, but this machine has no {device.upper()} device; use {option}auto or "
                        f"cpu") from None


# The order `dlzoo --help` lists commands in: the everyday ones first.
_ORDER = ["list", "show", "train", "eval", "predict", "data", "models"]


def _print_names_as_their_bytes() -> None:
    """A file named in another encoding than UTF-8 (a zip made on Windows) reaches Python with its odd bytes as
    lone surrogates, which a strict stdout (the UTF-8 locale of most desktops) refuses to print: predict and eval
    failed on it with UnicodeEncodeError. Python's own choice in the C locale, surrogateescape, prints those bytes
    back as the file's name has them, as `ls` does; every other character prints as before. stderr already escapes
    them (backslashreplace)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)  # not on a stream of the caller's (io.StringIO)
    if reconfigure is not None and sys.stdout.errors == "strict":
        reconfigure(errors="surrogateescape")


def run_command(argv: list[str] | None = None) -> int:
    """`dlzoo ARGV` with its mistakes raised (UserError), not printed: what `main` runs, and what a benchmark runs
    to train a recipe, so that a mistake only training meets reaches `dlzoo bench`'s own `main` as one line."""
    from dlzoo.plugins import import_plugins

    import_plugins()  # models of the user's own, before any name is looked up
    parser = build_parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help()  # what there is to run, on stdout; the mistake, on stderr
        raise UserError("name a command (listed above)")
    if args.command != "train" and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise UserError(f"dlzoo {args.command} runs in one process: run it without torchrun (only training "
                        f"spreads over processes)")
    check_device_exists(getattr(args, "device", "auto"))
    return _COMMANDS[args.command].run(args) or 0


def main(argv: list[str] | None = None) -> int:
    _print_names_as_their_bytes()
    with _ctrl_c_noted() as ctrl_c_came:
        try:
            return run_command(argv)
        except UserError as error:
            if _rank() != 0 and not error.this_process_only:
                # Under torchrun every process meets most mistakes at once (a bad key, a missing file). Rank 0
                # says so; the others wait, and torchrun stops them as soon as rank 0 has exited. (Exiting at once
                # would be worse than saying it twice: torchrun would stop rank 0 before it printed.) One still
                # running after the grace period met the mistake alone, and says it itself.
                _wait_to_be_stopped()
            print(f"dlzoo: error: {_from_rank()}{one_line(str(error))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("dlzoo: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `dlzoo list | head`
            return 0
        except OSError as error:  # an --out under a file, no permission, a full disk: the machine's answer
            print(f"dlzoo: error: {_from_rank()}{_describe(error)}", file=sys.stderr)
            return 2
        except Exception as error:
            if ctrl_c_came():  # a Ctrl-C that surfaced as another error (an import it cut short, at start-up)
                print("dlzoo: interrupted", file=sys.stderr)
                return 130
            if int(os.environ.get("WORLD_SIZE", 1)) > 1 and _a_peer_stopped(error):
                _wait_to_be_stopped()
            raise


def console_main() -> typing.NoReturn:
    """The `dlzoo` command (`python -m dlzoo`, the console script): `main`, then exit with its status."""
    status = main()
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        _leave_without_finalization(status)
    raise SystemExit(status)


def _leave_without_finalization(status: int) -> typing.NoReturn:
    """Exit a torchrun process as exit would (atexit handlers run, streams flushed) but without Python's
    finalization. torch's gloo backend keeps its worker threads past `destroy_process_group`, and a worker may drop
    the last collective's tensors only after the main thread has finished: during finalization that needs the GIL,
    the thread is killed for it and the process aborts ("terminate called without an active exception"), so
    torchrun reports a run whose training had finished as failed. In a two-process gloo script (DDP steps, an
    all_gather_object, rank 0 then busy for 0.3 s, as after dlzoo's last checkpoint) 3 exits of 50 aborted so, none
    of 50 leaving this way; gdb put the abort in a gloo worker thread releasing an allgather's tensors."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`), a closed stream
            stream.flush()
    os._exit(status)


@contextlib.contextmanager
def _ctrl_c_noted() -> Iterator[Callable[[], bool]]:
    """Yields whether Ctrl-C has come during the command. It raises KeyboardInterrupt as ever, but one that cuts an
    import short (sklearn's, while a command starts) can surface as another error from the half-made module, a
    traceback the user did not cause: knowing that Ctrl-C came, the command says it was interrupted instead. Only
    where Python's own handler is set, in the main thread (elsewhere signals cannot be handled)."""
    INTERRUPTED.clear()  # a command run in this process before (the tests, the Python API) is over

    def note_and_interrupt(signum: int, frame: object) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt

    ours = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    previous = signal.signal(signal.SIGINT, note_and_interrupt) if ours else None
    try:
        yield INTERRUPTED.is_set
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)


# How long a torchrun process that failed waits for torchrun to stop it: long enough for rank 0 to report a mistake
# every process met, or for a peer's failure to reach torchrun.
TORCHRUN_GRACE_S = 30.0


def _a_peer_stopped(error: Exception) -> bool:
    """Whether a torchrun process failed inside a collective because another process stopped (at a mistake it met
    alone, such as a broken picture in its share of the data): torch.distributed's errors, or gloo's words for a
    lost connection, which it raises as a plain RuntimeError. Such a process waits to be stopped, so that the
    other's one line stands alone; any other failure shows its traceback at once."""
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    lost = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")  # gloo's Read/Write errors
    return any(words in str(error) for words in lost)


def _wait_to_be_stopped() -> None:
    """Wait for torchrun to stop this process, which it does to every process once one has exited; one still
    running after the grace period goes on (its mistake, or its traceback, follows)."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the wait, not with a traceback
        time.sleep(TORCHRUN_GRACE_S)


def _rank() -> int:
    """This process's rank under torchrun, else 0."""
    return int(os.environ.get("RANK", 0))


def _from_rank() -> str:
    """`rank 1: ` before the message of a process other than torchrun's first, so that its origin is clear."""
    return f"rank {_rank()}: " if _rank() else ""


# The commands' lists of KEY=VALUE settings (train's overrides, eval's settings, bench's options).
_KEY_VALUE_LISTS = ("overrides", "settings", "options")

# The commands' arguments that name files or folders, as their messages name them. An empty one would read as "not
# given" (--out '') or, through Path(''), as the current folder (`predict RUN ''` said ". is a folder").
_PATHS = {"out": "--out", "plot": "--plot", "config": "--config", "resume": "--resume", "annotate": "--annotate",
          "classifier": "--classifier", "run_dir": "RUN_DIR", "runs": "RUN_DIR", "inputs": "INPUT", "images": "IMAGE"}


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """argparse fills a KEY=VALUE list only from the words before the first option; those after one
    (`dlzoo train digits --out r trainer.epochs=1`) are added to it here, in order. An empty path is refused."""
    args, extra = parser.parse_known_args(argv)
    lists = [name for name in _KEY_VALUE_LISTS if isinstance(getattr(args, name, None), list)]
    if extra and lists and all("=" in word and not word.startswith("-") for word in extra):
        getattr(args, lists[0]).extend(extra)
    elif extra:
        where = f"{args.command}: " if getattr(args, "command", None) else ""
        raise UserError(f"{where}unrecognized arguments: {' '.join(extra)} (see --help)")
    for dest, value in vars(args).items():
        if dest in _PATHS and "" in (value if isinstance(value, list) else [value]):
            raise UserError(f"{_PATHS[dest]} needs a path, got an empty one")
    return args


def _describe(error: OSError) -> str:
    """`cannot use 'README.md/run': Not a directory`, or the error's own words when it names no file."""
    reason = error.strerror or str(error)
    return one_line(f"cannot use '{error.filename}': {reason}" if error.filename else reason)


if __name__ == "__main__":
    raise SystemExit(main())
