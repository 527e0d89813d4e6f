"""The fast Fashion-MNIST recipes on small subsets of the real data set: the model's shape contract, a short
`fashion` run that learns and predicts from its checkpoint, `fashion-speedrun` (EMA) on the CPU with an exact
resume, and the augmentation gallery with its user errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset
from dlzoo.errors import UserError
from dlzoo.models import create
from dlzoo.recipes import get_recipe, list_recipes
from dlzoo.tasks.image_classification import ImageClassification
from dlzoo.vision.gallery import gallery

CPU = ["trainer.device=cpu", "trainer.threads=1"]


@pytest.fixture(scope="module")
def fashion_small(tmp_path_factory):
    """The first 4,000 training and 1,000 test images of the real Fashion-MNIST, as IDX files."""
    folder = tmp_path_factory.mktemp("fashion-small")
    return folder, fashion_subset(folder, train=4000, test=1000)


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, fashion_small):
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "fashion"
    assert main(["train", "fashion", f"data.path={fashion_small[0]}", "data.batch_size=64", "trainer.epochs=2", *CPU,
                 "--out", str(run_dir)]) == 0
    return run_dir


def test_fashion_net_ends_in_its_classifier():
    model = create("fashion-net", num_classes=10, in_channels=1).eval()
    assert isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear)
    images = torch.rand(5, 1, 28, 28)
    features = model[:-1](images)  # the penultimate features other recipes score generated images with
    assert features.shape == (5, model[-1].in_features)
    assert torch.allclose(model[-1](features), model(images))
    assert create("fashion-net", width=8, depth=2)(images).shape == (5, 10)
    with pytest.raises(UserError, match="width must be >= 1"):
        create("fashion-net", width=0)


def test_recipes_are_configured_for_their_machines():
    fashion, speedrun = get_recipe("fashion").config(), get_recipe("fashion-speedrun").config()
    assert fashion.data.source == speedrun.data.source == "fashion-mnist"
    assert fashion.data.resolution == 28 and fashion.tta_flip and fashion.model.channels_last
    # bf16 autocast on a GPU, and on a CPU with native bf16 (AVX512-BF16, AMX)
    assert fashion.trainer.precision == speedrun.trainer.precision == "auto-bf16"
    assert speedrun.tta_flip and speedrun.data.augment.pad > 0 and speedrun.model.args["width"] == 64
    # shifted test views help a net trained on shifted images (speedrun) and hurt one that was not (fashion)
    assert speedrun.tta_shift == 1 and fashion.tta_shift == 0 and not fashion.data.augment.pad


def test_test_time_views_average_mirrors_and_diagonal_shifts(fashion_run):
    from dlzoo.data.augment import translate
    from dlzoo.runs import load_for_evaluation, open_run

    task, _ = load_for_evaluation(open_run(fashion_run), ["test"], "cpu")
    net, images = task.scoring_net().eval(), task.test_x[:8]
    with torch.no_grad():
        assert task.config.tta_flip and len(task.test_views(images)) == 2
        flip_only = task.logits(images)
        assert torch.allclose(flip_only, (net(images) + net(images.flip(-1))) / 2, atol=1e-5)
        task.config.tta_shift = 2
        views = [images, translate(images, -2, -2), translate(images, 2, 2)]
        views += [view.flip(-1) for view in views]
        expected = sum(net(view) for view in views) / 6
        assert torch.allclose(task.logits(images), expected, atol=1e-5)
        assert not torch.allclose(task.logits(images), flip_only, atol=1e-3)


def test_tta_shift_is_checked(cli, tmp_path):
    result = cli("train", "fashion", "tta_shift=-1", "trainer.device=cpu", "--out", tmp_path / "run")
    assert_user_error(result, "tta_shift must be >= 0")
    assert not (tmp_path / "run").exists()


def test_a_file_as_data_path_must_be_one_of_the_data_sets_files(cli, tmp_path):
    """A CSV file as data.path was taken as its folder, and the folder said to lack the four IDX files."""
    from dlzoo.data.images import FASHION_MNIST

    table = tmp_path / "some.csv"
    table.write_text("a,b\n1,2\n")
    result = cli("train", "fashion", f"data.path={table}", *CPU, "--out", tmp_path / "run")
    assert_user_error(result, f"fashion-mnist: data.path={table} is a file, not one of train-images-idx3-ubyte.gz, ",
                      "give the folder that holds them")
    assert not (tmp_path / "run").exists()
    if FASHION_MNIST.where():  # one of its files still names the folder that holds them all
        folder = Path(FASHION_MNIST.where())
        assert FASHION_MNIST.locate(str(folder / "t10k-labels-idx1-ubyte.gz"), download=False) == folder


def test_eval_takes_other_test_time_settings_only(cli, fashion_run):
    def accuracy(*settings):
        result = cli("eval", fashion_run, *settings, "--json")
        assert result.code == 0, result.err
        return json.loads(result.out)["metrics"]["test"]

    as_trained = json.loads((fashion_run / "summary.json").read_text())["metrics"]["test"]
    assert accuracy("tta_flip=true", "tta_shift=0") == pytest.approx(as_trained)
    assert accuracy("trainer.threads=2") == pytest.approx(as_trained, abs=1e-4)  # threads: another order of sums
    assert accuracy("tta_shift=1", "data.eval_batch_size=100")["loss"] != pytest.approx(as_trained["loss"])
    assert_user_error(cli("eval", fashion_run, "model.args.width=8"), "'model.args.width' was fixed by training",
                      "trainer.threads, tta_flip, tta_shift")
    # A key no config has is a typo, not a setting training fixed
    assert_user_error(cli("eval", fashion_run, "tta_flp=false"), "unknown config key 'tta_flp'",
                      "did you mean 'tta_flip'")
    assert_user_error(cli("eval", fashion_run, "nope=1"), "unknown config key 'nope'; what `dlzoo eval` can change")
    assert_user_error(cli("eval", fashion_run, "data.limt=1"), "unknown config key 'data.limt'")
    assert_user_error(cli("eval", fashion_run, "data.eval_batch_size=0"), "data.eval_batch_size must be >= 1")
    assert_user_error(cli("eval", fashion_run, "tta_shift=-1"), "tta_shift must be >= 0")
    assert_user_error(cli("eval", fashion_run, "tta_shift=28"), "less than the pictures' 28 pixels")
    assert_user_error(cli("eval", fashion_run, "tta_shift"), "expected KEY=VALUE")


def test_fashion_learns_on_real_images(fashion_run):
    summary = json.loads((fashion_run / "summary.json").read_text())
    # 4,000 images, 2 epochs: far from the full recipe's 91%, far above chance (10%).
    assert summary["metrics"]["test"]["accuracy"] > 0.75, summary["metrics"]
    net = create("fashion-net", **get_recipe("fashion").config().model.args)
    assert summary["parameters"] == {"net": sum(p.numel() for p in net.parameters())}


def test_eval_of_the_checkpoint_matches_training(cli, fashion_run):
    result = cli("eval", fashion_run, "--json")
    assert result.code == 0, result.err
    trained = json.loads((fashion_run / "summary.json").read_text())["metrics"]["test"]
    assert json.loads(result.out)["metrics"]["test"]["accuracy"] == pytest.approx(trained["accuracy"])


def test_fashion_predicts_pictures_from_its_checkpoint(cli, fashion_run, fashion_small, tmp_path):
    arrays = fashion_small[1]
    paths, labels = [], []
    for index in range(20):  # held-out test images, saved as the PNG files a user would pass
        path = tmp_path / f"test-{index}.png"
        Image.fromarray(arrays.test_images[index]).save(path)
        paths.append(path)
        labels.append(arrays.classes[arrays.test_labels[index]])
    result = cli("predict", fashion_run, *paths, "--json")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in paths]
    correct = sum(r["label"] == label for r, label in zip(records, labels, strict=True))
    assert correct >= 14, (correct, [r["label"] for r in records], labels)


def test_speedrun_with_an_ema_resumes_exactly(cli, fashion_small, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    args = ["train", "fashion-speedrun", f"data.path={fashion_small[0]}", "data.limit=1024", "data.batch_size=64",
            "model.args.width=8", "trainer.epochs=2", "optim.lr=0.2", "ema_decay=0.95", "ema_start=0.5", "ema_every=5",
            *CPU]  # lr: the recipe's 1.2 is for batches of 2,048; at 64 the nets would learn nothing to compare
    result = cli(*args, "--out", whole)
    assert result.code == 0, result.err
    summary = json.loads((whole / "summary.json").read_text())
    assert set(summary["parameters"]) == {"net", "ema"}
    weights = load_file(str(whole / "checkpoints" / "epoch-0002" / "model.safetensors"))
    # 2 x 16 steps, ema_start=0.5, ema_every=5: the average took in the weights after steps 20, 25 and 30.
    assert int(weights["ema.n_averaged"]) == 3
    net = {k[4:]: v for k, v in weights.items() if k.startswith("net.")}
    ema = {k[len("ema.module."):]: v for k, v in weights.items() if k.startswith("ema.module.")}
    assert net.keys() == ema.keys()
    assert any(not torch.equal(net[k], ema[k]) for k in net if net[k].is_floating_point())

    # Resume from the first epoch's checkpoint: the second epoch, EMA included, must come out bit-identical.
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / "epoch-0002")
    (resumed / "summary.json").unlink()
    result = cli("train", "--resume", resumed)
    assert result.code == 0, result.err
    again = load_file(str(resumed / "checkpoints" / "epoch-0002" / "model.safetensors"))
    assert again.keys() == weights.keys()
    for key in weights:
        assert torch.equal(again[key], weights[key]), key
    assert json.loads((resumed / "summary.json").read_text())["metrics"] == summary["metrics"]

    # What evaluation, prediction and `dlzoo export` use is the average, not the last weights.
    from dlzoo.runs import load_for_inference, open_run

    task = load_for_inference(open_run(whole), "cpu")
    assert task.scoring_net() is task.models["ema"].module
    result = cli("export", whole, "--out", tmp_path / "speedrun.pt2")
    assert result.code == 0, result.err
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        exported = torch.export.load(str(tmp_path / "speedrun.pt2")).module()(images)
        assert not torch.allclose(exported, task.logits(torch.zeros_like(images)), atol=1e-3)  # it learned something
        assert torch.allclose(exported, task.logits(images), atol=1e-5)  # the average's, test-time views included
        assert not torch.allclose(exported, task.logits(images, task.models["net"]), atol=1e-5)


def test_gallery_shows_what_the_recipe_trains_on():
    shown = gallery("fashion-mnist", augment=True, recipe="fashion-speedrun", columns=6, seed=1)
    assert shown.row_names[0] == "T-shirt/top" and len(shown.row_names) == 10
    rows = shown.images.view(10, 6, 1, 28, 28)
    originals, augmented = rows[:, 0], rows[:, 1:]
    assert originals.min() >= 0 and originals.max() <= 1
    # Flips and shifts of up to 2 px with zero fill: the ink is kept (bar what slides off the border)...
    assert (augmented.sum((-1, -2, -3)) <= originals.sum((-1, -2, -3)).unsqueeze(1) + 1e-3).all()
    # ...and most augmented copies differ from their original.
    changed = (augmented - originals.unsqueeze(1)).abs().amax((-1, -2, -3)) > 0
    assert changed.float().mean() > 0.5
    plain = gallery("fashion-mnist", augment=False, columns=3)
    assert torch.equal(plain.images.view(10, 3, 1, 28, 28)[:, 0], originals)


def test_data_show_writes_the_gallery(cli, tmp_path):
    out = tmp_path / "pictures" / "fashion.png"
    result = cli("data", "show", "fashion-mnist", "--augment", "--out", out)
    assert result.code == 0, result.err
    assert str(out) in result.out and "'fashion' recipe" in result.out
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > 300 and picture.height > 300
        assert np.asarray(picture.convert("L")).std() > 10  # not a blank page
    assert [p.name for p in out.parent.iterdir()] == ["fashion.png"]  # no temporary file left behind


def test_data_show_user_errors(cli, tmp_path):
    assert_user_error(cli("data", "show"), "name the source")
    assert_user_error(cli("data", "show", "fashion-mnits"), "unknown data source 'fashion-mnits'")
    assert_user_error(cli("data", "show", "fashion-mnist", "--out", tmp_path / "g.txt"), "cannot write a picture")
    assert_user_error(cli("data", "show", "fashion-mnist", "--out", tmp_path), "is a folder")
    assert_user_error(cli("data", "show", "fashion-mnist", "--recipe", "fashon"), "did you mean 'fashion'")
    # LeNet trains on the pictures as they are: columns of the same picture would show nothing
    assert_user_error(cli("data", "show", "fashion-mnist", "--augment", "--recipe", "lenet"),
                      "recipe 'lenet' trains on its pictures as they are")
    assert_user_error(cli("data", "list", "fashion-mnist"), "go with `dlzoo data show SOURCE`")
    other = next((r.name for r in list_recipes() if not issubclass(r.task, ImageClassification)), None)
    if other is not None:
        assert_user_error(cli("data", "show", "fashion-mnist", "--recipe", other), "does not classify images")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("native", [True, False])
def test_auto_bf16_uses_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    from dlzoo.config import TrainerConfig
    from dlzoo.engine import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    created = runtime.Runtime.create(TrainerConfig(device="cpu", precision="auto-bf16"))
    assert created.autocast_dtype == (torch.bfloat16 if native else None)
    assert runtime.Runtime.create(TrainerConfig(device="cpu", precision="auto")).autocast_dtype is None


def test_ema_settings_are_checked(cli, tmp_path):
    result = cli("train", "fashion", "ema_decay=1.5", "trainer.device=cpu", "--out", tmp_path / "run")
    assert_user_error(result, "ema_decay and ema_start must be in [0, 1)")
    assert not (tmp_path / "run").exists()


def test_bench_speedups_compare_time_to_the_same_accuracy():
    from dlzoo.bench.fashion import _speedups

    textbook = {"test_accuracy": 0.78, "accuracy_by_epoch": [0.5, 0.79, 0.81, 0.78], "epoch_seconds": [50] * 4}
    runs = [{"accuracy_by_epoch": [0.8, 0.9], "epoch_seconds": [20, 20]},
            {"accuracy_by_epoch": [0.7, 0.85], "epoch_seconds": [15, 15]}]
    # 0.78 (the textbook's final): 100 s against (20 + 30) / 2; 0.80: 150 s against the same; 0.85: never.
    assert _speedups(textbook, runs) == {"0.78": 4.0, "0.8": 6.0}


@pytest.mark.slow
def test_speedrun_benchmark_runs_on_the_cpu():
    from dlzoo.bench.fashion import speedrun

    result = speedrun(seeds=2, device="cpu", epochs=1, limit=1024, warmup=False)
    assert [len(run["accuracy_by_epoch"]) for run in result["runs"]] == [1, 1]
    assert result["settings"]["seeds"] == [10, 11]  # past seeds 0-4, which chose the recipe's defaults
    assert 0 < result["accuracy"]["mean"] < 1 and result["accuracy"]["std"] >= 0
    assert not any(result["targets"].values())  # a shortened run on a CPU meets no target, by construction


@pytest.mark.slow
def test_compiled_training_saves_plain_weights_that_evaluate_the_same(cli, fashion_small, tmp_path):
    # reduce-overhead's CUDA graphs are skipped on a CPU; the compiled wrapper and its modes must still train,
    # checkpoint under the plain module's names and evaluate to the accuracy training reported.
    run = tmp_path / "compiled"
    result = cli("train", "fashion-speedrun", f"data.path={fashion_small[0]}", "data.limit=1024",
                 "data.batch_size=64", "model.args.width=8", "trainer.epochs=1", "trainer.compile=true",
                 "trainer.compile_mode=reduce-overhead", *CPU, "--out", run)
    assert result.code == 0, result.err
    weights = load_file(str(run / "checkpoints" / "epoch-0001" / "model.safetensors"))
    assert weights and not any("_orig_mod" in key for key in weights)
    trained = json.loads((run / "summary.json").read_text())["metrics"]["test"]["accuracy"]
    result = cli("eval", run)
    assert result.code == 0, result.err
    assert f"{trained:.4f}" in result.out


def test_compile_mode_must_be_one_torch_knows(cli, tmp_path):
    assert_user_error(cli("train", "fashion", "trainer.compile_mode=fastest", "--out", tmp_path / "run"),
                      "compile_mode")
    # Without trainer.compile it changed nothing, silently (the speedrun benchmark refuses it too)
    assert_user_error(cli("train", "fashion", "trainer.compile_mode=reduce-overhead", "--out", tmp_path / "run"),
                      "trainer.compile_mode=reduce-overhead", "trainer.compile=true")
    assert not (tmp_path / "run").exists()


def test_speedrun_benchmark_refuses_a_compile_mode_without_compile(cli):
    assert_user_error(cli("bench", "fashion-speedrun", "compile_mode=reduce-overhead", "device=cpu"),
                      "compile=true")
    # the recipe's own checks, said in one line before any run starts
    assert_user_error(cli("bench", "fashion-speedrun", "batch_size=0", "device=cpu"), "data.batch_size must be >= 1")


def test_speedrun_benchmark_checks_what_its_warmup_replaces_before_the_warmup(cli, monkeypatch):
    # The warm-up run trains with its own epochs and limit: epochs=0 was refused only after it had trained.
    monkeypatch.setattr("dlzoo.bench.fashion.recipe_run", lambda *args: pytest.fail("trained before checking"))
    assert_user_error(cli("bench", "fashion-speedrun", "epochs=0", "device=cpu"), "trainer.epochs must be >= 1")
    assert_user_error(cli("bench", "fashion-speedrun", "limit=0", "device=cpu"), "data.limit")


def test_mixup_trains_on_mixed_pictures_against_both_labels(monkeypatch, cli, tmp_path):
    from dlzoo.runs import build_config

    config = build_config(get_recipe("digits"), overrides=["mixup=0.2", "data.augment.enabled=false"])
    task = ImageClassification(config)
    task.meta, task.train_files = {"resolution": 4}, None
    images, labels = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    partner = torch.tensor([1, 2, 3, 0])
    monkeypatch.setattr(torch.distributions.Beta, "sample", lambda self: torch.tensor(0.7))
    monkeypatch.setattr(torch, "randperm", lambda n, device=None: partner)
    torch.manual_seed(0)
    net, seen = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), []
    net.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    result = task.train_step((images, labels), type("Context", (), {"models": {"net": net}})())
    mixed = 0.7 * images + 0.3 * images[partner]
    assert torch.allclose(seen[0], mixed)
    logits = net(mixed)
    smoothing = config.label_smoothing  # the recipe's, applied to both labels
    expected = (0.7 * nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
                + 0.3 * nn.functional.cross_entropy(logits, labels[partner], label_smoothing=smoothing))
    assert torch.allclose(result["loss"], expected)
    assert result["accuracy"] == (logits.argmax(1) == labels).float().mean()  # the larger share's labels
    assert_user_error(cli("train", "digits", "mixup=-0.1", "--out", tmp_path / "r"), "mixup must be >= 0")
