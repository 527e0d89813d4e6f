"""`dlzoo bench classic` at a tiny size: what it reports is consistent, the two sides start equal, bad options fail.
(Its speed numbers are measured by running the benchmark, never asserted here.)"""

import numpy as np
import pytest
import torch

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset, run, time_to_accuracy
from dlzoo.data.images import load_image_arrays
from dlzoo.engine.runtime import Runtime
from dlzoo.models import create
from dlzoo.recipes import get_recipe


def test_fashion_subset_is_the_real_data_read_back(tmp_path):
    written = fashion_subset(tmp_path, train=50, test=20)
    full = load_image_arrays("fashion-mnist")
    read = load_image_arrays("fashion-mnist", str(tmp_path))
    assert read.train_images.shape == (50, 28, 28) and read.test_images.shape == (20, 28, 28)
    assert np.array_equal(read.train_images, full.train_images[:50])
    assert np.array_equal(read.test_labels, full.test_labels[:20])
    assert written.location == str(tmp_path)


def test_textbook_and_dlzoo_start_from_the_same_weights(tmp_path):
    fashion_subset(tmp_path, train=8, test=8)
    config = get_recipe("lenet-bn").config()
    config.data.path, config.trainer.device, config.trainer.seed = str(tmp_path), "cpu", 3
    task = get_recipe("lenet-bn").task(config)
    task.setup(Runtime.create(config.trainer))  # what `dlzoo train` does before training
    torch.manual_seed(3)  # what the textbook loop does
    textbook = create("lenet-bn")
    for (name, ours), theirs in zip(task.models["net"].state_dict().items(), textbook.state_dict().values(),
                                    strict=True):
        assert torch.equal(ours, theirs), name


def test_time_to_accuracy_counts_training_seconds_until_the_target():
    side = {"epoch_seconds": [2.0, 3.0, 4.0], "accuracy_by_epoch": [0.5, 0.8, 0.9]}
    assert time_to_accuracy(side, 0.8) == 5.0
    assert time_to_accuracy(side, 0.95) is None
    assert time_to_accuracy(side, None) is None


def test_tiny_benchmark_reports_both_sides_and_their_ratios():
    # 257 at the book's batch of 256: the textbook loop's last batch, of one picture, crashed LeNet-BN's BatchNorm1d
    result = run(models=["lenet-bn"], train=257, test=128, epochs=1, target=0.0, threads=1)
    assert result["data"] == "fashion-mnist: first 257 train / 128 test images" and result["epochs"] == 1
    (entry,) = result["models"]
    textbook, ours = entry["textbook"], entry["dlzoo"]
    for side in (textbook, ours):
        assert side["train_seconds"] > 0 and side["samples_per_s"] > 0
        assert 0 <= side["test_accuracy"] <= 1 and len(side["accuracy_by_epoch"]) == 1
        assert side["time_to_target_s"] == pytest.approx(side["epoch_seconds"][0], abs=1e-3)
    assert entry["throughput_ratio"] == pytest.approx(ours["samples_per_s"] / textbook["samples_per_s"], rel=1e-2)
    assert entry["time_to_target_speedup"] == pytest.approx(
        textbook["time_to_target_s"] / ours["time_to_target_s"], rel=1e-2)
    assert result["machine"]["device"] == "cpu" and torch.get_num_threads() >= 1
    assert result["machine"]["device_name"].endswith(", 1 thread")  # threads=1 held through the dlzoo run


def test_a_benchmarks_threads_hold_for_the_recipe_runs_it_starts():
    """Its recipe runs leave trainer.threads unset: they keep the benchmark's count, and put it back as they end
    (a version that reset every run to torch's own count trained `bench classic threads=1` on all cores)."""
    from dlzoo.bench.common import torch_threads
    from dlzoo.config import TrainerConfig

    before = torch.get_num_threads()
    with torch_threads(before + 1):
        run = Runtime.create(TrainerConfig(device="cpu"))
        assert torch.get_num_threads() == before + 1
        run.shutdown()
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("options,fragment", [
    (["models=lenet,bogus"], "not a classic recipe: bogus"),
    (["epochs=0"], "epochs must be >= 1"),
    (["models=lenet-bn", "train=1"], "train must be >= 2"),
    (["target=1.5"], "target is a test accuracy between 0 and 1, got 1.5"),
    (["target=-0.1"], "target is a test accuracy between 0 and 1, got -0.1"),
    (["epochs=two"], "epochs must be an integer"),
    (["colour=red"], "has no option 'colour'"),
    (["device=tpu"], "device must be one of"),
])
def test_bad_options_are_user_errors(cli, options, fragment):
    assert_user_error(cli("bench", "classic", *options), fragment)


def test_the_textbook_loop_runs_under_pytorchs_default_gpu_settings(monkeypatch):
    """A dlzoo run earlier in the process turns on cuDNN's autotuner and TF32: the textbook loop after it runs
    without them, as a learner's script does, and leaves them as it found them."""
    from dlzoo.bench import classic

    seen = []
    monkeypatch.setattr(classic, "_textbook_epochs", lambda *args: seen.append(
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)) or {})
    before = torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = True, True  # as Runtime.create does
    try:
        classic.textbook_loop(None, None, 1, torch.device("cpu"), seed=0, workers=0)
        assert seen == [(False, False)]
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = before
