"""`trainer.keep_best=SPLIT.METRIC`: the checkpoint of the epoch that scored best on a held-out metric is kept and
named, whichever epoch came last, across a resume too."""

import json
import math
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset
from dlzoo.engine import checkpoint
from dlzoo.engine.best import BestEpoch
from dlzoo.engine.trainer import Trainer

CPU = ["trainer.device=cpu", "trainer.threads=1"]
# The validation accuracy the tests make each epoch (0-based) score: the best is the second of three.
SCRIPTED = {0: 0.5, 1: 0.9, 2: 0.7}


@pytest.fixture(scope="module")
def fashion_small(tmp_path_factory):
    """The first 1,000 training and 200 test images of the real Fashion-MNIST, as IDX files."""
    folder = tmp_path_factory.mktemp("fashion-small")
    fashion_subset(folder, train=1000, test=200)
    return folder


@pytest.fixture
def scripted_val_accuracy(monkeypatch):
    """Make the validation accuracy the trainer sees follow SCRIPTED, by the epoch being evaluated."""
    evaluate = Trainer.evaluate

    def scripted(self, split):
        metrics = evaluate(self, split)
        return {**metrics, "accuracy": SCRIPTED[self.epoch]} if split == "val" else metrics

    monkeypatch.setattr(Trainer, "evaluate", scripted)


def test_the_best_is_the_highest_or_lowest_and_a_tie_or_nan_keeps_the_earlier():
    best = BestEpoch("val", "accuracy", "max")
    assert best.consider({"val": {"accuracy": 0.5}}, 1)
    assert not best.consider({}, 2)  # an epoch not evaluated
    assert not best.consider({"val": {"accuracy": 0.5}}, 3)  # a tie
    assert not best.consider({"val": {"accuracy": math.nan}}, 4)
    assert best.consider({"val": {"accuracy": 0.6}}, 5) and (best.epoch, best.value) == (5, 0.6)
    lowest = BestEpoch("cv", "log_rmse", "min")
    assert not lowest.consider({"cv": {"log_rmse": math.nan}}, 1)
    assert lowest.summary(None) == {"split": "cv", "metric": "log_rmse", "epoch": None, "value": None,
                                    "metrics": None, "checkpoint": None}  # asked for, and none chosen
    assert lowest.consider({"cv": {"log_rmse": 0.2}}, 2) and lowest.consider({"cv": {"log_rmse": 0.1}}, 3)
    assert not lowest.consider({"cv": {"log_rmse": 0.15}}, 4)
    assert lowest.summary(None) == {"split": "cv", "metric": "log_rmse", "epoch": 3, "value": 0.1,
                                "metrics": {"cv": {"log_rmse": 0.1}}, "checkpoint": "checkpoints/epoch-0003"}
    other = BestEpoch("val", "loss", "min")
    other.load_state_dict(best.state_dict())  # the record of another metric is not this one's
    assert other.epoch is None


def test_rotation_keeps_the_newest_and_the_best(tmp_path):
    model = {"net": nn.Linear(2, 2)}
    kept = []
    for epoch, best in ((1, 1), (2, 1), (3, 1), (4, 4)):
        checkpoint.save(tmp_path, epoch, model, {}, {}, keep=1, also_keep=best)
        kept.append([found.name for found in checkpoint.list_checkpoints(tmp_path)])
    assert kept == [["epoch-0001"], ["epoch-0001", "epoch-0002"], ["epoch-0001", "epoch-0003"], ["epoch-0004"]]


