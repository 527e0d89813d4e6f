"""The book-faithful classic recipes: their settings, a tiny real run of each at its book resolution, and a short
real run showing what batch norm does for LeNet."""

import json

import pytest
import torch
import yaml

from conftest import ROOT, assert_user_error
from dlzoo.bench.classic import fashion_subset
from dlzoo.recipes import get_recipe
from dlzoo.recipes.classic import CLASSICS

BOOK = {  # recipe: (resolution, batch size, lr, printed test accuracy), from the book's chapter 7/8 code
    "lenet": (28, 256, 0.9, 0.779), "lenet-bn": (28, 256, 1.0, None), "alexnet": (224, 128, 0.01, 0.883),
    "vgg11-small": (224, 128, 0.05, 0.920), "nin": (224, 128, 0.1, 0.790), "googlenet": (96, 128, 0.1, 0.886),
    "resnet18": (96, 256, 0.05, 0.893), "densenet": (96, 256, 0.1, 0.885),
}


@pytest.fixture(scope="module")
def tiny_fashion(tmp_path_factory):
    """The first 4 training and 4 test images of the real Fashion-MNIST, as IDX files."""
    folder = tmp_path_factory.mktemp("fashion-tiny")
    fashion_subset(folder, train=4, test=4)
    return folder


@pytest.mark.parametrize("setting", CLASSICS, ids=lambda s: s.recipe)
def test_recipes_keep_the_books_settings(setting):
    config = get_recipe(setting.recipe).config()
    resolution, batch_size, lr, accuracy = BOOK[setting.recipe]
    assert (config.data.resolution, config.data.batch_size, config.optim.lr) == (resolution, batch_size, lr)
    assert setting.book_accuracy == accuracy
    assert config.trainer.epochs == 10 and config.data.source == "fashion-mnist"
    assert config.optim.name == "sgd" and config.optim.momentum == 0 and config.optim.weight_decay == 0
    assert config.optim.schedule == "constant" and not config.data.augment.enabled
    assert config.model.name == setting.model and config.label_smoothing == 0
    upscaled = resolution > 28  # bf16 where native and channels-last: how the work is done, not what is computed
    assert config.trainer.precision == ("auto-bf16" if upscaled else "auto")
    assert config.model.channels_last == upscaled


@pytest.mark.parametrize("setting", CLASSICS, ids=lambda s: s.recipe)
def test_each_recipe_trains_at_its_book_resolution(cli, tiny_fashion, tmp_path, setting):
    run_dir = tmp_path / "run"
    result = cli("train", setting.recipe, f"data.path={tiny_fashion}", "data.batch_size=2", "trainer.epochs=1",
                 "trainer.device=cpu", "--out", run_dir)
    assert result.code == 0, result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["epochs"] == 1
    assert 0 <= summary["metrics"]["test"]["accuracy"] <= 1
    assert summary["metrics"]["train"]["loss"] > 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["resolution"] == BOOK[setting.recipe][0]


def test_googlenet_trains_with_auxiliary_heads(cli, tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("train", "googlenet", f"data.path={tiny_fashion}", "data.batch_size=4", "trainer.epochs=1",
                 "trainer.device=cpu", "model.args.aux_logits=true", "data.resolution=32", "--out", run_dir)
    assert result.code == 0, result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["parameters"]["net"] > 5_977_530  # the two side heads are part of the trained model


def test_batch_norm_gets_lenet_out_of_its_plateau(cli, tmp_path):
    """Same data, steps and book learning rates: sigmoid LeNet is still at chance, LeNet with batch norm is not."""
    data = tmp_path / "fashion"
    fashion_subset(data, train=2048, test=500)
    accuracy = {}
    for recipe in ("lenet", "lenet-bn"):
        run_dir = tmp_path / recipe
        result = cli("train", recipe, f"data.path={data}", "data.batch_size=64", "trainer.epochs=3",
                     "trainer.device=cpu", "--out", run_dir)
        assert result.code == 0, result.err
        accuracy[recipe] = json.loads((run_dir / "summary.json").read_text())["metrics"]["test"]["accuracy"]
    assert accuracy["lenet-bn"] > 0.5, accuracy
    assert accuracy["lenet-bn"] > accuracy["lenet"] + 0.2, accuracy


def test_batch_norm_is_never_fed_a_batch_of_one(cli, tiny_fashion, tmp_path):
    # Four pictures in batches of three: the last batch, of one, is left out (BatchNorm1d cannot train on it).
    result = cli("train", "lenet-bn", f"data.path={tiny_fashion}", "data.batch_size=3", "trainer.epochs=1",
                 "trainer.device=cpu", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 1
    assert_user_error(cli("train", "lenet-bn", f"data.path={tiny_fashion}", "data.batch_size=1", "trainer.epochs=1",
                          "trainer.device=cpu", "--out", tmp_path / "one"),
                      "(data.batch_size=1, or data.limit) is too small")
    assert not (tmp_path / "one").exists()


def test_the_python_block_reading_nin_scores_in_the_docs_runs(cli, tiny_fashion, tmp_path, monkeypatch, capsys):
    """docs/classic.md reads the class scores of `runs/nin` from Python; its call to load_for_evaluation, which
    took the splits to check as a required argument, failed with a TypeError."""
    from test_basics_doc import python_blocks

    doc = ROOT / "docs" / "classic.md"
    (line, code), = [block for block in python_blocks(doc.read_text(encoding="utf-8")) if "runs/nin" in block[1]]
    monkeypatch.chdir(tmp_path)
    # A LeNet run stands in for the NiN one: the block reads any image classifier's scores, LeNet's in a second.
    threads = torch.get_num_threads()
    result = cli("train", "lenet", f"data.path={tiny_fashion}", "data.batch_size=2", "trainer.epochs=1",
                 "trainer.device=cpu", f"trainer.threads={threads + 1}", "trainer.deterministic=true",
                 "--out", "runs/nin")
    assert result.code == 0, result.err
    assert not torch.are_deterministic_algorithms_enabled()
    exec(compile("\n" * (line - 1) + code, str(doc), "exec"), {"__name__": "classic"})
    assert capsys.readouterr().out.startswith("tensor([")  # the share of test images scored 0, per class
    # The block leaves a reader's session as it found it, not with the run's one thread and determinism.
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
