"""`dlzoo bench detection`: the `digit-boxes` recipe (TinySSD with the SSD paper's loss: hard negatives, sums per
object anchor) against the same network and data trained with the curriculum's loss (means over all anchors),
both from scratch on this machine, scored by COCO mAP and mAP at IoU 0.5 on the 1,000 fixed test canvases."""

from __future__ import annotations

from typing import Any

from dlzoo.bench import benchmark
from dlzoo.bench.common import compare_settings, require_at_least


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    test = summary["metrics"]["test"]
    return {"map": test["map"], "map_50": test["map_50"], "train_seconds": summary["train_seconds"],
            "samples_per_s": summary["samples_per_s"], "epochs": summary["epochs"]}


@benchmark("detection", "digit-boxes: TinySSD with the SSD paper's loss (the recipe) vs the curriculum's loss")
def run(epochs: int | None = None, curriculum: bool = True, threads: int | None = None) -> dict[str, Any]:
    """epochs: training epochs of each run (default: the recipe's); curriculum: also train with the curriculum's
    loss; threads: torch CPU threads (default: torch's choice, every core)."""
    require_at_least(1, epochs=epochs)
    overrides = [f"trainer.epochs={epochs}"] if epochs else []
    variants = {"ssd loss (digit-boxes defaults)": overrides}
    if curriculum:
        variants["curriculum loss (loss=curriculum)"] = [*overrides, "loss=curriculum"]
    results, where = compare_settings("digit-boxes", variants, _scores, threads)
    return {"benchmark": "detection",
            "data": "digit-scenes with each digit's ink box: 64 px canvases from 4,000 mnist5k digits; 1,000 test "
                    "canvases from the 1,000 held-out digits on unseen photo parts",
            "runs": results, "machine": where}
