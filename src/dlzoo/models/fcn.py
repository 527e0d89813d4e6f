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

from dlzoo.errors import UserError
from dlzoo.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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
        from torchvision.models import resnet18

        backbone = resnet18(weights=None)
        if in_channels != 3:
            backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.stride = stride
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ((0.5,) * in_channels, (0.25,) * in_channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        # torchvision's own names, so that its pretrained weights load by name (`load_imagenet_weights`).
        names = ("conv1", "bn1", "relu", "maxpool", *STAGES[stride])
        self.features = nn.Sequential(OrderedDict((name, getattr(backbone, name)) for name in names))
        self.classifier = nn.Conv2d(STAGE_CHANNELS[stride], num_classes, kernel_size=1)
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=2 * stride, stride=stride,
                                           padding=stride // 2, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(bilinear_kernel(num_classes, 2 * stride))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.classifier(self.features((images - self.mean) / self.std)))

    def load_imagenet_weights(self) -> None:
        """torchvision's ImageNet weights into the backbone (downloaded once into torch's cache, $TORCH_HOME);
        the head starts as it was made. Transfer learning, as the curriculum's FCN does."""
        if self.features.conv1.in_channels != 3:
            raise UserError("model.pretrained needs RGB pictures: the ImageNet weights read 3 channels")
        from torchvision.models import ResNet18_Weights

        try:
            state = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except OSError as error:  # URLError is an OSError: offline, or the server refused
            raise UserError(f"cannot get torchvision's ImageNet weights for ResNet-18 ({error}); put "
                            f"resnet18-f37072fd.pth in $TORCH_HOME/hub/checkpoints/ or set model.pretrained=false"
                            ) from None
        kept = {key: value for key, value in state.items() if key.split(".")[0] in dict(self.features.named_children())}
        self.features.load_state_dict(kept)


@register_model("fcn", input_size=(3, 64, 64), kind="segmenter")
def fcn(num_classes: int, in_channels: int = 3, stride: int = 32) -> nn.Module:
    """FCN: ResNet-18 features, a 1x1 conv and a bilinear-initialised transposed conv (per-pixel classes)."""
    return FCN(num_classes, in_channels, stride)
