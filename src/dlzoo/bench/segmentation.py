"""`dlzoo bench segmentation`: the `digit-scenes` recipe (FCN reading ResNet-18's stride-8 stage) against the same
network read at stride 32 as the curriculum's FCN reads it, both trained from scratch on this machine, scored by
mIoU on the 1,000 fixed test canvases (held-out digits, unseen photo parts). For scale, what predicting background
everywhere scores on those canvases."""

from __future__ import annotations

from typing import Any

import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import compare_settings, require_at_least
from dlzoo.engine.runtime import Runtime
from dlzoo.recipes import get_recipe
from dlzoo.tasks.segmentation import confusion, scores


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    test = summary["metrics"]["test"]
    return {"miou": test["miou"], "pixel_accuracy": test["pixel_accuracy"], "train_seconds": summary["train_seconds"],
            "samples_per_s": summary["samples_per_s"], "epochs": summary["epochs"]}


def _all_background() -> dict[str, float]:
    """Scores of a 'network' that calls every pixel background, on the recipe's test canvases."""
    recipe = get_recipe("digit-scenes")
    config = recipe.config()
    config.trainer.device = "cpu"
    task = recipe.task(config)
    runtime = Runtime.create(config.trainer, init_process_group=False)
    try:
        task.setup(runtime)
    finally:
        runtime.shutdown()
    masks = task.test_scenes.masks
    return scores(confusion(masks.flatten(), torch.zeros_like(masks.flatten()), len(task.meta["classes"])))


@benchmark("segmentation", "digit-scenes: FCN at stride 8 (the recipe) vs stride 32 (the curriculum's head)")
def run(epochs: int | None = None, stride32: bool = True, threads: int | None = None) -> dict[str, Any]:
    """epochs: training epochs of each run (default: the recipe's); stride32: also train the curriculum's head;
    threads: torch CPU threads (default: torch's choice, every core)."""
    require_at_least(1, epochs=epochs)
    overrides = [f"trainer.epochs={epochs}"] if epochs else []
    variants = {"stride 8 (digit-scenes defaults)": overrides}
    if stride32:
        variants["stride 32 (the curriculum's FCN head)"] = [*overrides, "model.args.stride=32"]
    results, where = compare_settings("digit-scenes", variants, _scores, threads)
    return {"benchmark": "segmentation",
            "data": "digit-scenes: 8,192 canvases an epoch (64 px) from 4,000 mnist5k digits; 1,000 test canvases "
                    "from the 1,000 held-out digits on unseen photo parts",
            "runs": results, "all_background": _all_background(), "machine": where}
