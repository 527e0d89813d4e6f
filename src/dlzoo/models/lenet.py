"""LeNet-5 (LeCun et al., 1998) as the book builds it for 28x28 Fashion-MNIST, and the book's LeNet with batch norm.

Both keep the 1998 look: sigmoid activations and average pooling. The batch-norm version normalises after every
conv and hidden linear layer and can use the hand-written `BatchNorm` (model.args.scratch_bn=true) in place of
torch's, to show the two train the same.
"""

from __future__ import annotations

from torch import nn

from dlzoo.models.batchnorm import BatchNorm
from dlzoo.models.layers import xavier_init
from dlzoo.models.registry import register_model


@register_model("lenet", input_size=(1, 28, 28))
def lenet(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """LeNet-5 as in the book: conv5x5(pad 2)-sigmoid-avgpool x2, then 120-84-classes sigmoid MLP; 28x28 input."""
    return xavier_init(nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),   # 28 -> 14
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2),                      # 14 -> 10 -> 5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    ))


@register_model("lenet-bn", input_size=(1, 28, 28))
def lenet_bn(num_classes: int = 10, in_channels: int = 1, scratch_bn: bool = False) -> nn.Module:
    """The book's LeNet with batch norm after each conv/hidden linear layer (scratch_bn: the hand-written layer)."""
    norm2d = BatchNorm if scratch_bn else nn.BatchNorm2d
    norm1d = BatchNorm if scratch_bn else nn.BatchNorm1d
    return xavier_init(nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), norm2d(6), nn.Sigmoid(), nn.AvgPool2d(2),   # 28 -> 24 -> 12
        nn.Conv2d(6, 16, 5), norm2d(16), nn.Sigmoid(), nn.AvgPool2d(2),          # 12 -> 8 -> 4
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), norm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), norm1d(84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    ))
