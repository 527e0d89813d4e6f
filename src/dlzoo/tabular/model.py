"""K regressors trained side by side in one module: the k-fold models of one run, as batched tensors.

Every parameter has a leading "slot" dimension (slot k = the model of fold k, plus an optional refit slot), and
each slot carries its own preprocessing statistics as buffers. One forward pass feeds a batch of rows to every
slot with batched matrix products, so K-fold cross-validation costs about one model's training time on a CPU, runs
through the one engine, and lands in one checkpoint that `predict` needs nothing beyond.

    linear:  price = w . numeric + sum over columns of w[category] + b        (one-hot regression, as a lookup)
    mlp:     price = MLP([numeric, embedding(category) per column])  (+ the linear term above when `wide`)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.tabular.preprocess import SlotStatistics, block_offsets, expand_numeric, expanded_width


class BatchedLinear(nn.Module):
    """`slots` independent linear layers at once: (slots, batch, in) -> (slots, batch, out)."""

    def __init__(self, slots: int, in_features: int, out_features: int):
        super().__init__()
        self.slots, self.out_features = slots, out_features
        bound = 1 / math.sqrt(max(in_features, 1))  # nn.Linear's default initialisation, per slot
        self.weight = nn.Parameter(torch.empty(slots, in_features, out_features).uniform_(-bound, bound))
        # Stored flat (1-d) so that the optimizer's rule "no weight decay on 1-d parameters" applies to biases.
        self.bias = nn.Parameter(torch.zeros(slots * out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.view(self.slots, 1, self.out_features), x, self.weight)


class FoldEnsembleRegressor(nn.Module):
    def __init__(self, slots: int, numeric: int, indicator_columns: list[int], transform: Literal["raw", "log", "both"],
                 category_sizes: list[int], embedding_dim: int = 0, hidden: Sequence[int] = (), dropout: float = 0.0,
                 wide: bool = True, clip: float | None = None):
        super().__init__()
        if not wide and not hidden:
            raise ValueError("a model needs the linear (wide) part, hidden layers, or both")
        self.slots, self.transform, self.dropout, self.clip = slots, transform, dropout, clip
        self.categories = len(category_sizes)
        self.table_size = sum(category_sizes)
        features = expanded_width(numeric, transform)
        # Preprocessing fitted on each slot's training rows (filled in by `set_statistics`, saved with the weights).
        self.register_buffer("medians", torch.zeros(slots, numeric))
        self.register_buffer("means", torch.zeros(slots, features))
        self.register_buffer("scales", torch.ones(slots, features))
        self.register_buffer("target_mean", torch.zeros(slots))
        self.register_buffer("target_scale", torch.ones(slots))
        self.register_buffer("indicator_columns", torch.tensor(indicator_columns, dtype=torch.long))
        self.register_buffer("slot_offsets", torch.arange(slots).view(slots, 1, 1) * self.table_size)
        inputs = features + len(indicator_columns)

        # Index 0 of each column's block is "unknown"; it starts at zero, i.e. no opinion about the price.
        unknown = torch.from_numpy(block_offsets(category_sizes)).long()
        unknown_rows = (torch.arange(slots).view(slots, 1) * self.table_size + unknown).flatten()
        self.wide = wide
        if wide:
            self.wide_numeric = BatchedLinear(slots, inputs, 1)
            self.wide_categories = nn.Parameter(torch.zeros(slots * self.table_size, 1))
        self.deep = bool(hidden)
        if self.deep:
            embeddings = torch.randn(slots * self.table_size, embedding_dim) * 0.1
            embeddings[unknown_rows] = 0
            self.embeddings = nn.Parameter(embeddings)
            widths = [inputs + self.categories * embedding_dim, *hidden]
            self.hidden = nn.ModuleList(BatchedLinear(slots, widths[i], widths[i + 1]) for i in range(len(hidden)))
            self.head = BatchedLinear(slots, widths[-1], 1)

    @torch.no_grad()
    def set_statistics(self, stats: SlotStatistics) -> None:
        for name in ("medians", "means", "scales", "target_mean", "target_scale"):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(getattr(stats, name)).to(buffer))

    def numeric_inputs(self, numeric: torch.Tensor) -> torch.Tensor:
        """(batch, columns) raw numbers with NaN -> (slots, batch, inputs), with each slot's own statistics."""
        missing = numeric.isnan()
        filled = torch.where(missing, self.medians[:, None, :], numeric)
        x = (expand_numeric(filled, self.transform) - self.means[:, None, :]) / self.scales[:, None, :]
        if self.clip is not None:
            x = x.clamp(-self.clip, self.clip)
        if len(self.indicator_columns):
            flags = missing[:, self.indicator_columns].to(x.dtype)
            x = torch.cat([x, flags.expand(self.slots, -1, -1)], dim=-1)
        return x

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Rows' numbers (batch, columns) and category codes (batch, slots, columns) -> log targets (slots, batch)."""
        x = self.numeric_inputs(numeric)
        rows = codes.permute(1, 0, 2) + self.slot_offsets  # each slot looks up its own part of the tables
        out = x.new_zeros(self.slots, numeric.shape[0])  # shape, not len(): export keeps the batch dynamic
        # A table without category columns looks nothing up (an ONNX graph cannot reshape a dynamic batch to zero
        # columns).
        if self.wide:
            out = out + self.wide_numeric(x).squeeze(-1)
            if self.categories:
                out = out + _lookup(self.wide_categories, rows).sum((-1, -2))
        if self.deep:
            h = torch.cat([x, _lookup(self.embeddings, rows).flatten(-2)], dim=-1) if self.categories else x
            for layer in self.hidden:
                h = F.dropout(F.silu(layer(h)), self.dropout, self.training)
            out = out + self.head(h).squeeze(-1)
        return self.target_mean[:, None] + self.target_scale[:, None] * out


def _lookup(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`table[rows]`: index_select's backward is about 3x faster on a CPU than F.embedding's (torch 2.x)."""
    return table.index_select(0, rows.flatten()).view(*rows.shape, table.shape[-1])


class PriceProgram(nn.Module):
    """What `predict` computes, as one module for `dlzoo export`: rows' numbers (batch, numeric columns; NaN for an
    empty cell) and category codes (batch, category columns; 1 + the text's place in the column's list of known
    categories, 0 for any other) in, prices (batch,) out: exp of the final slots' mean log prediction."""

    def __init__(self, net: FoldEnsembleRegressor, final_slots: list[int], translation: np.ndarray):
        super().__init__()
        self.net = net
        self.register_buffer("final_slots", torch.tensor(final_slots, dtype=torch.long))
        # (slots, columns, codes): each slot's own table index for a code (`preprocess.code_translation`).
        self.register_buffer("translation", torch.from_numpy(translation))

    def forward(self, numbers: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        # A code past every list reads as unknown, as a text no slot knows does, rather than failing in a lookup.
        codes = torch.where((codes >= 0) & (codes < self.translation.shape[-1]), codes, 0)
        columns = torch.arange(codes.shape[1], device=codes.device)
        slot_codes = self.translation[:, columns, codes]  # (slots, batch, columns)
        log_prices = self.net(numbers, slot_codes.permute(1, 0, 2))
        return log_prices.index_select(0, self.final_slots).mean(0).exp()
