"""GoogLeNet (Szegedy et al., 2014) as the book builds it for 96x96 Fashion-MNIST: a conv stem and nine Inception
blocks, each running 1x1, 3x3, 5x5 convs and a max-pool side by side and concatenating them.

Optionally with the paper's two auxiliary classifiers (after Inception 4a and 4d): in training mode the model then
returns (main, aux1, aux2) logits, which `classification_loss` combines with the aux losses weighted by
`aux_weight` (0.3); in eval mode it returns the main logits alone, so evaluation and prediction are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import xavier_init
from dlzoo.models.registry import register_model


# A fresh module at every place rather than one shared instance, so hooks and print(model) see each place once.
def relu() -> nn.ReLU:
    return nn.ReLU(inplace=True)


def pool() -> nn.MaxPool2d:  # 3x3 max-pool, stride 2: halves the map
    return nn.MaxPool2d(3, stride=2, padding=1)


class Inception(nn.Module):
    """Four parallel paths whose outputs are concatenated along channels: c1 + c2[1] + c3[1] + c4 channels out."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.path1 = nn.Sequential(nn.Conv2d(in_channels, c1, 1), relu())
        self.path2 = nn.Sequential(nn.Conv2d(in_channels, c2[0], 1), relu(),
                                   nn.Conv2d(c2[0], c2[1], 3, padding=1), relu())
        self.path3 = nn.Sequential(nn.Conv2d(in_channels, c3[0], 1), relu(),
                                   nn.Conv2d(c3[0], c3[1], 5, padding=2), relu())
        self.path4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(in_channels, c4, 1), relu())
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.path1(x), self.path2(x), self.path3(x), self.path4(x)], dim=1)


class AuxClassifier(nn.Sequential):
    """The paper's side head: average-pool to 4x4, 1x1 conv to 128, 1024-wide FC, dropout 0.7, classes.

    The paper pools 14x14 maps with a 5x5/3 window to 4x4; at 96 px the maps are 6x6, so the pool is adaptive.
    """

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(4), nn.Conv2d(in_channels, 128, 1), nn.ReLU(inplace=True), nn.Flatten(),
            nn.Linear(128 * 4 * 4, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7), nn.Linear(1024, num_classes),
        )


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, aux_logits: bool = False):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), relu(), pool(),             # 96 -> 48 -> 24
            nn.Conv2d(64, 64, 1), relu(), nn.Conv2d(64, 192, 3, padding=1), relu(), pool(),   # 24 -> 12
        )
        self.stage3 = nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32),
                                    Inception(256, 128, (128, 192), (32, 96), 64), pool())  # 12 -> 6
        self.inception4a = Inception(480, 192, (96, 208), (16, 48), 64)
        self.inception4bcd = nn.Sequential(Inception(512, 160, (112, 224), (24, 64), 64),
                                           Inception(512, 128, (128, 256), (24, 64), 64),
                                           Inception(512, 112, (144, 288), (32, 64), 64))
        self.inception4e_to_5b = nn.Sequential(Inception(528, 256, (160, 320), (32, 128), 128), pool(),  # 6 -> 3
                                               Inception(832, 256, (160, 320), (32, 128), 128),
                                               Inception(832, 384, (192, 384), (48, 128), 128),
                                               nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(1024, num_classes)
        self.aux1 = AuxClassifier(512, num_classes) if aux_logits else None
        self.aux2 = AuxClassifier(528, num_classes) if aux_logits else None
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.inception4a(self.stage3(self.stem(x)))
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4bcd(x)
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        logits = self.fc(self.inception4e_to_5b(x))
        if aux1 is not None:
            return logits, aux1, aux2
        return logits


@register_model("googlenet", input_size=(1, 96, 96))
def googlenet(num_classes: int = 10, in_channels: int = 1, aux_logits: bool = False) -> nn.Module:
    """GoogLeNet as in the book: conv stem + 9 Inception blocks + global pool; aux_logits adds the paper's 2 heads."""
    return GoogLeNet(num_classes, in_channels, aux_logits)