def test_the_best_epoch_is_kept_named_and_usable(cli, fashion_small, tmp_path, scripted_val_accuracy):
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", f"data.path={fashion_small}", "data.val_fraction=0.1", "trainer.epochs=3",
                 "trainer.keep_best=val.accuracy", "trainer.keep_checkpoints=1", "trainer.checkpoint_every=3",
                 "data.batch_size=64", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    # Epoch 1 and 2 were each the best when scored (saved though checkpoint_every is 3); epoch 1 went as 2 beat it.
    assert [found.name for found in checkpoint.list_checkpoints(run_dir)] == ["epoch-0002", "epoch-0003"]
    summary = json.loads((run_dir / "summary.json").read_text())
    logged = {(entry["epoch"], entry["split"]): entry["metrics"]
              for entry in map(json.loads, (run_dir / "metrics.jsonl").open())}
    assert summary["best"] == {"split": "val", "metric": "accuracy", "epoch": 2, "value": 0.9,
                               "metrics": {"val": logged[2, "val"], "test": logged[2, "test"]},
                               "checkpoint": "checkpoints/epoch-0002"}
    assert (f"best val accuracy: 0.9000 at epoch 2 (test accuracy {logged[2, 'test']['accuracy']:.4f}), kept as "
            f"{run_dir / 'checkpoints' / 'epoch-0002'}") in result.out
    evaluated = cli("eval", run_dir / summary["best"]["checkpoint"], "--split", "test", "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["metrics"]["test"] == pytest.approx(logged[2, "test"])

    # Killed after epoch 2 (its checkpoint the newest): the resumed run remembers that epoch 2 is the best, so epoch
    # 3, worse, does not take its place (without the record it would, and epoch 2 would be removed).
    shutil.rmtree(run_dir / "checkpoints" / "epoch-0003")
    (run_dir / "summary.json").unlink()
    resumed = cli("train", "--resume", run_dir)
    assert resumed.code == 0, resumed.err
    assert [found.name for found in checkpoint.list_checkpoints(run_dir)] == ["epoch-0002", "epoch-0003"]
    assert json.loads((run_dir / "summary.json").read_text())["best"] == summary["best"]

    # The best checkpoint removed by hand before a resume: still the best score, but not named as kept.
    shutil.rmtree(run_dir / "checkpoints" / "epoch-0002")
    (run_dir / "summary.json").unlink()
    resumed = cli("train", "--resume", run_dir)
    assert resumed.code == 0, resumed.err
    assert "(checkpoints/epoch-0002 was removed); a later epoch is kept as the best only if it beats it" in resumed.out
    assert "at epoch 2 (test accuracy" in resumed.out
    assert "its checkpoint was removed before the run resumed" in resumed.out
    assert json.loads((run_dir / "summary.json").read_text())["best"] == {**summary["best"], "checkpoint": None}


def test_a_run_whose_every_evaluation_is_nan_says_no_epoch_was_chosen(cli, fashion_small, tmp_path,
                                                                      scripted_val_accuracy, monkeypatch):
    monkeypatch.setitem(SCRIPTED, 0, math.nan)  # a diverged run
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", f"data.path={fashion_small}", "data.val_fraction=0.1", "trainer.epochs=1",
                 "trainer.keep_best=val.accuracy", "data.batch_size=64", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    assert "best val accuracy: none, no evaluated epoch scored a finite value (no checkpoint kept for it)" in result.out
    assert json.loads((run_dir / "summary.json").read_text())["best"]["epoch"] is None


def test_a_resume_from_a_checkpoint_older_than_keep_best_says_which_epochs_it_chooses_among(cli, fashion_small,
                                                                                              tmp_path):
    """A run trained by a dlzoo without keep_best, given the key in config.yaml (a key its checkpoint does not know
    is not a change): its first epochs were never scored for it, and the resume says so."""
    run_dir = tmp_path / "run"
    assert cli("train", "fashion", f"data.path={fashion_small}", "data.val_fraction=0.1", "trainer.epochs=2",
               "data.batch_size=64", *CPU, "--out", run_dir).code == 0
    shutil.rmtree(run_dir / "checkpoints" / "epoch-0002")
    (run_dir / "summary.json").unlink()
    first = run_dir / "checkpoints" / "epoch-0001"
    metadata = checkpoint.read_metadata(first / checkpoint.WEIGHTS)
    del metadata["config"]["trainer"]["keep_best"]
    save_file(load_file(first / checkpoint.WEIGHTS), first / checkpoint.WEIGHTS, {"dlzoo": json.dumps(metadata)})
    state = torch.load(first / checkpoint.STATE, weights_only=True)
    del state["best"]
    torch.save(state, first / checkpoint.STATE)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("keep_best: null", "keep_best: val.accuracy"))
    resumed = cli("train", "--resume", run_dir)
    assert resumed.code == 0, resumed.err
    assert "note: epoch-0001 predates trainer.keep_best, so the best epoch is chosen from epoch 2 on" in resumed.out
    assert json.loads((run_dir / "summary.json").read_text())["best"]["epoch"] == 2


def test_keep_best_names_a_split_and_metric_the_recipe_evaluates(cli):
    assert_user_error(cli("show", "fashion", "trainer.keep_best=val.accuracy"),
                      "trainer.keep_best must name a split and metric that recipe 'fashion' evaluates, one of: "
                      "test.accuracy, test.loss; got 'val.accuracy' (a val split is held out by data.val_fraction")
    result = cli("show", "housing", "trainer.keep_best=cv.rmse")
    assert_user_error(result, "one of: cv.log_rmse, cv.out_of_fold")
    assert "val_fraction" not in result.err  # the hint is for a val split only
    assert_user_error(cli("show", "cgan-digits", "trainer.keep_best=test.frechet"),
                      "recipe 'cgan-digits' evaluates no metric to choose an epoch by")
    for fine in (["data.val_fraction=0.1", "trainer.keep_best=val.loss"], ["trainer.keep_best=test.accuracy"]):
        assert cli("show", "fashion", *fine).code == 0
    assert cli("show", "vae-digits", "trainer.keep_best=test.nll_iw").code == 0
    assert cli("show", "digit-lines", "trainer.keep_best=test.exact").code == 0



def test_every_rank_takes_rank_0s_verdict():
    """Saving is a collective: a rank whose own score (a judge's, computed on its own device) differs in its last
    bits from rank 0's must still decide as rank 0 did, or the ranks would wait on each other forever."""
    rank0 = BestEpoch("test", "frechet", "min")
    assert rank0.consider({"test": {"frechet": 2.0}}, 1) and not rank0.consider({"test": {"frechet": 2.0}}, 2)
    rank1 = Trainer.__new__(Trainer)  # rank 1, which scored epoch 2 a hair lower than rank 0 did
    rank1.best = BestEpoch("test", "frechet", "min")
    assert rank1.best.consider({"test": {"frechet": 2.0}}, 1)
    rank1.runtime = SimpleNamespace(distributed=True, broadcast_object=lambda _: (False, rank0.state_dict()))
    assert rank1._improved({"test": {"frechet": 1.9999999}}, 2) is False
    assert rank1.best.state_dict() == rank0.state_dict()
