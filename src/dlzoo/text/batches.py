"""Training batches of texts of similar length.

Reviews run from 3 to 1,800 words; a batch drawn at random is padded to its longest text, and an LSTM reads the
padding too (half to three quarters of its steps, on these reviews). Each epoch's shuffled order is cut into pools
of `pool` batches, each pool sorted by length and cut into batches, and the batches shuffled: a batch holds texts of
about one length, yet its members and the order of batches still change every epoch.

The order is a function of (seed, epoch), as for `TensorLoader`; under torchrun each rank takes its equal share of
the shuffled texts first, so that every rank runs the same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from dlzoo.text.tokens import trim


class LengthBatches:
    """Batches of `ids` (texts, padded) and of `others` alongside (labels; or per-token tensors such as segment
    ids, cut to the batch's longest text as the ids are, unless `cut_others` is false: a translation's targets)."""

    def __init__(self, ids: torch.Tensor, *others: torch.Tensor, batch_size: int, drop_last: bool, seed: int,
                 rank: int = 0, world_size: int = 1, pool: int = 50, cut_others: bool = True):
        self.ids, self.others, self.cut_others = ids, others, cut_others
        self.lengths = (ids != 0).sum(1).cpu()
        self.batch_size, self.drop_last, self.pool = batch_size, drop_last, pool
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.per_rank = len(ids) // world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank // self.batch_size if self.drop_last else -(-self.per_rank // self.batch_size)

    def batches(self) -> list[torch.Tensor]:
        """This epoch's batches of sample indices, in the order they are trained."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.ids), generator=generator)[self.rank::self.world_size][: self.per_rank]
        batches = []
        for start in range(0, len(order), self.pool * self.batch_size):
            members = order[start: start + self.pool * self.batch_size]
            members = members[torch.argsort(self.lengths[members], stable=True)]
            batches += list(members.split(self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()  # the one short batch: the last pool's remainder
        return [batches[i] for i in torch.randperm(len(batches), generator=generator)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for index in self.batches():
            index = index.to(self.ids.device)
            ids = trim(self.ids[index])
            yield ids, *(other[index, : ids.shape[1]] if other.dim() == 2 and self.cut_others else other[index]
                         for other in self.others)
