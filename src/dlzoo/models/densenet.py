"""DenseNet (Huang et al., 2017) as the book builds it: in a dense block every BN-ReLU-conv layer sees the
concatenation of all earlier outputs; transition layers (1x1 conv + 2x2 average pool) halve channels and size."""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import require_positive, xavier_init
from dlzoo.models.registry import register_model


def bn_relu_conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


class DenseBlock(nn.Module):
    """`num_convs` layers, each adding `growth_rate` channels: in_channels + num_convs * growth_rate channels out."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int):
        super().__init__()
        self.layers = nn.ModuleList(bn_relu_conv(in_channels + i * growth_rate, growth_rate) for i in range(num_convs))
        self.out_channels = in_channels + num_convs * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


def transition(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(*bn_relu_conv(in_channels, out_channels, kernel_size=1), nn.AvgPool2d(2))


@register_model("densenet", input_size=(1, 96, 96))
def densenet(num_classes: int = 10, in_channels: int = 1, growth_rate: int = 32,
             block_sizes: tuple[int, ...] = (4, 4, 4, 4)) -> nn.Module:
    """The book's DenseNet: ResNet stem, 4 dense blocks of 4 convs (growth 32), halving transitions; 96 px."""
    require_positive(growth_rate=growth_rate, block_sizes=block_sizes)
    channels = 64
    body: list[nn.Module] = [nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64),
                             nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
    for i, num_convs in enumerate(block_sizes):
        block = DenseBlock(num_convs, channels, growth_rate)
        body.append(block)
        channels = block.out_channels
        if i != len(block_sizes) - 1:
            body.append(transition(channels, channels // 2))
            channels //= 2
    return xavier_init(nn.Sequential(
        *body, nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(channels, num_classes),
    ))
