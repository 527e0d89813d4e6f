"""`dlzoo bench fashion` and `dlzoo bench fashion-speedrun`: the fast Fashion-MNIST recipes, measured.

fashion: the `fashion` recipe against the textbook loop run in the same process on the same full Fashion-MNIST
(60,000 / 10,000): the book's LeNet (sigmoid, average pooling) trained as the book trains it, a DataLoader over a
TensorDataset indexed one sample at a time, batches of 256, SGD lr 0.9, 10 epochs, fp32 (`bench.classic`'s
`textbook_loop`). Reported for both: test accuracy after every epoch, training seconds (evaluation excluded) and the
training time until the test accuracy first reaches each threshold, and how many times sooner `fashion` gets there;
targets: >= 0.91 in <= 60 s on the CPU.

fashion-speedrun: the GPU recipe over several seeds, after one untimed warm-up run that pays for CUDA start-up and
cuDNN's kernel search; reports the mean and std of test accuracy and training seconds against its targets
(mean >= 0.94, every run <= 10 s of training, on a GPU). On a CPU, `epochs=` and `limit=` make a quick check.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Literal

from dlzoo.bench import benchmark
from dlzoo.bench.classic import textbook_loop, time_to_accuracy
from dlzoo.bench.common import machine, require_at_least, spread, temporary_run, torch_threads
from dlzoo.data.images import load_image_arrays
from dlzoo.engine.reporting import read_metrics
from dlzoo.engine.runtime import pick_device
from dlzoo.errors import UserError
from dlzoo.recipes import get_recipe
from dlzoo.recipes.classic import book_setting
from dlzoo.runs import build_config

THRESHOLDS = (0.80, 0.85, 0.90, 0.91)
FASHION_TARGET_ACCURACY, FASHION_TARGET_SECONDS = 0.91, 60.0
SPEEDRUN_TARGET_ACCURACY, SPEEDRUN_TARGET_SECONDS = 0.94, 10.0
# The first seed a speedrun measurement trains: seeds 0-4 chose fashion-speedrun's defaults (docs/fashion.md).
FRESH_SEED = 10


def recipe_run(recipe: str, overrides: list[str]) -> dict[str, Any]:
    """Train `recipe` in a temporary run directory; its per-epoch test accuracy and training seconds."""
    with temporary_run(recipe, ["trainer.eval_every=1", "trainer.keep_checkpoints=1", *overrides]) as summary:
        entries = read_metrics(Path(summary["run_dir"]))
    return {"test_accuracy": summary["metrics"]["test"]["accuracy"], "train_seconds": summary["train_seconds"],
            "samples_per_s": summary["samples_per_s"],
            "accuracy_by_epoch": [round(e["metrics"]["accuracy"], 4) for e in entries if e["split"] == "test"],
            "epoch_seconds": [round(e["epoch_seconds"], 3) for e in entries if e["split"] == "train"],
            "device": summary["device"]}


def _with_times(side: dict[str, Any]) -> dict[str, Any]:
    side["time_to_accuracy_s"] = {f"{t:.2f}": time_to_accuracy(side, t) for t in THRESHOLDS}
    return side


@benchmark("fashion", "fashion recipe vs the textbook LeNet loop on the full Fashion-MNIST: time to accuracy")
def run(seeds: int = 1, textbook_epochs: int = 10, device: Literal["auto", "cpu", "cuda"] = "cpu",
        threads: int | None = None) -> dict[str, Any]:
    """seeds: dlzoo runs (seeds 0..N-1); textbook_epochs: the book's 10 (0 skips the textbook loop); threads: torch
    CPU threads for both sides (default: torch's choice, every core)."""
    require_at_least(1, seeds=seeds)
    require_at_least(0, textbook_epochs=textbook_epochs)
    torch_device = pick_device(device)
    textbook = None
    with torch_threads(threads):
        if textbook_epochs:
            lenet = book_setting("lenet")
            side = textbook_loop(lenet, load_image_arrays("fashion-mnist"), textbook_epochs, torch_device, seed=0,
                                 workers=0)
            textbook = {"recipe": f"the book's LeNet, DataLoader batch {lenet.batch_size}, SGD lr {lenet.lr}, "
                                  f"{textbook_epochs} epochs, fp32", **_with_times(side)}
        runs = [_with_times(recipe_run("fashion", [f"trainer.seed={seed}", f"trainer.device={torch_device.type}"]))
                for seed in range(seeds)]
        where = machine(torch_device)  # names the thread count in use
    accuracies = [r["test_accuracy"] for r in runs]
    seconds = [r["train_seconds"] for r in runs]
    result: dict[str, Any] = {
        "benchmark": "fashion",
        "data": "fashion-mnist: 60,000 train / 10,000 test images, 28 px",
        "note": "train seconds exclude evaluation; time_to_accuracy_s: training seconds until the test accuracy, "
                "checked after every epoch, first reached the threshold (null: never)",
        "textbook": textbook,
        "dlzoo": {"recipe": "fashion (defaults)", "seeds": seeds, "accuracy": spread(accuracies),
                  "train_seconds": spread(seconds), "runs": runs},
        "targets": {f"test accuracy >= {FASHION_TARGET_ACCURACY} (every seed)":
                    min(accuracies) >= FASHION_TARGET_ACCURACY,
                    f"train_seconds <= {FASHION_TARGET_SECONDS:.0f} (every seed)":
                    max(seconds) <= FASHION_TARGET_SECONDS},
        "machine": where,
    }
    if textbook:
        result["time_to_accuracy_speedup"] = _speedups(textbook, runs)
    return result


def _speedups(textbook: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, float]:
    """How many times sooner `fashion` (mean over seeds) reaches each threshold the textbook loop reached, and the
    textbook's own final accuracy."""
    speedups = {}
    for target in sorted({*THRESHOLDS, textbook["test_accuracy"]}):
        theirs = time_to_accuracy(textbook, target)
        ours = [time_to_accuracy(run, target) for run in runs]
        if theirs is not None and None not in ours:
            speedups[f"{target:.4g}"] = round(theirs / statistics.mean(ours), 2)
    return speedups


@benchmark("fashion-speedrun", "fashion-speedrun (GPU) over seeds: mean/std test accuracy and train seconds",
           needs_gpu=True)
def speedrun(seeds: int = 5, device: Literal["auto", "cpu", "cuda"] = "auto", epochs: int | None = None,
             limit: int | None = None, warmup: bool = True, compile: bool = False,
             compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default",
             batch_size: int | None = None, lr: float | None = None, first_seed: int = FRESH_SEED,
             threads: int | None = None) -> dict[str, Any]:
    """seeds: runs, seeds first_seed to first_seed+N-1 (seeds 0-4 chose the recipe's defaults by their test
    accuracy: the default starts past them, so that the mean carries no selection effect); limit: train on the
    first N images (a quick CPU check, which meets no target); epochs, batch_size, lr: the recipe's with other
    epochs, batch size and peak learning rate (quick checks, or the speed/accuracy trade-off: on a GPU a step costs
    about the same at batch 512 and 2048); warmup: one untimed run first, so CUDA start-up and cuDNN autotuning
    (and with `compile`, torch.compile's first compilation, whose cache the later runs in this process reuse) are
    not charged to the first seed; threads: torch CPU threads (default: torch's choice, every core)."""
    require_at_least(1, seeds=seeds)  # the recipe checks the rest, in its own terms (trainer.epochs, ...)
    require_at_least(0, first_seed=first_seed)
    if compile_mode != "default" and not compile:
        raise UserError(f"compile_mode={compile_mode} needs compile=true")
    torch_device = pick_device(device)
    overrides = [f"trainer.device={torch_device.type}"]
    overrides += [f"trainer.epochs={epochs}"] if epochs is not None else []
    overrides += [f"data.limit={limit}"] if limit is not None else []
    overrides += ["trainer.compile=true", f"trainer.compile_mode={compile_mode}"] if compile else []
    overrides += [f"data.batch_size={batch_size}"] if batch_size is not None else []
    overrides += [f"optim.lr={lr}"] if lr is not None else []
    # Checked before the warm-up, whose own epochs and limit replace these: epochs=0 or limit=0 was refused only by
    # the first measured run, after minutes of warm-up.
    build_config(get_recipe("fashion-speedrun"), None, overrides)
    chosen = range(first_seed, first_seed + seeds)
    with torch_threads(threads):
        if warmup:
            recipe_run("fashion-speedrun", [*overrides, "trainer.epochs=1", "data.limit=4096"])
        runs = [recipe_run("fashion-speedrun", [*overrides, f"trainer.seed={seed}"]) for seed in chosen]
        where = machine(torch_device)  # on a CPU, names the thread count in use
    accuracies = [r["test_accuracy"] for r in runs]
    seconds = [r["train_seconds"] for r in runs]
    full = limit is None  # the targets are for the whole training set; any number of epochs may meet them
    return {
        "benchmark": "fashion-speedrun",
        "data": "fashion-mnist: " + ("60,000" if limit is None else f"first {limit:,}") + " train / 10,000 test",
        "settings": {"epochs": epochs or "recipe default", "seeds": list(chosen), "warmup": warmup,
                     "compile": compile_mode if compile else False,
                     "batch_size": batch_size or "recipe default", "lr": lr or "recipe default"},
        "accuracy": spread(accuracies),
        "train_seconds": spread(seconds),
        "runs": runs,
        "targets": {f"mean test accuracy >= {SPEEDRUN_TARGET_ACCURACY}":
                    full and statistics.mean(accuracies) >= SPEEDRUN_TARGET_ACCURACY,
                    f"train_seconds <= {SPEEDRUN_TARGET_SECONDS:.0f} (every seed)":
                    full and max(seconds) <= SPEEDRUN_TARGET_SECONDS,
                    "on a GPU": torch_device.type == "cuda"},
        "machine": where,
    }
