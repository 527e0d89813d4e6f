"""Digit classifiers for 28x28 grey images: the curriculum's CNN and dlzoo's faster, more accurate one."""

from __future__ import annotations

from torch import nn

from dlzoo.models.layers import Normalize, conv_bn_relu, require_positive
from dlzoo.models.registry import register_model

# Mean and std of MNIST pixels in [0, 1] (mnist5k training set: 0.131, 0.308; full MNIST: 0.1307, 0.3081).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


@register_model("digits-classic")
def digits_classic(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Module:
    """The curriculum's digit CNN: two conv5x5+BN+ReLU+max-pool blocks, dropout, one linear layer."""
    return nn.Sequential(
        Normalize(MNIST_MEAN * in_channels, MNIST_STD * in_channels),
        nn.Conv2d(in_channels, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * 7 * 7, num_classes),
    )


@register_model("digits-net")
def digits_net(num_classes: int = 10, in_channels: int = 1, width: int = 16, dropout: float = 0.2) -> nn.Module:
    """dlzoo's digit CNN: three conv3x3+BN+ReLU stages of doubling width, each max-pooled, then dropout+linear."""
    require_positive(width=width)
    return nn.Sequential(
        Normalize(MNIST_MEAN * in_channels, MNIST_STD * in_channels),
        *conv_bn_relu(in_channels, width), nn.MaxPool2d(2),           # 28 -> 14
        *conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),             # 14 -> 7
        *conv_bn_relu(2 * width, 4 * width), nn.MaxPool2d(2),         # 7 -> 3
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width * 3 * 3, num_classes),
    )
