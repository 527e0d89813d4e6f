"""Files written whole (dlzoo.files): the old file or the new one, never half of one, and no leftovers."""

import pytest

from dlzoo import files
from dlzoo.files import all_written_whole, stale_temporaries, written_whole


def test_a_file_is_replaced_only_when_its_writing_succeeds(tmp_path):
    out = tmp_path / "table.csv"
    out.write_text("old")
    with written_whole(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".table.") and tmp.suffix == ".csv"
        tmp.write_text("new")
        assert out.read_text() == "old"  # nothing changes before the block ends
    assert out.read_text() == "new"
    with pytest.raises(RuntimeError), written_whole(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_name_near_the_file_system_limit_is_written_too(tmp_path):
    out = tmp_path / ("x" * 245 + ".png")
    with written_whole(out) as tmp:
        tmp.write_bytes(b"picture")
    assert out.read_bytes() == b"picture"


def test_files_that_belong_together_are_written_all_or_none(tmp_path):
    model, sidecar = tmp_path / "model.pt2", tmp_path / "model.pt2.json"
    with pytest.raises(KeyboardInterrupt), all_written_whole([model, sidecar]) as (model_tmp, sidecar_tmp):
        model_tmp.write_text("weights")
        raise KeyboardInterrupt  # stopped before the sidecar: neither appears
    assert list(tmp_path.iterdir()) == []
    with all_written_whole([model, sidecar]) as (model_tmp, sidecar_tmp):
        model_tmp.write_text("weights")
        sidecar_tmp.write_text("{}")
    assert model.read_text() == "weights" and sidecar.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2", "model.pt2.json"]


def test_a_failed_write_removes_the_folders_it_made_and_no_others(tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    out = kept / "new" / "deeper" / "table.csv"
    with pytest.raises(OSError), written_whole(out) as tmp:
        assert tmp.parent == out.parent  # made for it
        raise OSError("disk full")
    assert [p.name for p in tmp_path.rglob("*")] == ["kept"]
    with pytest.raises(OSError), written_whole(out):
        (kept / "new" / "someone-elses.txt").write_text("mine")  # filled meanwhile: it stays, with its parents
        raise OSError("disk full")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "kept", "kept/new", "kept/new/someone-elses.txt"]
    with written_whole(out) as tmp:
        tmp.write_text("table")
    assert out.read_text() == "table"


def test_an_existing_file_is_never_taken_as_a_temporary_name(tmp_path, monkeypatch):
    tokens = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda _: next(tokens))
    out = tmp_path / "prices.csv"
    someone_elses = files.temporary_beside(out)  # the first name drawn belongs to another file
    someone_elses.write_text("keep me")
    with pytest.raises(OSError), written_whole(out) as tmp:
        assert tmp.name == ".prices.bbbb.tmp.csv"
        raise OSError("disk full")
    assert someone_elses.read_text() == "keep me" and not out.exists()
    assert stale_temporaries(out) == [someone_elses]  # what a killed writer leaves is found again


def test_a_name_that_is_not_text_is_refused_in_a_line(cli, tmp_path, digits_run):
    """Bytes that are not UTF-8 in an output name ($'\\xff' in a shell) were a UnicodeEncodeError traceback, after
    the work; names in other scripts are fine."""
    import os

    from conftest import assert_user_error

    odd = os.fsdecode(b"\xff")
    for args in (("export", digits_run, "--out", tmp_path / f"{odd}.pt2"),
                 ("data", "show", "mnist5k", "--out", tmp_path / f"{odd}.png"),
                 ("train", "digits", "--out", tmp_path / odd)):
        assert_user_error(cli(*args), "is not valid UTF-8 text")
    assert not any(tmp_path.iterdir())
    assert cli("export", digits_run, "--out", tmp_path / "modèle.pt2").code == 0


def test_json_text_writes_numbers_that_are_not_finite_as_null():
    import numpy as np

    data = {"loss": float("nan"), "by_epoch": [0.5, float("inf"), np.float64("-inf")], "pair": (1, 2.5), "n": None}
    assert files.json_text(data) == '{"loss": null, "by_epoch": [0.5, null, null], "pair": [1, 2.5], "n": null}'


def test_json_text_escapes_the_bytes_of_a_name_that_is_not_utf8():
    """Printed as they were, through stdout's surrogateescape, they made output that no JSON reader takes."""
    import json
    import os

    name = os.fsdecode(b"caf\xe9.png")
    for ensure_ascii in (True, False):
        text = files.json_text({"path": name, "label": "Café"}, ensure_ascii=ensure_ascii)
        assert "\\udce9" in text and text.encode("utf-8")  # strict UTF-8: no lone surrogate left
        assert json.loads(text)["path"] == name and os.fsencode(json.loads(text)["path"]) == b"caf\xe9.png"
    assert "Café" in files.json_text({"label": "Café"}, ensure_ascii=False)  # other text stays as it is
