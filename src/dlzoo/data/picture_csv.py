"""Pictures labelled by a CSV file, as Kaggle hands out its image-classification sets (`data.source=picture-csv`):

    classify-leaves  DIR/train.csv with columns image,label (image: a path under DIR such as images/0.jpg), and
                     DIR/test.csv with image alone
    CIFAR-10         DIR/trainLabels.csv with columns id,label, and the pictures DIR/train/<id>.png; DIR/test/
                     holds pictures alone

The layout is told by which CSV the folder holds. Labels are class names; the classes are those names sorted (as a
folder's class folders are), so a class's index does not depend on the order of the rows.

Kaggle's test pictures (test.csv, test/) carry no labels, so nothing can be scored on them: they are left out, and
training says so. The test split is held out of the labelled rows instead: `data.test_fraction` of each class, drawn
from `data.split_seed` alone, so that every training seed is scored on the same pictures. From there the pictures are
read as a folder's are (`dlzoo.data.folder.read_listing`): the same preparation, validation split and streaming.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from dlzoo.data.folder import IMAGE_SUFFIXES, PictureListing, _hidden, mixed
from dlzoo.data.images import validation_split
from dlzoo.data.sources import UserDataSource, register_source
from dlzoo.data.tables import read_csv
from dlzoo.errors import UserError


@dataclass(frozen=True)
class CsvLayout:
    """One of Kaggle's ways of labelling pictures with a CSV file."""

    name: str  # the competition's, for messages
    labels: str  # the labelled CSV, in DIR
    column: str  # its column naming the picture (beside "label")
    picture: str  # where the picture named `{}` in that column lies, under DIR
    unlabelled: str  # Kaggle's test set, in DIR: left out

    def path(self, root: Path, named: str) -> Path:
        return root / self.picture.format(named)

    def expected(self) -> str:
        where = "" if self.picture == "{}" else f" with the pictures {self.picture.format(f'<{self.column}>')}"
        return f"{self.labels} (columns {self.column},label{where}, as Kaggle's {self.name})"


LAYOUTS = (CsvLayout("classify-leaves", "train.csv", "image", "{}", "test.csv"),
           CsvLayout("CIFAR-10", "trainLabels.csv", "id", "train/{}.png", "test"))

PICTURE_CSV = register_source(UserDataSource(
    "picture-csv", "pictures labelled by a CSV, as Kaggle unpacks them: data.path=DIR holding train.csv "
                   "(image,label: classify-leaves) or trainLabels.csv (id,label) and train/<id>.png (CIFAR-10); "
                   "classes sorted by name, the test split held out of the labelled rows (data.test_fraction)",
    f"a folder holding {' or '.join(layout.expected() for layout in LAYOUTS)}"))


@dataclass(frozen=True)
class CsvListing(PictureListing):
    """The checked rows of a labelled CSV, split into train and a held-out test split."""

    source: ClassVar[str] = PICTURE_CSV.name
    layout: CsvLayout
    test_fraction: float
    split_seed: int
    unnamed: list[Path]  # pictures beside the labelled ones that the CSV does not name (Kaggle's test pictures)

    def test_fingerprint(self) -> str:
        # Rows added to or removed from the CSV since training draw another test split, which may hold pictures the
        # run trained on: the run keeps this to refuse scoring (or resuming) on it.
        return self.fingerprint(self.test)

    def notes(self) -> list[str]:
        table = self.root / self.layout.labels
        notes = [f"{table}: the test split is held out of its rows: data.test_fraction={self.test_fraction:g} of "
                 f"each class, drawn from data.split_seed={self.split_seed}"]
        if (self.root / self.layout.unlabelled).exists():
            notes.append(f"{self.root}: left out {self.layout.unlabelled}: Kaggle's unlabelled test set, not a test "
                         f"split (it has no labels to score)")
        if self.unnamed:
            notes.append(f"{self.root}: left out {len(self.unnamed):,} picture(s) that {self.layout.labels} does not "
                         f"label, e.g. {self.unnamed[0].relative_to(self.root)}")
        return notes


