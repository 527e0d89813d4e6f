"""Files written whole: whoever reads one (a user, a resumed run, another rank) finds the old file or the new one,
never half of one, and a failed or interrupted write leaves no temporary file behind.

Every output dlzoo writes goes through `written_whole` (one file) or `all_written_whole` (several that belong
together, none replaced unless all were written): the bytes go to a temporary name beside the file, which one rename
puts in its place once the writing succeeded. They make the folders a file goes in, and a failed write removes again
the ones it made, so that `--out new/dir/file` leaves no empty folders behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlzoo.errors import UserError


def check_destination(path: str | Path, example: str) -> Path:
    """`path` for a file to write at the end of some work, refused (a UserError) before the work when it could not
    be written: a folder there, a file among its folders, or a folder this process may not write in. `example`
    names a file, for the message about a folder."""
    path = check_name_encodes(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name such as {path / example}")
    nearest = nearest_existing_parent(path)
    if nearest is not None and not nearest.is_dir():
        raise UserError(f"cannot write {path}: {nearest} is a file, not a folder")
    if nearest is not None and not os.access(nearest, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: no permission to write in {nearest}")
    return path


def check_folder_destination(path: str | Path) -> Path:
    """`path` for a folder to write files into at the end of some work (made if missing), refused before the work
    when it could not be: a file there or among its folders, or a folder this process may not write in."""
    path = check_name_encodes(path)
    nearest = path if path.is_dir() else nearest_existing_parent(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; give a folder to write into")
    if nearest is not None and not nearest.is_dir():
        raise UserError(f"cannot write into {path}: {nearest} is a file, not a folder")
    if nearest is not None and not os.access(nearest, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {path}: no permission to write in {nearest}")
    return path


def check_name_encodes(path: str | Path) -> Path:
    """`path`, refused when it is not text (bytes that are not UTF-8, as a shell's $'\\xff' makes): the files
    written there are named again in messages, JSON and TensorBoard, which take text only."""
    path = Path(path)
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"cannot write {str(path)!r}: its name is not valid UTF-8 text; choose another") from None
    return path


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once links are resolved, or one file under two names."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_not_an_input(out: Path, inputs: Sequence[Any], kind: str = "input") -> None:
    """Refuse an `--out` that names one of the input files (paths; other inputs are passed over), before any work:
    what is written would replace it. `kind` names the inputs in the message ("input picture")."""
    for item in inputs:
        if isinstance(item, (str, Path)) and same_file(out, Path(item)):
            raise UserError(f"--out {out} would write over the {kind} {item}; choose another file")


def nearest_existing_parent(path: Path) -> Path | None:
    """The closest of `path`'s parents that exists: the folder it would be made in, or a file in the way."""
    return next((parent for parent in Path(path).absolute().parents if parent.exists()), None)


_TOKEN_BYTES = 6  # of the random part of a temporary name: 12 hex digits


def temporary_beside(path: Path) -> Path:
    """A new hidden name beside `path` to write it under: unique per call, so it is never another process's
    temporary file nor an existing file (such as the input table of `predict --out`), and ending in `path`'s own
    suffix, from which writers such as matplotlib, PIL and torch.export take the format. A name near the file
    system's 255-byte limit drops its stem."""
    token = secrets.token_hex(_TOKEN_BYTES)
    name = f".{path.stem}.{token}.tmp{path.suffix}"
    return path.with_name(name if len(name.encode()) <= 255 else f".{token}.tmp{path.suffix}")


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files of `path` left by a process killed while writing it (nothing else removes them)."""
    return sorted(path.parent.glob(f".{path.stem}.*.tmp{path.suffix}"))


_TEMPORARY = re.compile(rf"\.(.*\.)?[0-9a-f]{{{2 * _TOKEN_BYTES}}}\.tmp(\.[^.]*)?")  # temporary_beside's names


def stale_temporaries_in(folder: Path) -> list[Path]:
    """Temporary files of any file in `folder` left by a process killed while writing it (`temporary_beside`)."""
    return sorted(p for p in folder.glob(".*.tmp*") if _TEMPORARY.fullmatch(p.name) and p.is_file())


# A lone surrogate: how Python holds a byte of a file name that is not UTF-8 (b'caf\xe9.png' is 'caf\udce9.png').
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(data: Any, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """`json.dumps(data)` as strict JSON: a number that is not finite (a diverged loss: NaN, inf) becomes null.
    Python's own `NaN` and `Infinity` are not JSON, and other readers refuse them (JavaScript's JSON.parse, jq);
    dlzoo's readers of metrics take null back as NaN (`engine.reporting.nan_for_null`). A file name that is not
    UTF-8 keeps its odd bytes as \\udcXX escapes even without `ensure_ascii`: printed as they are (stdout's
    surrogateescape), they made the output bytes that are not UTF-8, which no JSON reader takes; Python's
    json.loads gives the name back, and os.fsencode its bytes."""
    text = json.dumps(_finite(data), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):  # numpy's float64 too
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_text_whole(path: Path, text: str) -> None:
    """`path.write_text(text)` (UTF-8) through `written_whole`: the old file or the new one, never half of it."""
    with written_whole(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """`with written_whole(out) as tmp: write(tmp)`: `out` is replaced by what was written to `tmp` once the block
    succeeds; if it fails, `out` is untouched and `tmp` removed. Errors pass through unchanged."""
    with all_written_whole([path]) as (temporary,):
        yield temporary


@contextmanager
def all_written_whole(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """`written_whole` for files that belong together (a model and its sidecar): each is written to its temporary
    name, and only when the block has written them all are they renamed into place."""
    targets = [Path(path) for path in paths]
    for target in targets:  # a name the file system refuses would fail only at its rename, after the others'
        _check_name_length(target)
    made: list[Path] = []
    temporary: list[Path] = []
    written = False
    try:
        for target in targets:
            made += _make_folders(target.parent)
            temporary.append(_claim(target))
        yield temporary
        for tmp, target in zip(temporary, targets, strict=True):
            try:
                tmp.replace(target)
            except OSError as error:  # named by the file the user asked for, not by our temporary one
                raise OSError(error.errno, error.strerror, str(target)) from None
        written = True
    finally:  # after a failure, as after success, no temporary file stays behind
        for tmp in temporary:
            tmp.unlink(missing_ok=True)
        if not written:
            _remove_empty_folders(made)


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib `Figure(**kwargs)` drawn off-screen (Agg) and kept out of pyplot: `matplotlib.use("Agg")`
    switched the backend of the whole process, so a notebook that trained a run lost its inline plots; and pyplot
    keeps every figure it made until closed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)  # attaches itself: the figure's canvas, and its renderer for text sizes
    return figure


def save_figure(figure: Any, out: Path, dpi: int) -> Path:
    """Write a matplotlib figure (`new_figure`) whole, its format from `out`'s suffix."""
    with written_whole(out) as tmp:
        figure.savefig(tmp, dpi=dpi)
    return out


def _check_name_length(path: Path) -> None:
    check_name_encodes(path)
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):  # the folder is not there yet (made just before the file), or no such limit here
        limit = 255
    if len(path.name.encode()) > limit:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones this call made, outermost first. A folder another process
    makes meanwhile (ranks of a torchrun job writing beside each other) is not counted as made here."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue
        made.append(new)
    return made


def _remove_empty_folders(made: list[Path]) -> None:
    """Remove the folders a failed write made, innermost first; one that something else has filled meanwhile stays
    (and so do its parents: their removal fails alike)."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _claim(path: Path) -> Path:
    """A temporary name for `path`, created empty and exclusively: the file removed after a failure is always one
    this process made, even if a name were ever drawn twice."""
    while True:
        tmp = temporary_beside(path)
        try:
            tmp.touch(exist_ok=False)
        except FileExistsError:
            continue
        except OSError as error:  # no such folder, a file in the path, no permission: say it of `path` itself
            raise OSError(error.errno, error.strerror, str(path)) from None
        return tmp
