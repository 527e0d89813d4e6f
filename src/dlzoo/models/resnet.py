"""ResNet (He et al., 2015) as the book builds it: residual blocks of two 3x3 conv+BN layers whose input is added
back, through a 1x1 conv when the shape changes; ResNet-18 with the ImageNet stem, trained at 96 px."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.models.layers import xavier_init
from dlzoo.models.registry import register_model


class Residual(nn.Module):
    """y = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut is a strided 1x1 conv when asked
    (`use_1x1conv`), which it must be whenever the channels or the stride change."""

    def __init__(self, in_channels: int, out_channels: int, use_1x1conv: bool = False, stride: int = 1):
        super().__init__()
        if not use_1x1conv and (in_channels != out_channels or stride != 1):
            raise ValueError("a residual block that changes channels or resolution needs use_1x1conv=True")
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride) if use_1x1conv else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


def resnet_stage(in_channels: int, out_channels: int, num_residuals: int, first: bool = False) -> nn.Sequential:
    """`num_residuals` blocks; all but the first stage halve the resolution and change channels in block one."""
    blocks = []
    for i in range(num_residuals):
        if i == 0 and not first:
            blocks.append(Residual(in_channels, out_channels, use_1x1conv=True, stride=2))
        else:
            blocks.append(Residual(out_channels, out_channels))
    return nn.Sequential(*blocks)


def resnet(stage_sizes: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """A ResNet with the ImageNet stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and 64-128-256-512 stages."""
    widths = (64, 128, 256, 512)
    stages = [resnet_stage(64 if i == 0 else widths[i - 1], widths[i], n, first=i == 0)
              for i, n in enumerate(stage_sizes)]
    return xavier_init(nn.Sequential(
        nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                      nn.MaxPool2d(3, stride=2, padding=1)),
        *stages,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(widths[len(stage_sizes) - 1], num_classes),
    ))


@register_model("resnet18", input_size=(1, 96, 96))
def resnet18(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """ResNet-18 as in the book: ImageNet stem, 4 stages of 2 residual blocks (64-128-256-512), global pool; 96 px."""
    return resnet((2, 2, 2, 2), num_classes, in_channels)
