"""Batches drawn from tensors that already sit on the training device: no workers, no per-sample Python.

The order of an epoch is a pure function of (seed, epoch), shared by all ranks, each rank taking every
world_size-th sample of it; so a resumed run sees the same batches as the original, and DDP ranks never overlap.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def drop_short_last(samples: int, batch_size: int, world_size: int = 1) -> bool:
    """Whether training drops an epoch's short last batch. It gives its few samples a whole step's weight (and
    BatchNorm noisy statistics), so it goes, unless the set is so small (`data.limit`) that an epoch would lose
    much; a last batch of one sample after others goes always: BatchNorm cannot train on one value per channel.
    Each rank takes `samples // world_size`, as both loaders shard."""
    per_rank = samples // world_size
    return samples >= 2 * batch_size * world_size or (per_rank > 1 and per_rank % batch_size == 1)


class TensorLoader:
    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorLoader needs tensors of equal length")
        self.tensors = tensors
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        n = len(tensors[0])
        # Training shards are cut to equal size so every rank runs the same number of steps (DDP needs it).
        self.per_rank = n // world_size if shuffle and world_size > 1 else len(range(rank, n, world_size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)

    def _indices(self) -> torch.Tensor:
        n = len(self.tensors[0])
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        order = order[self.rank::self.world_size][: self.per_rank]
        return order.to(self.tensors[0].device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self._indices()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start: start + self.batch_size]
            yield tuple(t[index] for t in self.tensors)