def layout_of(root: Path) -> CsvLayout:
    """The layout whose labelled CSV `root` holds; a folder with none of them, or with more than one, is refused."""
    found = [layout for layout in LAYOUTS if (root / layout.labels).is_file()]
    if len(found) == 1:
        return found[0]
    holds = "both, and which to read is unclear: remove one" if found else "neither"
    raise UserError(f"data.source={PICTURE_CSV.name} needs {root} to hold one of "
                    f"{' or '.join(layout.expected() for layout in LAYOUTS)}; it holds {holds}")


def labelled_pictures(root: Path, layout: CsvLayout) -> list[tuple[Path, str]]:
    """(picture, class name) for every row of the layout's CSV, each checked: a named picture that exists, named
    once, and a label."""
    table = root / layout.labels
    frame = read_csv(table)  # UTF-8 or a one-line refusal
    missing = [column for column in (layout.column, "label") if column not in frame.columns]
    if missing:
        raise UserError(f"{table} lacks the column(s) {', '.join(missing)} that {layout.expected()} has; its "
                        f"columns: {', '.join(frame.columns)}")
    rows: list[tuple[Path, str]] = []
    first_named: dict[Path, int] = {}
    for index, (named, label) in enumerate(zip(frame[layout.column], frame["label"], strict=True)):
        line = index + 2  # the header is line 1
        # Empty cells (and pandas' NA spellings) are read as NaN, a float.
        if not isinstance(named, str) or not named.strip():
            raise UserError(f"{table}: line {line} names no picture (its {layout.column} is empty)")
        picture = layout.path(root, named.strip())
        if not isinstance(label, str) or not label.strip():
            raise UserError(f"{table}: line {line} ({named}) has an empty label")
        _check_picture(table, line, picture, root)
        if picture in first_named:  # in both splits, it would be tested on a picture trained on
            raise UserError(f"{table}: line {line} names {picture} again (first on line {first_named[picture]}): "
                            f"give each picture one row")
        first_named[picture] = line
        rows.append((picture, label.strip()))
    return rows


def _check_picture(table: Path, line: int, picture: Path, root: Path) -> None:
    if not picture.is_relative_to(root):  # an absolute path: the split's fingerprint names pictures under DIR
        raise UserError(f"{table}: line {line} names {picture}, outside {root}: name pictures by their path in it")
    if not picture.is_file():
        raise UserError(f"{table}: line {line} names {picture}, which does not exist")
    if picture.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{table}: line {line} names {picture}, which is not a picture "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})")


def unnamed_pictures(named: set[Path]) -> list[Path]:
    """Pictures in the folders of the named ones that none of them is, sorted (classify-leaves keeps its test
    pictures in the same images/ folder as the labelled ones); hidden files are passed over, as a folder's are."""
    beside = {picture.parent for picture in named}
    return sorted(path for folder in beside for path in folder.iterdir()
                  if not _hidden(path.name) and path.suffix.lower() in IMAGE_SUFFIXES and path not in named
                  and path.is_file())


def list_picture_csv(path: str | None, test_fraction: float, split_seed: int) -> CsvListing:
    """The labelled pictures under `path` (not read yet), with the test split held out, or a UserError that says
    what the folder or its CSV lacks."""
    if not path:
        raise UserError(f"data.source={PICTURE_CSV.name} needs data.path: {PICTURE_CSV.how_to_get()}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"data.path {root} is not a folder (data.source={PICTURE_CSV.name} reads the folder holding "
                        f"train.csv or trainLabels.csv)")
    layout = layout_of(root)
    rows = labelled_pictures(root, layout)
    classes = sorted({label for _, label in rows})
    if len(classes) < 2:
        raise UserError(f"{root / layout.labels} labels {len(classes)} class(es); a classifier needs two or more")
    index = {name: label for label, name in enumerate(classes)}
    items = [(picture, index[name]) for picture, name in rows]
    kept, held = validation_split(np.array([label for _, label in items]), test_fraction, split_seed, classes,
                                  split="test")
    return CsvListing(root, classes, mixed([items[i] for i in kept]), [items[i] for i in held], layout,
                      test_fraction, split_seed, unnamed_pictures({picture for picture, _ in rows}))
