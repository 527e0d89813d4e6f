"""Sentence pairs (dlzoo.data.pairs): tiny SNLI files in the real .jsonl layout, and CSV files of one's own."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlzoo.data import pairs
from dlzoo.data.pairs import SNLI_CLASSES, load_pairs
from dlzoo.data.sources import Archive
from dlzoo.errors import UserError

TRAIN = [("A man plays a guitar on stage.", "A man is playing music.", "entailment"),
         ("A dog runs through the snow.", "A cat sleeps indoors.", "contradiction"),
         ("Two kids sit on a bench.", "Two kids wait for their mother.", "neutral"),
         ("A woman reads in a park.", "A woman is outside.", "-"),
         ("A boy kicks a ball.", "The boy is a footballer.", "-"),
         ("People dance at a wedding.", "Nobody is moving.", "contradiction")]
TEST = [("A chef cooks pasta.", "Someone is cooking.", "entailment"),
        ("A bird sits on a wire.", "A bird is flying.", "-"),
        ("An old man fishes.", "The man is retired.", "neutral")]


def snli_line(first: str, second: str, gold: str, number: int) -> str:
    """One line as snli_1.0_*.jsonl has it: the same fields, in the same order."""
    votes = ["neutral", "entailment", "contradiction", "neutral", "entailment"] if gold == "-" else [gold] * 5
    return json.dumps({
        "annotator_labels": votes, "captionID": f"{1000 + number}.jpg#0", "gold_label": gold,
        "pairID": f"{1000 + number}.jpg#0r1{gold[0]}", "sentence1": first,
        "sentence1_binary_parse": f"( {first} )", "sentence1_parse": f"(ROOT (S {first}))", "sentence2": second,
        "sentence2_binary_parse": f"( {second} )", "sentence2_parse": f"(ROOT (S {second}))"}, ensure_ascii=False)


def write_snli(root: Path, train: list[str] | None = None) -> Path:
    """root/snli_1.0/ as the official zip unpacks it (the dev and .txt files too); its train file's lines may be
    given as text."""
    folder = root / "snli_1.0"
    folder.mkdir(parents=True)
    for split, rows in (("train", TRAIN), ("dev", TEST), ("test", TEST)):
        lines = [snli_line(*row, number) for number, row in enumerate(rows)]
        text = "\n".join(train if split == "train" and train is not None else lines) + "\n"
        (folder / f"snli_1.0_{split}.jsonl").write_text(text, encoding="utf-8")
        (folder / f"snli_1.0_{split}.txt").write_text("gold_label\tsentence1\tsentence2\n", encoding="utf-8")
    return folder


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLZOO_DATA", raising=False)
    return tmp_path / "cache"


@pytest.mark.parametrize("given", ["parent", "snli_1.0", "a file", "DLZOO_DATA"])
def test_snli_is_read_in_its_official_splits_without_pairs_lacking_a_gold_label(tmp_path, monkeypatch, empty_cache,
                                                                                 given):
    folder = write_snli(tmp_path / "snli")
    path = {"parent": folder.parent, "snli_1.0": folder, "a file": folder / "snli_1.0_test.jsonl"}.get(given)
    if given == "DLZOO_DATA":
        monkeypatch.setenv("DLZOO_DATA", str(tmp_path))
    read = load_pairs("snli", path and str(path), 0.5, 0)
    assert read.classes == ["entailment", "contradiction", "neutral"] == list(SNLI_CLASSES)
    labelled = [row for row in TRAIN if row[2] != "-"]
    assert read.train_firsts == [first for first, _, _ in labelled]
    assert read.train_seconds == [second for _, second, _ in labelled]
    assert read.train_labels.dtype == np.int64 and read.train_labels.tolist() == [0, 1, 2, 1]
    assert read.test_firsts == ["A chef cooks pasta.", "An old man fishes."] and read.test_labels.tolist() == [0, 2]
    assert read.notes == ["2 pairs of snli_1.0_train.jsonl without a gold label ('-': the annotators did not agree) "
                          "left out", "1 pairs of snli_1.0_test.jsonl without a gold label ('-': the annotators did "
                                      "not agree) left out"]
    again = load_pairs("snli", path and str(path), 0.1, 7)  # the official split: no fraction, no seed
    assert again.train_firsts == read.train_firsts and again.test_firsts == read.test_firsts


@pytest.mark.parametrize("bad, message", [
    ('{"gold_label": "neutral", "sentence1": "A man', "line 3 is not JSON"),
    ('["neutral", "A man.", "A person."]', "line 3 is not a JSON object"),
    ('{"annotator_labels": ["neutral"], "gold_label": "neutral", "sentence1": "A man."}', "line 3 has no 'sentence2'"),
    ('{"gold_label": "maybe", "sentence1": "A man.", "sentence2": "A person."}', "line 3 has gold_label 'maybe'"),
    ('{"gold_label": "neutral", "sentence1": "A man.", "sentence2": null}', "line 3: sentence2 is null, not a text"),
])
def test_a_bad_snli_line_is_refused_naming_its_file_and_line(tmp_path, bad, message):
    good = [snli_line(*TRAIN[0], 0), ""]  # a blank line is skipped, but counted
    folder = write_snli(tmp_path, train=[*good, bad, snli_line(*TRAIN[1], 1)])
    with pytest.raises(UserError, match=f"{folder / 'snli_1.0_train.jsonl'}: {message}"):
        load_pairs("snli", str(folder), 0.2, 0)


def test_snli_files_that_are_not_utf8_or_missing_are_refused(tmp_path):
    folder = write_snli(tmp_path)
    train = folder / "snli_1.0_train.jsonl"
    first = snli_line(*TRAIN[0], 0).encode() + b"\n"
    second = snli_line("一个男人在弹吉他。", "有人在演奏。", "entailment", 1).encode("gbk")
    train.write_bytes(first + second + b"\n")
    with pytest.raises(UnicodeDecodeError) as bad:
        second.decode("utf-8")
    byte, offset = second[bad.value.start], len(first) + bad.value.start  # in the file, not in its line
    with pytest.raises(UserError, match=rf"{train} is not UTF-8 text \(byte 0x{byte:02x} at offset {offset}; GBK\?\); "
                                        rf"save it as UTF-8"):
        load_pairs("snli", str(folder), 0.2, 0)
    (folder / "snli_1.0_test.jsonl").unlink()
    with pytest.raises(UserError, match=f"snli: {folder} lacks snli_1.0_test.jsonl"):
        load_pairs("snli", str(tmp_path), 0.2, 0)


def write_csv(path: Path, header: str = "first,second,label", rows: int = 10) -> Path:
    """`rows` pairs of each of three labels, with a row lacking a cell, a repeat and a pair under two labels."""
    lines = [header] + [f"premise {label} {i},hypothesis {i},{label}" for label in ("yes", "no", "maybe")
                        for i in range(rows)]
    lines += ["premise yes 0,hypothesis 0,yes", "premise,,yes", "premise,hypothesis, ", "twice,said,yes",
              "twice,said,no"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_pairs_csv_is_split_by_class_repeatably_from_the_split_seed(tmp_path):
    path = str(write_csv(tmp_path / "pairs.csv"))
    read = load_pairs("pairs-csv", path, 0.2, 0)
    assert read.classes == ["maybe", "no", "yes"]  # sorted
    assert np.bincount(read.test_labels).tolist() == [2, 2, 2] and np.bincount(read.train_labels).tolist() == [8] * 3
    assert read.notes == ["2 rows without two sentences and a label left out",
                          "1 pairs found under more than one label left out"]
    train = set(zip(read.train_firsts, read.train_seconds, read.train_labels.tolist(), strict=True))
    test = set(zip(read.test_firsts, read.test_seconds, read.test_labels.tolist(), strict=True))
    assert len(train) == 24 and len(test) == 6 and not train & test  # the repeat kept once, in one split
    assert all(first.split()[1] == read.classes[label] for first, _, label in train | test)
    again, other = load_pairs("pairs-csv", path, 0.2, 0), load_pairs("pairs-csv", path, 0.2, 1)
    assert again.test_firsts == read.test_firsts and again.train_seconds == read.train_seconds
    assert other.test_firsts != read.test_firsts


def test_a_pairs_csv_names_its_columns(tmp_path):
    path = str(write_csv(tmp_path / "pairs.csv", header="premise,hypothesis,gold"))
    read = load_pairs("pairs-csv", path, 0.2, 0, first_column="premise", second_column="hypothesis",
                      label_column="gold")
    assert len(read.train_firsts) == 24 and read.train_firsts[0].startswith("premise ")
    with pytest.raises(UserError, match="name three different columns"):
        load_pairs("pairs-csv", path, 0.2, 0, first_column="premise", second_column="premise", label_column="gold")


@pytest.mark.parametrize("key, columns", [("data.first_column", {"first_column": "question"}),
                                          ("data.second_column", {"second_column": "answer"}),
                                          ("data.label_column", {"label_column": "class"})])
def test_a_missing_csv_column_is_refused_naming_it(tmp_path, key, columns):
    path = write_csv(tmp_path / "pairs.csv")
    missing = next(iter(columns.values()))
    with pytest.raises(UserError, match=f"{path} has no column '{missing}' \\({key}\\); its columns: first, second"):
        load_pairs("pairs-csv", str(path), 0.2, 0, **columns)


def test_bad_pairs_csv_input_is_refused(tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("first,second,label\n今天天气很好,天气好,是\n今天下雨,天气好,否\n".encode("gbk"))
    with pytest.raises(UserError, match=f"{gbk} is not UTF-8 text"):
        load_pairs("pairs-csv", str(gbk), 0.2, 0)
    with pytest.raises(UserError, match="data.source=pairs-csv needs data.path"):
        load_pairs("pairs-csv", None, 0.2, 0)
    with pytest.raises(UserError, match="cannot hold out data.test_fraction=0.2: class 'maybe' has only 1"):
        load_pairs("pairs-csv", str(write_csv(tmp_path / "few.csv", rows=1)), 0.2, 0)
    with pytest.raises(UserError, match="data.source=texts holds no sentence pairs; pair recipes read snli, pairs-csv"):
        load_pairs("texts", None, 0.2, 0)


def snli_zip(tmp_path: Path, monkeypatch, with_files: bool = True) -> Path:
    """The official zip's layout, made here and served from a file:// URL in the official one's place."""
    folder = write_snli(tmp_path / "made")
    archive = tmp_path / "served" / "snli_1.0.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()) if with_files else []:
            zipped.write(path, f"snli_1.0/{path.name}")
        zipped.writestr("__MACOSX/snli_1.0/._snli_1.0_dev.txt", b"")  # the real archive holds these too
        zipped.writestr("snli_1.0/../../evil.txt", b"out")  # zipfile unpacks it inside, as evil.txt
    served = Archive(archive.as_uri(), hashlib.md5(archive.read_bytes()).hexdigest(), "snli_1.0")
    monkeypatch.setattr(pairs, "SNLI", dataclasses.replace(pairs.SNLI, archive=served))
    return archive


def test_snli_is_downloaded_checked_and_unpacked_whole_into_the_cache(tmp_path, monkeypatch, empty_cache):
    archive = snli_zip(tmp_path, monkeypatch)
    read = load_pairs("snli", None, 0.2, 0)
    assert read.test_labels.tolist() == [0, 2] and len(read.train_firsts) == 4
    assert [p.name for p in empty_cache.iterdir()] == ["snli"]  # the zip removed, no hidden folder left
    assert pairs.SNLI.where() == str(empty_cache / "snli" / "snli_1.0")
    assert not (tmp_path / "evil.txt").exists() and not (empty_cache / "evil.txt").exists()
    archive.unlink()
    assert load_pairs("snli", None, 0.2, 0).train_firsts == read.train_firsts  # found in the cache, not downloaded


def test_a_bad_snli_download_leaves_nothing_to_be_taken_for_data(tmp_path, monkeypatch, empty_cache):
    snli_zip(tmp_path, monkeypatch)
    wrong = dataclasses.replace(pairs.SNLI.archive, checksum="0" * 32)
    monkeypatch.setattr(pairs, "SNLI", dataclasses.replace(pairs.SNLI, archive=wrong))
    with pytest.raises(UserError, match="snli: could not download .*checksum mismatch.*put snli_1.0_train.jsonl"):
        load_pairs("snli", None, 0.2, 0)
    assert not empty_cache.exists()
    snli_zip(tmp_path / "empty", monkeypatch, with_files=False)
    with pytest.raises(UserError, match="snli_1.0.zip holds no snli_1.0/ with snli_1.0_train.jsonl, snli_1.0_test"):
        load_pairs("snli", None, 0.2, 0)
    assert [p.name for p in empty_cache.iterdir()] == ["snli_1.0.zip"]  # kept, checked, for a retry
    assert pairs.SNLI.where() is None
