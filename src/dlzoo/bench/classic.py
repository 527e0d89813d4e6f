"""`dlzoo bench classic`: the classic-CNN recipes against the textbook's own training loop, same model, same data.

For each network both sides start from the same seeded weights, use the recipe's (the book's) optimizer, learning
rate, batch size and resolution, and train on the same Fashion-MNIST images for the same epochs in this process:

- textbook: a DataLoader over a TensorDataset, indexed one sample at a time, each image resized on its own as the
  book's `transforms.Resize` does, fp32, a hand-written loop (forward, backward, step) and an evaluation per epoch,
  under PyTorch's default GPU settings;
- dlzoo: `dlzoo train RECIPE` (data resident on the device, batches gathered and resized on the device; the 96 and
  224 px recipes in bf16 autocast with channels-last activations wherever bf16 is native; on a GPU the 28 px
  LeNets too, which keep fp32 on a CPU; on a GPU cuDNN's autotuner and TF32 matrix products, as the engine sets).

Reported per network: training samples/s and the training time until the test accuracy (checked after every epoch,
evaluation time excluded) first reaches the target, for both, and their ratios. Evaluation is excluded from both.

Sized by options: on a GPU it runs every recipe on all the data for the book's 10 epochs against the book's
accuracies; on a CPU it defaults to the two 28 px LeNets for 2 epochs (the others take hours there), e.g.
`dlzoo bench classic models=resnet18 train=512 test=500 epochs=1` measures a heavy one's throughput on a subset.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms.v2 import functional as TF

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, temporary_run, textbook_epoch, torch_threads
from dlzoo.data.idx import write_idx
from dlzoo.data.images import FASHION_MNIST, ImageArrays, load_image_arrays
from dlzoo.engine.reporting import read_metrics
from dlzoo.engine.runtime import pick_device
from dlzoo.errors import UserError
from dlzoo.models import create
from dlzoo.recipes.classic import CLASSICS, ClassicSetting

QUICK_MODELS = ["lenet", "lenet-bn"]
QUICK_EPOCHS, QUICK_TARGET = 2, 0.55  # sigmoid LeNet needs ~5 epochs to pass 0.70


def fashion_subset(folder: Path, train: int | None, test: int | None) -> ImageArrays:
    """Write the first `train` training and `test` test images of the real Fashion-MNIST as IDX files in `folder`
    (the layout `data.path=FOLDER` reads), and return them."""
    arrays = load_image_arrays("fashion-mnist")
    arrays.train_images, arrays.train_labels = arrays.train_images[:train], arrays.train_labels[:train]
    arrays.test_images, arrays.test_labels = arrays.test_images[:test], arrays.test_labels[:test]
    folder.mkdir(parents=True, exist_ok=True)
    contents = (arrays.train_images, arrays.train_labels, arrays.test_images, arrays.test_labels)
    for remote, array in zip(FASHION_MNIST.files, contents, strict=True):
        write_idx(folder / remote.name, array.astype(np.uint8))
    arrays.location = str(folder)
    return arrays


class ResizingTensorDataset(TensorDataset):
    """The textbook pipeline: every image is fetched and resized on its own when the DataLoader indexes it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, resolution: int):
        super().__init__(images, labels)
        self.resolution = resolution

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = super().__getitem__(index)
        if image.shape[-1] != self.resolution:
            image = TF.resize(image, [self.resolution, self.resolution], antialias=True)
        return image, label


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _pytorch_default_backends() -> Iterator[None]:
    """PyTorch's own GPU settings, as a learner's script has them: a dlzoo run earlier in this process turned on
    cuDNN's autotuner and TF32 matrix products (part of what dlzoo's side measures), and they would stay on for
    the textbook loops after it, so that rows of one benchmark ran under different settings."""
    flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = False, False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = flags


def textbook_loop(setting: ClassicSetting, arrays: ImageArrays, epochs: int, device: torch.device, seed: int,
                  workers: int) -> dict[str, Any]:
    """The book's `train_ch6`, minus its live plot: SGD, cross-entropy, evaluate after each epoch, under
    PyTorch's default backend settings."""
    with _pytorch_default_backends():
        return _textbook_epochs(setting, arrays, epochs, device, seed, workers)


def _textbook_epochs(setting: ClassicSetting, arrays: ImageArrays, epochs: int, device: torch.device, seed: int,
                     workers: int) -> dict[str, Any]:
    torch.manual_seed(seed)  # the same seed as the dlzoo run: both start from the same weights
    model = create(setting.model).to(device)
    pixels = lambda images: torch.tensor(images).float().div(255).unsqueeze(1)
    train = ResizingTensorDataset(pixels(arrays.train_images), torch.from_numpy(arrays.train_labels),
                                  setting.resolution)
    test = ResizingTensorDataset(pixels(arrays.test_images), torch.from_numpy(arrays.test_labels), setting.resolution)
    # The book's loader keeps a short last batch, except one of a single picture: batch norm cannot train on it (a
    # ValueError in LeNet-BN), and dlzoo's side never draws it (`drop_short_last`).
    alone = len(train) > 1 and len(train) % setting.batch_size == 1
    train_loader = DataLoader(train, batch_size=setting.batch_size, shuffle=True, num_workers=workers,
                              drop_last=alone)
    test_loader = DataLoader(test, batch_size=setting.batch_size, num_workers=workers)
    optimizer = torch.optim.SGD(model.parameters(), lr=setting.lr)
    epoch_seconds, accuracies, samples = [], [], 0
    for _ in range(epochs):
        model.train()
        _sync(device)
        began = time.perf_counter()
        samples += textbook_epoch(model, train_loader, optimizer, device)
        _sync(device)
        epoch_seconds.append(time.perf_counter() - began)
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                correct += (model(images.to(device)).argmax(1) == labels.to(device)).sum().item()
        accuracies.append(correct / len(test))
    return _side(epoch_seconds, accuracies, samples)


