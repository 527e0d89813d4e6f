"""VGG (Simonyan & Zisserman, 2014): blocks of 3x3 convs, each block ending in a 2x2 max-pool, then a 4096-wide
dropout MLP. The architecture is a list of (convs, channels) blocks; the book trains VGG-11 with every conv's
channels divided by 4 (`vgg11-small`) on Fashion-MNIST at 224 px, keeping the full 4096-wide head."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from dlzoo.models.layers import require_positive, xavier_init
from dlzoo.models.registry import register_model

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


def vgg(arch: Sequence[Sequence[int]] = VGG11, num_classes: int = 10, in_channels: int = 1,
        width_divisor: int = 1, hidden: int = 4096, dropout: float = 0.5) -> nn.Sequential:
    """VGG from `arch`, a list of (number of convs, output channels) blocks, channels divided by width_divisor."""
    narrowest = min(width for _, width in arch)
    if narrowest // width_divisor < 1:
        # Torch would build a block of 0 channels with a warning and fail in its first forward (which dlzoo train
        # blames on the resolution), or divide by zero in the Xavier init once every layer is empty.
        raise ValueError(f"width_divisor={width_divisor} leaves the {narrowest}-channel block no channels: at most "
                         f"{narrowest}")
    blocks, channels = [], in_channels
    for num_convs, width in arch:
        blocks.append(vgg_block(num_convs, channels, width // width_divisor))
        channels = width // width_divisor
    return xavier_init(nn.Sequential(
        *blocks,
        # A no-op at 224 px (5 halvings: 7x7); at other sizes it keeps the head's input size.
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(),
        nn.Linear(channels * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    ))


@register_model("vgg11", input_size=(1, 224, 224))
def vgg11(num_classes: int = 10, in_channels: int = 1, width_divisor: int = 1, dropout: float = 0.5) -> nn.Module:
    """VGG-11: 8 convs in 5 blocks (64-128-256x2-512x2-512x2), 4096-4096 dropout MLP; 224 px."""
    require_positive(width_divisor=width_divisor)
    return vgg(VGG11, num_classes, in_channels, width_divisor, dropout=dropout)


@register_model("vgg11-small", input_size=(1, 224, 224))
def vgg11_small(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Module:
    """The book's VGG-11 with conv channels / 4 (16-32-64x2-128x2-128x2), full 4096-wide head; 224 px."""
    return vgg(VGG11, num_classes, in_channels, width_divisor=4, dropout=dropout)
