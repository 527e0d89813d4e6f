"""AlexNet (Krizhevsky et al., 2012) as the book trains it on Fashion-MNIST resized to 224x224: one input channel,
no local response normalisation, 4096-wide dropout MLP head."""

from __future__ import annotations

from torch import nn

from dlzoo.models.layers import xavier_init
from dlzoo.models.registry import register_model


@register_model("alexnet", input_size=(1, 224, 224))
def alexnet(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Module:
    """AlexNet as in the book: 5 convs (11x11/4, 5x5, 3x3 x3) with max-pools, then 4096-4096 dropout MLP; 224 px."""
    return xavier_init(nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),  # 224->54->26
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),                    # 26 -> 12
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),                   # 12 -> 5
        # A no-op at 224 px; at other sizes it keeps the head's 6400 inputs (as torchvision's AlexNet does).
        nn.AdaptiveAvgPool2d(5),
        nn.Flatten(),
        nn.Linear(256 * 5 * 5, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    ))