def dlzoo_run(setting: ClassicSetting, data_path: Path | None, epochs: int, device: str, seed: int) -> dict[str, Any]:
    overrides = [f"trainer.epochs={epochs}", f"trainer.device={device}", f"trainer.seed={seed}",
                 f"trainer.checkpoint_every={epochs}", "trainer.keep_checkpoints=1"]
    if data_path is not None:
        overrides.append(f"data.path={data_path}")
    with temporary_run(setting.recipe, overrides) as summary:
        entries = read_metrics(Path(summary["run_dir"]))
    epoch_seconds = [e["epoch_seconds"] for e in entries if e["split"] == "train"]
    accuracies = [e["metrics"]["accuracy"] for e in entries if e["split"] == "test"]
    samples = round(summary["samples_per_s"] * summary["train_seconds"])
    return _side(epoch_seconds, accuracies, samples)


def _side(epoch_seconds: list[float], accuracies: list[float], samples: int) -> dict[str, Any]:
    seconds = sum(epoch_seconds)
    return {"train_seconds": round(seconds, 3), "samples_per_s": round(samples / seconds, 1),
            "test_accuracy": accuracies[-1], "accuracy_by_epoch": [round(a, 4) for a in accuracies],
            "epoch_seconds": [round(s, 3) for s in epoch_seconds]}


def time_to_accuracy(side: dict[str, Any], target: float | None) -> float | None:
    """Training seconds until the first epoch whose test accuracy reaches `target` (None if none did)."""
    if target is None:
        return None
    elapsed = 0.0
    for seconds, accuracy in zip(side["epoch_seconds"], side["accuracy_by_epoch"], strict=True):
        elapsed += seconds
        if accuracy >= target:
            return round(elapsed, 3)
    return None


def compare(setting: ClassicSetting, arrays: ImageArrays, data_path: Path | None, epochs: int,
            device: torch.device, seed: int, workers: int, target: float | None) -> dict[str, Any]:
    target = target if target is not None else setting.book_accuracy
    textbook = textbook_loop(setting, arrays, epochs, device, seed, workers)
    ours = dlzoo_run(setting, data_path, epochs, device.type, seed)
    for side in (textbook, ours):
        side["time_to_target_s"] = time_to_accuracy(side, target)
    reached = textbook["time_to_target_s"] and ours["time_to_target_s"]
    return {
        "recipe": setting.recipe, "resolution": setting.resolution, "batch_size": setting.batch_size,
        "lr": setting.lr, "book_accuracy": setting.book_accuracy, "target_accuracy": target,
        "textbook": textbook, "dlzoo": ours,
        "throughput_ratio": round(ours["samples_per_s"] / textbook["samples_per_s"], 3),
        "time_to_target_speedup": round(textbook["time_to_target_s"] / ours["time_to_target_s"], 3) if reached
        else None,
    }


@benchmark("classic", "classic CNN recipes vs the textbook DataLoader loop: samples/s, time-to-accuracy, ratios")
def run(models: list[str] | None = None, train: int | None = None, test: int | None = None,
        epochs: int | None = None, target: float | None = None, device: Literal["auto", "cpu", "cuda"] = "auto",
        workers: int | None = None, threads: int | None = None, seed: int = 0) -> dict[str, Any]:
    """models: recipe names; train/test: first N images of each split (all by default); target: accuracy for
    time-to-accuracy (default: the book's on a GPU, 0.55 on a CPU); workers: the textbook DataLoader's workers
    (the book's 4 on a GPU, 0 on a CPU, whose 2 cores the training already uses); threads: torch CPU threads for
    both sides (1 gives steadier numbers on a busy machine)."""
    torch_device = pick_device(device)
    on_gpu = torch_device.type == "cuda"
    settings = {s.recipe: s for s in CLASSICS}
    models = models or ([s.recipe for s in CLASSICS] if on_gpu else QUICK_MODELS)
    unknown = [name for name in models if name not in settings]
    if unknown:
        raise UserError(f"not a classic recipe: {', '.join(unknown)}; choose from {', '.join(settings)}")
    epochs = epochs if epochs is not None else (10 if on_gpu else QUICK_EPOCHS)
    target = target if target is not None or on_gpu else QUICK_TARGET
    workers = workers if workers is not None else (4 if on_gpu else 0)
    require_at_least(1, epochs=epochs, test=test)
    require_at_least(2, train=train)  # one picture is a batch of one, which batch norm cannot train on
    if target is not None and not 0 <= target <= 1:  # an accuracy: 1.5 would never be reached
        raise UserError(f"target is a test accuracy between 0 and 1, got {target}")

    scratch = Path(tempfile.mkdtemp(prefix="dlzoo-bench-classic-"))
    try:
        with torch_threads(threads):
            subset = train is not None or test is not None
            arrays = fashion_subset(scratch, train, test) if subset else load_image_arrays("fashion-mnist")
            data_path = scratch if subset else None
            results = [compare(settings[name], arrays, data_path, epochs, torch_device, seed, workers, target)
                       for name in models]
            where = machine(torch_device)  # names the thread count in use
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "benchmark": "classic",
        "data": f"fashion-mnist: first {len(arrays.train_images):,} train / {len(arrays.test_images):,} test images",
        "epochs": epochs, "seed": seed, "textbook_workers": workers,
        "note": "same seed, weights, optimizer, lr, batch size and images on both sides; train time excludes "
                "evaluation; ratios > 1 favour dlzoo",
        "models": results,
        "machine": where,
    }
