"""Gradient boosting on the same folds as the network: scikit-learn's HistGradientBoostingRegressor, defaults."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from dlzoo.tabular.preprocess import block_offsets

# HistGradientBoosting treats at most this many categories per feature natively; wider columns go in as codes.
_MAX_NATIVE_CATEGORIES = 255


def log_rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def boosting_baseline(numbers: np.ndarray, codes: np.ndarray, log_target: np.ndarray, folds: np.ndarray,
                      sizes: list[int], seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Fit on each fold's training rows, score its held-out rows. `codes` are the per-fold category indices the
    network uses (rows, folds, columns), so both see the same features and the same unknown categories.
    `threads` caps OpenMP like trainer.threads caps torch: on a busy machine, extra threads make boosting crawl."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # imported when used: every command loads housing

    offsets = block_offsets(sizes)
    native = [size <= _MAX_NATIVE_CATEGORIES for size in sizes]
    mask = np.array([False] * numbers.shape[1] + native, dtype=bool)
    scores, started = [], time.perf_counter()
    for fold in range(int(folds.max()) + 1):
        features = np.hstack([numbers, codes[:, fold, :] - offsets]).astype(np.float64)
        train, held_out = folds != fold, folds == fold
        # A number column empty in every training row (filled in held-out houses only) is one scikit-learn cannot
        # bin: make it constant, which says nothing, as the network's imputer (keep_empty_features) does.
        features[:, np.isnan(features[train]).all(0)] = 0.0
        model = HistGradientBoostingRegressor(categorical_features=mask if mask.any() else None, random_state=seed)
        with threadpool_limits(threads):
            model.fit(features[train], log_target[train])
            scores.append(log_rmse(model.predict(features[held_out]), log_target[held_out]))
    return {"model": "scikit-learn HistGradientBoostingRegressor (defaults), same folds and features",
            "log_rmse": float(np.mean(scores)), "fold_log_rmse": scores,
            "fit_seconds": round(time.perf_counter() - started, 3)}
