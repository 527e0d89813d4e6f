"""TinySSD (the curriculum's single-shot multibox detector): a small convolutional base, then blocks that halve the
feature map, and at five scales two 3x3 conv heads: each cell's anchors' class logits (background first) and box
offsets. Anchors of every scale come from `dlzoo.vision.boxes.anchor_boxes`, laid out in the order the heads' outputs
are flattened, so that anchor i, logits i and offsets i belong together.

The curriculum's sizes are for 256 px pictures of bananas; `digit-boxes` reads 64 px canvases whose digits are 19-47%
of the canvas tall, so its recipe sets smaller sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

from dlzoo.models.registry import register_model

CURRICULUM_SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
CURRICULUM_RATIOS = (1.0, 2.0, 0.5)
SCALES = 5


def down_sample_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers, then a 2x2 max pool: half the height and width."""
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class TinySSD(nn.Module):
    """Pictures (N, C, H, W) in [0, 1] to (class logits (N, A, classes + 1), box offsets (N, A, 4)) over the
    anchors `anchors(H, W)` gives (A of them)."""

    def __init__(self, num_classes: int, in_channels: int = 3, sizes: Sequence[Sequence[float]] = CURRICULUM_SIZES,
                 ratios: Sequence[float] = CURRICULUM_RATIOS, width: int = 16):
        super().__init__()
        if len(sizes) != SCALES or any(len(pair) < 1 for pair in sizes) or not ratios:
            raise ValueError(f"sizes holds a list of anchor sizes for each of the {SCALES} scales, and ratios at "
                             f"least one ratio")
        self.sizes = [list(map(float, scale_sizes)) for scale_sizes in sizes]
        self.ratios, self.num_classes = list(map(float, ratios)), num_classes
        base = nn.Sequential(down_sample_block(in_channels, width), down_sample_block(width, 2 * width),
                             down_sample_block(2 * width, 4 * width))
        channels = [4 * width, 8 * width, 8 * width, 8 * width, 8 * width]
        self.blocks = nn.ModuleList([base, down_sample_block(4 * width, 8 * width),
                                     down_sample_block(8 * width, 8 * width), down_sample_block(8 * width, 8 * width),
                                     nn.AdaptiveMaxPool2d(1)])
        per_cell = [len(scale_sizes) + len(self.ratios) - 1 for scale_sizes in self.sizes]
        self.class_heads = nn.ModuleList(nn.Conv2d(c, a * (num_classes + 1), 3, padding=1)
                                         for c, a in zip(channels, per_cell, strict=True))
        self.box_heads = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1)
                                       for c, a in zip(channels, per_cell, strict=True))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, offsets = [], []
        features = images
        for block, class_head, box_head in zip(self.blocks, self.class_heads, self.box_heads, strict=True):
            features = block(features)
            # (N, A_cell * k, H, W) -> (N, H * W * A_cell, k): cell by cell, a cell's anchors together
            logits.append(class_head(features).permute(0, 2, 3, 1).flatten(1))
            offsets.append(box_head(features).permute(0, 2, 3, 1).flatten(1))
        batch = images.shape[0]
        return torch.cat(logits, 1).view(batch, -1, self.num_classes + 1), torch.cat(offsets, 1).view(batch, -1, 4)

    def anchors(self, height: int, width: int) -> torch.Tensor:
        """The anchors (A, 4) of pictures height x width, in the order of `forward`'s outputs."""
        return _anchors(height, width, tuple(map(tuple, self.sizes)), tuple(self.ratios))


@lru_cache(maxsize=16)
def _anchors(height: int, width: int, sizes: tuple[tuple[float, ...], ...], ratios: tuple[float, ...]) -> torch.Tensor:
    from dlzoo.vision.boxes import anchor_boxes  # torchvision: imported where used, not by every command's start

    maps = []
    for _ in range(3):  # the base's three halvings
        height, width = height // 2, width // 2
    for scale in range(SCALES):
        maps.append((height, width))
        height, width = (height // 2, width // 2) if scale < SCALES - 2 else (1, 1)  # the last is a global pool
    return torch.cat([anchor_boxes(h, w, s, ratios) for (h, w), s in zip(maps, sizes, strict=True)])


@register_model("tiny-ssd", input_size=(3, 64, 64), kind="detector")
def tiny_ssd(num_classes: int, in_channels: int = 3, sizes: list[list[float]] | None = None,
             ratios: list[float] | None = None, width: int = 16) -> nn.Module:
    """TinySSD: five scales of anchors, class and box heads on each (the curriculum's detector)."""
    return TinySSD(num_classes, in_channels, sizes or CURRICULUM_SIZES, ratios or CURRICULUM_RATIOS, width)
