"""Scores of translations: corpus BLEU (torchmetrics' BLEUScore, over every process's sentences) and exact match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime


class TranslationScores:
    """Counts of written against reference token lists, summed over batches and then over processes."""

    def __init__(self, runtime: Runtime, n_gram: int = 4):
        from torchmetrics.text import BLEUScore

        self.runtime = runtime
        self.bleu = BLEUScore(n_gram=n_gram)
        self.exact = 0
        self.count = 0

    def update(self, written: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> None:
        # BLEUScore splits on spaces; tokens hold none (tokenization drops whitespace).
        self.bleu.update([" ".join(tokens) for tokens in written], [[" ".join(tokens)] for tokens in references])
        self.exact += sum(list(a) == list(b) for a, b in zip(written, references, strict=True))
        self.count += len(written)

    def compute(self) -> dict[str, float]:
        """Corpus BLEU-4 (0-1, as n-gram counts of all sentences pooled; not an average of sentence scores) and the
        fraction of translations written exactly as the reference."""
        names = ("numerator", "denominator", "preds_len", "target_len")  # BLEUScore's summable states
        states = [getattr(self.bleu, name) for name in names]
        counts = torch.tensor([self.exact, self.count], dtype=torch.float64)
        flat = torch.cat([*(state.double().reshape(-1).cpu() for state in states), counts])
        flat = self.runtime.all_reduce_sum(flat.to(self.runtime.device)).cpu()
        for name, state, total in zip(names, states, flat[:-2].split([state.numel() for state in states]),
                                      strict=True):
            setattr(self.bleu, name, total.reshape(state.shape).to(state.dtype))
        exact, count = flat[-2:].tolist()
        return {"bleu": float(self.bleu.compute()), "exact": exact / max(count, 1)}
