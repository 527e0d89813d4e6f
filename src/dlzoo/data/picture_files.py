"""Training pictures read from disk every epoch, each augmented on its own by torchvision transforms.v2 in DataLoader
workers (`data.stream=true` with `data.source=folder` or `picture-csv`): for pictures too many to hold in
memory.

Sets that fit in memory (Fashion-MNIST, a folder read once) are batched and augmented on the device instead
(`dlzoo.data.augment`); the same `data.augment` keys drive both. A streamed picture is prepared as the in-memory
path and `dlzoo predict` prepare it (`folder.read_picture`), so a run trains on what it will later be shown.

Each picture's augmentation is drawn from torch's generator seeded for it alone, from (run seed, epoch, index): the
workers persist across epochs and their generators are in no checkpoint, so anything they drew before would make a
resumed run augment differently from the one done in one go.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from dlzoo.data.folder import read_picture
from dlzoo.errors import UserError
from dlzoo.vision.preprocess import ResizePreprocessing

Transform = Callable[[torch.Tensor], torch.Tensor]


class PictureFiles(Dataset):
    """(path, label) pairs as (float (C, H, W) in [0, 1], label), each through `transform` when one is given."""

    def __init__(self, items: list[tuple[Path, int]], prepare: ResizePreprocessing, transform: Transform | None):
        self.items, self.prepare, self.transform = items, prepare, transform

    def __len__(self) -> int:
        return len(self.items)

    def picture(self, index: int) -> torch.Tensor:
        """The picture as the model sees it before augmentation."""
        pixels = torch.from_numpy(read_picture(self.items[index][0], self.prepare)).float().div_(255)
        return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """`key` is an index, or (index, seed) to draw the augmentation from a generator seeded with `seed` (the
        transforms.v2 draw from torch's global one), leaving the caller's generator as it was."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        picture = self.picture(index)
        if self.transform is not None:
            if seed is None:
                picture = self.transform(picture)
            else:
                with torch.random.fork_rng(devices=[]):  # in the training process too, with data.workers=0
                    torch.manual_seed(seed)
                    picture = self.transform(picture)
        return picture, self.items[index][1]


def picture_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one picture's augmentation in one epoch. Mixed into 32 bits by a hash, not packed side by side:
    torch's CPU generator keeps only a seed's low 32 bits."""
    key = f"{seed}/{epoch}/{index}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


class SeededSampler(Sampler[tuple[int, int]]):
    """A `DistributedSampler`'s indices, each as (index, the seed of its augmentation in the sampler's epoch)."""

    def __init__(self, sampler: DistributedSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.sampler:
            yield index, picture_seed(self.sampler.seed, self.sampler.epoch, index)


class FileLoader:
    """A DataLoader over `PictureFiles` that hands the engine batches on the training device.

    The order of an epoch is a function of (seed, epoch) (a `DistributedSampler`, also with one process), each rank
    taking its own equal share, as `TensorLoader` does for in-memory data.
    """

    def __init__(self, files: PictureFiles, batch_size: int, workers: int, device: torch.device, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_last: bool = False):
        # drop_last: every rank takes len // world_size pictures, as TensorLoader's shards (not one padded share).
        self.sampler = DistributedSampler(files, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        # The loader draws its workers' base seed as it starts them, with persistent workers only in the first
        # epoch it runs (a resumed run: a later one): from a generator of its own, so that the draw leaves the
        # training process's (dropout's, saved in checkpoints) alone. The pictures do not use the workers' seeds.
        self.loader = DataLoader(files, batch_size=batch_size, sampler=SeededSampler(self.sampler),
                                 num_workers=workers, drop_last=drop_last, pin_memory=device.type == "cuda",
                                 persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
                                 worker_init_fn=_leave_sigterm_to_the_trainer if workers else None)
        self.device = device

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = iter(self.loader)
        while True:
            try:
                images, labels = next(batches)
            except StopIteration:
                return
            except UserError as error:  # from a worker, its message wrapped in the worker's traceback
                message = str(error).strip().splitlines()[-1].removeprefix("dlzoo.errors.UserError: ")
                raise UserError(message, this_process_only=True) from None  # this rank's share of the pictures
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


def _leave_sigterm_to_the_trainer(worker_id: int) -> None:
    """SIGTERM sent to the whole process group (`timeout`, a job scheduler) would reach the loader's workers too,
    and dead workers make the loader raise while training stops (`dlzoo train` turns SIGTERM into a clean stop).
    So a worker leaves the group: the training process shuts it down (or terminates it), and it exits on its own if
    that process dies. A batch being handed over when the training process goes ends in a reset connection in the
    worker (or a refused or cut one): nothing to report."""
    os.setpgid(0, 0)
    sys.excepthook = _quiet_when_the_trainer_left


def _quiet_when_the_trainer_left(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    if issubclass(kind, (ConnectionError, EOFError)):  # reset, refused, a pipe or a stream cut short
        return
    sys.__excepthook__(kind, error, trace)
