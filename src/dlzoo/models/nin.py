"""Network in Network (Lin et al., 2013) as the book builds it: each block is a conv followed by two 1x1 convs
(a per-pixel MLP), and the last block outputs one channel per class, averaged over the image: no linear layer."""

from __future__ import annotations

from torch import nn

from dlzoo.models.layers import xavier_init
from dlzoo.models.registry import register_model


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
              last_relu: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 1), *([nn.ReLU(inplace=True)] if last_relu else []),
    )


@register_model("nin", input_size=(1, 224, 224))
def nin(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5, final_relu: bool = True) -> nn.Module:
    """NiN as in the book: 4 NiN blocks (11x11/4, 5x5, 3x3, 3x3), max-pools, dropout, global average pool; 224 px.

    `final_relu=False` drops the ReLU on the class scores. The book keeps it, and with it a class whose score
    channel goes negative on every image gets no gradient again: in this project's 10-epoch run at the book's
    settings two classes' scores were 0 on every test image (docs/classic.md)."""
    return xavier_init(nn.Sequential(
        nin_block(in_channels, 96, 11, 4, 0), nn.MaxPool2d(3, 2),     # 224 -> 54 -> 26
        nin_block(96, 256, 5, 1, 2), nn.MaxPool2d(3, 2),              # 26 -> 12
        nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, 2),             # 12 -> 5
        nn.Dropout(dropout),
        nin_block(384, num_classes, 3, 1, 1, last_relu=final_relu),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ))
