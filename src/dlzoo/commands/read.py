"""`dlzoo read RUN_DIR IMAGE... [--json] [--annotate OUT_DIR] [--classifier DIGITS_RUN]`: read the handwritten
numbers in pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlzoo.cli import add_device_option, command
from dlzoo.errors import UserError
from dlzoo.files import json_text


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained digits (or digit-lines) run")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="pictures of numbers (photos, scans); a folder stands for the pictures in it")
    parser.add_argument("--json", action="store_true", help="one JSON object per picture")
    parser.add_argument("--annotate", metavar="OUT_DIR", help="write each picture with boxes and digits to OUT_DIR")
    parser.add_argument("--classifier", metavar="DIGITS_RUN",
                        help="a digits run that reads along with a digit-lines run, on digits that stand apart")
    add_device_option(parser)


@command("read", "read the handwritten numbers in pictures with a trained digits or digit-lines run", _arguments)
def read(args: argparse.Namespace) -> None:
    from dlzoo.data.folder import pictures_of_folders
    from dlzoo.reader import load_reader
    from dlzoo.reader.annotate import write_annotation
    from dlzoo.runs import check_not_a_run_file
    from dlzoo.vision.io import read_image

    out_dir = Path(args.annotate) if args.annotate else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--annotate {out_dir} exists and is not a folder")
    if out_dir is not None:
        check_not_a_run_file(out_dir)
    paths = list(dict.fromkeys(pictures_of_folders(args.images, "read")))
    for path in paths:  # every file checked before any work, then decoded again in its turn: a folder of large
        read_image(path)  # photos is never held in memory all at once
    targets = _annotation_targets(paths, out_dir) if out_dir is not None else {}
    reader = load_reader(args.run_dir, args.device, args.classifier)  # a digits classifier or a line recognizer
    for path in paths:
        picture = read_image(path)
        reading = reader.read(picture)
        record = {"path": path, **reading.to_dict()}
        if path in targets:
            record["annotated"] = str(write_annotation(picture, reading, targets[path]))
        if args.json:
            print(json_text(record, ensure_ascii=False), flush=True)
        else:
            lines = reading.text.split("\n") if reading.text else ["(no digits found)"]
            print(f"{path}: {lines[0]}" + "".join(f"\n  {line}" for line in lines[1:]), flush=True)


def _annotation_targets(inputs: list[str], out_dir: Path) -> dict[str, Path]:
    """Where each input's annotated copy goes: `out_dir/<stem>.png`, never over one of the inputs (an --annotate
    folder that holds the pictures, one of them a PNG, would have replaced it) nor over any other file but an
    annotation an earlier `read` wrote: the folder is named, not its files, which may be a user's own."""
    from dlzoo.reader.annotate import is_annotation

    written: set[Path] = set()
    targets = {path: _unique(out_dir / f"{Path(path).stem}.png", written) for path in inputs}
    given = {Path(path).resolve(): path for path in inputs}
    for target in targets.values():
        if target.resolve() in given:
            raise UserError(f"--annotate {out_dir} would write over the input picture {given[target.resolve()]}; "
                            "choose another folder")
    taken = [target.name for target in targets.values()
             if (target.exists() or target.is_symlink()) and not is_annotation(target)]
    if taken:
        raise UserError(f"--annotate {out_dir} already holds {', '.join(taken)}, not marked as a dlzoo annotation (a "
                        f"file of yours, or one written before annotations were marked): move "
                        f"{'it' if len(taken) == 1 else 'them'} or choose another folder")
    return targets


def _unique(path: Path, taken: set[Path]) -> Path:
    """`path`, or `stem-2.png`, `stem-3.png`... when two inputs share a name."""
    candidate, number = path, 1
    while candidate in taken:
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    taken.add(candidate)
    return candidate
