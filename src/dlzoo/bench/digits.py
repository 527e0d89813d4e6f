"""`dlzoo bench digits`: the `digits` recipe against the curriculum's digit CNN, trained the curriculum's way.

The baseline is written here as learners write it: a DataLoader over a TensorDataset (per-sample indexing, batches
of 32, shuffled), the curriculum's CNN, SGD lr 0.01 momentum 0.9, 10 epochs, no augmentation, no schedule. Both train
on the same 4,000 mnist5k digits and are tested on the same 1,000 held-out ones, in this process, on this machine.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, spread, temporary_run, textbook_epoch, torch_threads
from dlzoo.data.images import load_image_arrays
from dlzoo.models import create


def curriculum_baseline(seed: int = 0, epochs: int = 10) -> dict[str, float]:
    torch.manual_seed(seed)
    arrays = load_image_arrays("mnist5k")
    train = TensorDataset(torch.from_numpy(arrays.train_images).float().div(255).unsqueeze(1),
                          torch.from_numpy(arrays.train_labels))
    test_x = torch.from_numpy(arrays.test_images).float().div(255).unsqueeze(1)
    test_y = torch.from_numpy(arrays.test_labels)
    model = create("digits-classic")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(train, batch_size=32, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        textbook_epoch(model, loader, optimizer, torch.device("cpu"))
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    return {"accuracy": accuracy, "train_seconds": seconds}


@benchmark("digits", "digits recipe vs the curriculum's CNN loop on mnist5k (accuracy, train seconds)")
def run(seeds: int = 3, threads: int | None = None) -> dict[str, Any]:
    """seeds: dlzoo runs (seeds 0..N-1); threads: torch CPU threads for both sides (default: torch's choice, every
    core)."""
    require_at_least(1, seeds=seeds)
    with torch_threads(threads):
        baseline = curriculum_baseline()
        runs = []
        for seed in range(seeds):
            with temporary_run("digits", [f"trainer.seed={seed}", "trainer.device=cpu"]) as summary:
                runs.append(summary)
        where = machine(torch.device("cpu"))  # names the thread count in use
    accuracies = [r["metrics"]["test"]["accuracy"] for r in runs]
    seconds = [r["train_seconds"] for r in runs]
    mean_seconds = statistics.mean(seconds)
    return {
        "benchmark": "digits",
        "data": "mnist5k: 4,000 train / 1,000 held-out test digits",
        "baseline": {"recipe": "curriculum CNN, DataLoader batch 32, SGD 0.01 m0.9, 10 epochs", **baseline},
        "dlzoo": {"recipe": "digits (defaults)", "seeds": seeds, "accuracy": spread(accuracies),
                  "train_seconds": spread(seconds),
                  "runs": [{"test_accuracy": a, "train_seconds": t} for a, t in zip(accuracies, seconds, strict=True)]},
        "speedup_vs_baseline": baseline["train_seconds"] / mean_seconds,
        "targets": {"accuracy >= 0.985 (every seed)": min(accuracies) >= 0.985,
                    "train time <= baseline's": mean_seconds <= baseline["train_seconds"]},
        "machine": where,
    }
