"""Preprocessing fitted per model "slot", on that slot's training rows only.

A k-fold run trains one model per fold side by side (see `model.py`); slot k is fold k's model, and an optional
last slot is the refit on every row. Each slot gets its own statistics, fitted with scikit-learn on the rows it
trains on, so no held-out row ever leaks into the numbers its model is judged with:
- numeric columns: median imputation, then the values, their signed log1p (areas and prices are skewed) or both,
  then standardisation;
- the target: log price, standardised so that the network starts near the answer;
- categorical columns: a vocabulary of the categories seen at least `min_count` times. Index 0 of every column is
  "unknown": categories the slot never saw, and rare ones, so that the unknown embedding is trained on real
  (rare) houses rather than left at its initial value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pandas is imported where used: every command loads this module, and `dlzoo list` stays light
    import pandas as pd


def signed_log(x: torch.Tensor) -> torch.Tensor:
    """log1p of the magnitude, keeping the sign: tames long right tails (areas, prices) and is defined everywhere."""
    return x.sign() * x.abs().log1p()


def expand_numeric(filled: torch.Tensor, transform: str) -> torch.Tensor:
    """The numeric inputs a model standardises: the imputed values (raw), their signed logs (log), or both."""
    if transform == "raw":
        return filled
    if transform == "log":
        return signed_log(filled)
    return torch.cat([filled, signed_log(filled)], dim=-1)


def expanded_width(columns: int, transform: str) -> int:
    return columns * (2 if transform == "both" else 1)


@dataclass
class SlotStatistics:
    medians: np.ndarray  # (slots, numeric columns)
    means: np.ndarray  # (slots, expanded numeric columns)
    scales: np.ndarray
    target_mean: np.ndarray  # (slots,) of the log target
    target_scale: np.ndarray
    vocabularies: list[dict[str, list[str]]]  # per slot: column -> known categories (index 1 onwards)


def fit_vocabulary(values: pd.Series, min_count: int) -> list[str]:
    counts = values.value_counts()
    return sorted(counts.index[counts >= min_count].tolist())


def fit_slots(numbers: np.ndarray, categories: pd.DataFrame, log_target: np.ndarray, train_rows: np.ndarray,
              min_count: int, transform: str) -> SlotStatistics:
    """Statistics of every slot from its training rows alone; `train_rows` is a (slots, rows) boolean mask."""
    from sklearn.impute import SimpleImputer  # imported when used: every command loads the housing task
    from sklearn.preprocessing import StandardScaler

    medians, means, scales, target_mean, target_scale, vocabularies = [], [], [], [], [], []
    width = expanded_width(numbers.shape[1], transform)
    for rows in train_rows:
        if numbers.shape[1]:
            # keep_empty_features: a column empty in this slot's rows stays (imputed with 0) so shapes agree.
            imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(numbers[rows])
            filled = torch.from_numpy(imputer.transform(numbers[rows]).astype(np.float32))
            scaler = StandardScaler().fit(expand_numeric(filled, transform).numpy())
            medians.append(imputer.statistics_)
            means.append(scaler.mean_)
            scales.append(scaler.scale_)
        else:
            medians.append(np.zeros(0))
            means.append(np.zeros(width))
            scales.append(np.ones(width))
        target = log_target[rows]
        target_mean.append(target.mean())
        target_scale.append(max(float(target.std()), 1e-6))
        vocabularies.append({column: fit_vocabulary(categories.loc[rows, column], min_count)
                             for column in categories.columns})
    stack = lambda items: np.stack(items).astype(np.float32)  # noqa: E731
    return SlotStatistics(stack(medians), stack(means), stack(scales), np.array(target_mean, dtype=np.float32),
                          np.array(target_scale, dtype=np.float32), vocabularies)


def block_sizes(vocabularies: list[dict[str, list[str]]], columns: list[str]) -> list[int]:
    """Rows each column needs in a slot's embedding table: the unknown index plus its largest vocabulary."""
    return [1 + max(len(vocabulary[column]) for vocabulary in vocabularies) for column in columns]


def block_offsets(sizes: list[int]) -> np.ndarray:
    """Where each category column's block starts in a slot's embedding table: the sum of the blocks before it."""
    return np.cumsum([0, *sizes[:-1]])[: len(sizes)]


def encode_categories(categories: pd.DataFrame, vocabularies: list[dict[str, list[str]]],
                      sizes: list[int]) -> np.ndarray:
    """(rows, slots, columns) int64 indices into one slot's table: column j's block starts at sum(sizes[:j]);
    0 within a block is unknown."""
    import pandas as pd

    offsets = block_offsets(sizes)
    codes = np.empty((len(categories), len(vocabularies), len(categories.columns)), dtype=np.int64)
    for s, vocabulary in enumerate(vocabularies):
        for j, column in enumerate(categories.columns):
            # get_indexer gives -1 for values outside the vocabulary: +1 makes that the block's unknown index.
            known = pd.Index(vocabulary[column]).get_indexer(categories[column])
            codes[:, s, j] = offsets[j] + known + 1
    return codes


def known_categories(vocabularies: list[dict[str, list[str]]], columns: list[str]) -> dict[str, list[str]]:
    """Per column, every category some slot's vocabulary knows, sorted: one list to encode a row by, for all slots."""
    return {column: sorted(set().union(*(vocabulary[column] for vocabulary in vocabularies))) for column in columns}


def code_translation(known: dict[str, list[str]], vocabularies: list[dict[str, list[str]]],
                     sizes: list[int]) -> np.ndarray:
    """(slots, columns, longest + 1) int64: code u of column j (1 + its place in `known`, 0 unknown) -> the index in
    slot s's table that `encode_categories` gives the same text. Past a column's own list it is that block's unknown."""
    import pandas as pd

    offsets, columns = block_offsets(sizes), list(known)
    table = np.empty((len(vocabularies), len(columns), 1 + max(map(len, known.values()), default=0)), dtype=np.int64)
    for s, vocabulary in enumerate(vocabularies):
        for j, column in enumerate(columns):
            table[s, j, :] = offsets[j]  # unknown, also for the padding past this column's list
            in_slot = pd.Index(vocabulary[column]).get_indexer(known[column])
            table[s, j, 1:1 + len(in_slot)] = offsets[j] + in_slot + 1
    return table


def unseen_categories(categories: pd.DataFrame, vocabularies: list[dict[str, list[str]]]) -> list[list[str]]:
    """For each row, `column=value` for the values that none of the given vocabularies knows."""
    unseen: list[list[str]] = [[] for _ in range(len(categories))]
    for column, known in known_categories(vocabularies, list(categories.columns)).items():
        values = categories[column].to_numpy()
        for row in np.flatnonzero(~categories[column].isin(known).to_numpy()):
            unseen[row].append(f"{column}={values[row]}")
    return unseen
