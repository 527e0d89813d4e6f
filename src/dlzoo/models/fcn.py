"""FCN (Long et al., 2015) as the curriculum builds it: a ResNet-18 without its pooling and classifier, a 1x1 conv
to one channel per class, and a transposed conv that upsamples back to the input size, initialised to bilinear
interpolation (so it starts as plain upsampling and learns from there).

The curriculum reads the backbone's last stage (stride 32): at VOC's 320x480 crops that is a 10x15 map. Small
pictures (`digit-scenes`' 64 px canvases) are read at an earlier stage instead (`stride=8`: after `layer2`), which
keeps an 8x8 map rather than 2x2. Pictures go in as RGB in [0, 1]: the ImageNet normalisation that torchvision's
pretrained weights expect is the network's first step, so an exported model needs no preprocessing but the scale.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from dlzoo.models.imagenet import Normalize, load_backbone_weights, torchvision_resnet18
from dlzoo.models.registry import register_model

# torchvision's ResNet-18 up to each stage, by the stride its output has.
STAGES = {8: ("layer1", "layer2"), 16: ("layer1", "layer2", "layer3"), 32: ("layer1", "layer2", "layer3", "layer4")}
STAGE_CHANNELS = {8: 128, 16: 256, 32: 512}


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Weights (channels, channels, size, size) that make a transposed conv of stride size/2 upsample each channel
    by bilinear interpolation (and mix no channels)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


class FCN(nn.Module):
    """Pictures (N, C, H, W) in [0, 1], H and W multiples of `stride`, to per-pixel logits (N, classes, H, W)."""

    def __init__(self, num_classes: int, in_channels: int = 3, stride: int = 32):
        super().__init__()
        if stride not in STAGES:
            raise ValueError(f"stride must be one of {', '.join(map(str, STAGES))} (where the head reads the "
                             f"backbone), got {stride}")
        backbone = torchvision_resnet18(in_channels)
        self.stride, self.in_channels = stride, in_channels
        self.normalize = Normalize(in_channels)
        # torchvision's own names, so that its pretrained weights load by name (`load_imagenet_weights`).
        names = ("conv1", "bn1", "relu", "maxpool", *STAGES[stride])
        self.features = nn.Sequential(OrderedDict((name, getattr(backbone, name)) for name in names))
        self.classifier = nn.Conv2d(STAGE_CHANNELS[stride], num_classes, kernel_size=1)
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=2 * stride, stride=stride,
                                           padding=stride // 2, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(bilinear_kernel(num_classes, 2 * stride))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.classifier(self.features(self.normalize(images))))

    def load_imagenet_weights(self) -> None:
        """torchvision's ImageNet weights into the backbone; the head starts as it was made. Transfer learning, as
        the curriculum's FCN does."""
        load_backbone_weights(self.features, self.in_channels)


@register_model("fcn", input_size=(3, 64, 64), kind="segmenter")
def fcn(num_classes: int, in_channels: int = 3, stride: int = 32) -> nn.Module:
    """FCN: ResNet-18 features, a 1x1 conv and a bilinear-initialised transposed conv (per-pixel classes)."""
    return FCN(num_classes, in_channels, stride)


fcn.transfers = True  # it has load_imagenet_weights (model.pretrained)
