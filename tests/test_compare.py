"""`dlzoo compare`: the table and plot from real runs, run discovery (folders, globs, unfinished runs), errors."""

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_run):
    """A folder with two finished runs of different recipes (a tiny digits run and a tiny LeNet-BN run)."""
    from dlzoo.cli import main

    folder = tmp_path_factory.mktemp("compare") / "runs"
    data = fashion_subset(folder.parent / "fashion", train=64, test=32).location
    shutil.copytree(digits_run, folder / "digits")
    assert main(["train", "lenet-bn", f"data.path={data}", "data.batch_size=32", "trainer.epochs=1",
                 "trainer.device=cpu", "--out", str(folder / "lenet-bn")]) == 0
    return folder


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_table_and_plot_from_real_runs(cli, runs, tmp_path):
    out = tmp_path / "report" / "classic.md"
    result = cli("compare", runs / "digits", runs / "lenet-bn", "--out", out)
    assert result.code == 0, result.err
    header, rule, *rows = table_rows(result.out)
    assert header[:8] == ["run", "recipe", "model", "params", "resolution", "epochs", "data", "test accuracy"]
    assert header[8:] == ["train s", "samples/s", "device"] and len(rows) == 2
    by_run = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    for name, model in (("digits", "digits-net"), ("lenet-bn", "lenet-bn")):
        expected = summary(runs / name)
        row = by_run[name]
        assert row["recipe"] == name and row["model"] == model and row["epochs"] == str(expected["epochs"])
        assert row["test accuracy"] == f"{expected['metrics']['test']['accuracy']:.4f}"
        assert row["train s"] == f"{expected['train_seconds']:.1f}"
        assert row["resolution"] == "28 px" and expected["device_name"] in row["device"]
        assert expected["precision"] == "fp32" and row["device"].endswith(", fp32")  # no autocast on this CPU
    own_copy = Path(yaml.safe_load((runs / "lenet-bn" / "config.yaml").read_text())["data"]["path"]).name
    assert by_run["lenet-bn"]["params"] == "44.9k" and by_run["lenet-bn"]["data"] == f"fashion-mnist {own_copy}"
    assert by_run["digits"]["data"] == "mnist5k (first 600)"
    accuracies = [float(row[7]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)  # best first by default
    assert out.read_text() == result.out
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert not list(out.parent.glob("*.tmp*"))


def test_folders_globs_and_unfinished_runs(cli, runs, tmp_path, monkeypatch):
    unfinished = runs.parent / "more" / "killed"
    unfinished.mkdir(parents=True)
    shutil.copy(runs / "digits" / "config.yaml", unfinished / "config.yaml")
    shutil.copytree(runs / "lenet-bn", runs.parent / "more" / "lenet-bn-again")
    result = cli("compare", runs, str(runs.parent / "more" / "*"), "--sort", "time")
    assert result.code == 0, result.err
    _, _, *rows = table_rows(result.out)
    assert sorted(row[0] for row in rows) == ["digits", "lenet-bn", "lenet-bn-again"]
    seconds = [float(row[8]) for row in rows]
    assert seconds == sorted(seconds)
    assert "skipping" in result.err and "killed" in result.err
    assert_user_error(cli("compare", unfinished), "has not finished", "--resume")
    (runs.parent / "more" / "lenet-bn-again" / "config.yaml").write_text("model: [")  # broken among many
    result = cli("compare", str(runs.parent / "more" / "*"), runs / "digits")
    assert result.code == 0, result.err
    assert "skipping" in result.err and "lenet-bn-again" in result.err and "not valid YAML" in result.err
    assert sorted(row[0] for row in table_rows(result.out)[2:]) == ["digits"]
    monkeypatch.chdir(runs.parent)  # both notes name a run as the user wrote it, not resolved
    result = cli("compare", "more/*")
    assert "skipping more/killed: unfinished" in result.err and "skipping more/lenet-bn-again: " in result.err


def test_a_folder_where_the_summary_goes_is_named_not_taken_for_an_unfinished_run(cli, runs, tmp_path):
    """It said "has no summary.json: the run has not finished (continue it with dlzoo train --resume ...)",
    advice that resuming a finished run cannot follow."""
    odd = tmp_path / "odd"
    shutil.copytree(runs / "digits", odd)
    (odd / "summary.json").unlink()
    (odd / "summary.json").mkdir()
    assert_user_error(cli("compare", odd), f"{odd / 'summary.json'} is a folder; a finished run writes its summary")
    result = cli("compare", tmp_path, runs / "digits")  # found in a folder: skipped, with the same reason
    assert result.code == 0 and f"skipping {odd}: {odd / 'summary.json'} is a folder" in result.err


def strict_json(text: str):
    """`text` read as JSON by a strict parser's rules: Python's NaN and Infinity are not JSON."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


def test_a_diverged_run_writes_strict_json_and_still_compares(cli, runs, tmp_path, monkeypatch):
    """NaN and inf were written as bare NaN and Infinity, which JavaScript's JSON.parse and jq refuse: null now,
    read back as NaN by dlzoo (compare, the benchmarks, a resumed run's summary)."""
    from dlzoo.engine.trainer import Trainer

    evaluate, train_epoch = Trainer.evaluate, Trainer.train_epoch
    monkeypatch.setattr(Trainer, "evaluate",
                        lambda self, split: {**evaluate(self, split), "accuracy": math.nan, "loss": math.inf})

    def diverged(self, loader, epoch):
        result = train_epoch(self, loader, epoch)
        result.metrics["loss"] = math.nan
        return result

    monkeypatch.setattr(Trainer, "train_epoch", diverged)
    run = tmp_path / "diverged"
    tiny = ["data.limit=64", "data.batch_size=32", "trainer.epochs=1", "trainer.device=cpu", "trainer.threads=1"]
    assert cli("train", "digits", *tiny, "--out", run).code == 0
    written = strict_json((run / "summary.json").read_text())
    assert written["metrics"]["test"] == {"loss": None, "accuracy": None}
    assert written["metrics"]["train"]["loss"] is None
    entries = [strict_json(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [entry["metrics"]["loss"] for entry in entries] == [None, None]
    (run / "summary.json").unlink()  # killed before its summary: the resume writes it from metrics.jsonl
    assert cli("train", "--resume", run).code == 0
    assert strict_json((run / "summary.json").read_text())["metrics"]["train"]["loss"] is None
    assert all(strict_json(line) for line in (run / "metrics.jsonl").read_text().splitlines())

    result = cli("compare", run, runs / "digits", "--out", tmp_path / "table.md")
    assert result.code == 0, result.err
    _, _, *rows = table_rows(result.out)
    scored = summary(runs / "digits")["metrics"]["test"]["accuracy"]
    assert [(row[0], row[7]) for row in rows] == [("digits", f"{scored:.4f}"), ("diverged", "nan")]  # NaN below


def test_user_errors_write_nothing(cli, runs, tmp_path):
    out = tmp_path / "table.md"
    assert_user_error(cli("compare", tmp_path / "nowhere", "--out", out), "run directory not found")
    assert_user_error(cli("compare", str(tmp_path / "nothing-*"), "--out", out), "no dlzoo run directories")
    assert_user_error(cli("compare", runs / "digits", "--out", tmp_path / "table.png"), "--plot")
    assert_user_error(cli("compare", runs / "digits", "--plot", tmp_path / "plot.jpg"), "PNG")
    broken = tmp_path / "broken"
    shutil.copytree(runs / "digits", broken)
    (broken / "summary.json").write_text("{not json")
    assert_user_error(cli("compare", runs / "digits", broken, "--out", out), "summary.json")
    (broken / "summary.json").write_text(json.dumps({"recipe": "digits", "metrics": {}}))
    assert_user_error(cli("compare", broken, "--out", out), "lacks what a comparison needs")
    assert not out.exists() and not out.with_suffix(".png").exists()
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    (tmp_path / "folder").mkdir()
    assert_user_error(cli("compare", runs / "digits", "--out", tmp_path / "folder"), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("folder")) == ["folder"]
    failed = cli("compare", runs / "digits", "--out", tmp_path / "notes.txt" / "table.md")
    assert failed.code == 2
    assert failed.out == ""  # no table printed above the error
    assert "notes.txt is a file, not a folder" in failed.err
    run_files = {path: path.read_bytes() for path in (runs / "digits").rglob("*") if path.is_file()}
    for option, name in (("--out", "summary.json"), ("--plot", "curves.png"), ("--out", "metrics.jsonl")):
        assert_user_error(cli("compare", runs / "digits", option, runs / "digits" / name), "inside the run")
    around = runs / "digits" / ".." / "digits" / "summary.json"  # the same file by another path
    assert_user_error(cli("compare", runs / "digits", "--out", around), "inside the run")
    assert {path: path.read_bytes() for path in (runs / "digits").rglob("*") if path.is_file()} == run_files


def test_labels_of_runs_that_score_alike_do_not_cover_each_other():
    """Runs close in accuracy and time (ResNet-18 and VGG-11/4 in the README's plot) printed their names over each
    other: each label now takes the first place beside its point that overlaps no point or label placed."""
    from dlzoo.commands.compare import _label_points
    from dlzoo.files import new_figure

    figure = new_figure(figsize=(7, 4.5))
    axis = figure.subplots()
    points = [("resnet18", 6756.0, 0.923), ("vgg11-small", 9230.0, 0.917), ("alexnet", 9909.0, 0.884),
              ("densenet", 4458.0, 0.912), ("nin", 9512.0, 0.661)]
    axis.scatter([x for _, x, _ in points], [y for *_, y in points])
    axis.set_xscale("log")
    _label_points(axis, points)
    renderer = figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in axis.texts]
    assert sorted(text.get_text() for text in axis.texts) == sorted(name for name, *_ in points)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
