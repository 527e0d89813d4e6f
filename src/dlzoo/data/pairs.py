"""Labelled sentence pairs (a premise and a hypothesis, a question and an answer, ...) as train and test splits.

    snli:       Stanford NLI 1.0: snli_1.0_train.jsonl for training, snli_1.0_test.jsonl as the test split (the
                official one; data.test_fraction is not used), one JSON object a line: sentence1, sentence2 and
                gold_label (entailment, contradiction or neutral; "-" where the annotators did not agree, left out).
                data.path=DIR holds the files or their snli_1.0/ folder; else $DLZOO_DATA/snli or the cache, else
                the official zip is downloaded (MD5 checked) and unpacked whole.
    pairs-csv:  your own, data.path=FILE.csv with a first-sentence, a second-sentence and a label column
                (data.first_column, data.second_column, data.label_column); the test pairs are data.test_fraction
                of each class, drawn from data.split_seed alone, so every training seed is scored on the same pairs.

Files are UTF-8 (one in another encoding is refused in one line naming it). A CSV row lacking a cell is left out,
a pair repeated under one label is kept once and one found under two labels is left out, as dlzoo.data.texts does
with texts; `PairSplits.notes` says how many went.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlzoo.data.sources import Archive, FileSource, RemoteFile, UserDataSource, register_source
from dlzoo.data.tables import read_csv
from dlzoo.data.texts import _without_conflicts, not_utf8, split_by_class
from dlzoo.errors import UserError

SNLI_CLASSES = ("entailment", "contradiction", "neutral")  # the order of the class indices, fixed
SNLI_TRAIN, SNLI_TEST = "snli_1.0_train.jsonl", "snli_1.0_test.jsonl"
NO_CONSENSUS = "-"  # SNLI's gold_label where no label had a majority of the annotators

SNLI = register_source(FileSource(
    name="snli",
    description="Stanford NLI 1.0: premise and hypothesis -> entailment / contradiction / neutral, 549,367 training "
                "and 9,824 test pairs with a gold label",
    # The archive's MD5 is checked; the files inside it have none published.
    files=(RemoteFile(SNLI_TRAIN, ""), RemoteFile(SNLI_TEST, "")),
    allow_unpacked=False,
    extra_help="or unzip snli_1.0.zip (https://nlp.stanford.edu/projects/snli/) there",
    license="CC BY-SA 4.0 (Bowman et al. 2015, The Stanford NLP Group)",
    archive=Archive("https://nlp.stanford.edu/projects/snli/snli_1.0.zip", "981c3df556bbaea3f17f752456d0088c",
                    "snli_1.0"),
))
PAIRS_CSV = register_source(UserDataSource(
    "pairs-csv", "your own sentence pairs: data.path=FILE.csv with two sentence columns and a label column "
                 "(data.first_column, data.second_column, data.label_column)",
    "a UTF-8 CSV file of sentence pairs and labels"))

PAIR_SOURCES = (SNLI.name, PAIRS_CSV.name)


@dataclass
class PairSplits:
    train_firsts: list[str]
    train_seconds: list[str]
    train_labels: np.ndarray  # int64 class indices
    test_firsts: list[str]
    test_seconds: list[str]
    test_labels: np.ndarray
    classes: list[str]
    notes: list[str]  # what reading left out, for the training banner


def load_pairs(source: str, path: str | None, test_fraction: float, split_seed: int, first_column: str = "first",
               second_column: str = "second", label_column: str = "label") -> PairSplits:
    if source == SNLI.name:
        folder, notes = SNLI.locate(path), []
        train = _read_snli(SNLI.file(folder, SNLI_TRAIN), notes)
        test = _read_snli(SNLI.file(folder, SNLI_TEST), notes)
        return PairSplits(*train, *test, list(SNLI_CLASSES), notes)
    if source == PAIRS_CSV.name:
        pairs, notes = _read_csv_pairs(path, first_column, second_column, label_column)
        pairs, dropped = _without_conflicts(pairs)
        if dropped:
            notes.append(f"{dropped:,} pairs found under more than one label left out")
        train, train_labels, test, test_labels = split_by_class(pairs, test_fraction, split_seed)
        return PairSplits(*_unzipped(train), train_labels, *_unzipped(test), test_labels, list(pairs), notes)
    raise UserError(f"data.source={source} holds no sentence pairs; pair recipes read {', '.join(PAIR_SOURCES)}")


def _unzipped(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [first for first, _ in pairs], [second for _, second in pairs]


def _read_snli(path: Path, notes: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    """A .jsonl file's sentence pairs and class indices, without those that have no gold label."""
    firsts, seconds, labels, unlabelled = [], [], [], 0
    index = {name: i for i, name in enumerate(SNLI_CLASSES)}
    for number, row in _json_lines(path):
        first, second, label = (_text(row, key, path, number) for key in ("sentence1", "sentence2", "gold_label"))
        if label == NO_CONSENSUS:
            unlabelled += 1
            continue
        if label not in index:
            raise UserError(f"{path}: line {number:,} has gold_label {label!r}, none of {', '.join(SNLI_CLASSES)} "
                            f"or '{NO_CONSENSUS}'")
        firsts.append(first)
        seconds.append(second)
        labels.append(index[label])
    if not labels:
        raise UserError(f"{path} holds no sentence pair with a gold label")
    if unlabelled:
        notes.append(f"{unlabelled:,} pairs of {path.name} without a gold label ('{NO_CONSENSUS}': the annotators did "
                     f"not agree) left out")
    return firsts, seconds, np.array(labels, dtype=np.int64)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each non-blank line's JSON object and its line number, read a line at a time (SNLI's training file is
    ~470 MB); a line that is not UTF-8 or not a JSON object is refused in one line naming it."""
    offset = 0
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise not_utf8(path, error, offset) from None
                offset += len(raw)
                if number == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark, as Windows editors write
                if line.strip():
                    yield number, _json_object(line, path, number)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None


def _json_object(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: line {number:,} is not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(row, dict):
        raise UserError(f"{path}: line {number:,} is not a JSON object ({{\"sentence1\": ..., ...}})")
    return row


def _text(row: dict[str, Any], key: str, path: Path, number: int) -> str:
    if key not in row:
        raise UserError(f"{path}: line {number:,} has no {key!r} (an SNLI line holds sentence1, sentence2 and "
                        f"gold_label)")
    if not isinstance(row[key], str):
        raise UserError(f"{path}: line {number:,}: {key} is {json.dumps(row[key])[:40]}, not a text")
    return row[key]


def _read_csv_pairs(path: str | None, first: str, second: str, label: str) -> tuple[dict[str, list[tuple[str, str]]],
                                                                                   list[str]]:
    """Each label's (first, second) pairs, once each, labels in sorted order; and what was left out."""
    if not path:
        raise UserError(f"data.source={PAIRS_CSV.name} needs data.path, the CSV file of sentence pairs and labels")
    columns = {"data.first_column": first, "data.second_column": second, "data.label_column": label}
    if len(set(columns.values())) < len(columns):  # one column cannot be two of them
        raise UserError(f"{', '.join(f'{k}={v}' for k, v in columns.items())}: name three different columns")
    frame = read_csv(path)
    for key, column in columns.items():
        if column not in frame.columns:
            raise UserError(f"{path} has no column {column!r} ({key}); its columns: {', '.join(frame.columns)}")
    rows = frame[[first, second, label]].dropna()
    rows = rows[np.logical_and.reduce([rows[column].str.strip() != "" for column in rows.columns])]
    left_out = len(frame) - len(rows)
    notes = [f"{left_out:,} rows without two sentences and a label left out"] if left_out else []
    pairs: dict[str, list[tuple[str, str]]] = {}
    for one, two, name in zip(rows[first], rows[second], rows[label], strict=True):
        pairs.setdefault(name.strip(), []).append((one.strip(), two.strip()))
    if len(pairs) < 2:
        raise UserError(f"{path}: column {label!r} names {len(pairs)} class(es); a classifier needs two or more")
    return {name: list(dict.fromkeys(pairs[name])) for name in sorted(pairs)}, notes
