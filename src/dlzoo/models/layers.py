"""Small building blocks shared by the model families."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def require_positive(**sizes: int | Sequence[int]) -> None:
    """A model's sizes (widths, latent dims, layers per block) count from 1. Torch builds a layer of width 0 with a
    warning, which fails later with a message about something else, and a negative one deep inside its init."""
    for name, size in sizes.items():
        values = size if isinstance(size, Sequence) else [size]
        if not values:  # no blocks at all: a network of just its stem and head, which is no longer the model named
            raise ValueError(f"{name} must hold at least one size, got {list(size)}")
        if any(value < 1 for value in values):
            raise ValueError(f"{name} must be >= 1, got {size}")


class Normalize(nn.Module):
    """Subtract a per-channel mean and divide by a std, inside the model, so exported and served models take
    images in [0, 1] and carry their own normalisation."""

    def __init__(self, mean: list[float] | tuple[float, ...], std: list[float] | tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def xavier_init(model: nn.Module) -> nn.Module:
    """Xavier-uniform weights for every conv and linear layer, biases left as torch made them: what the book's
    `init_cnn` does for all its classic networks (sigmoid LeNet barely trains from torch's default init)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
    return model
