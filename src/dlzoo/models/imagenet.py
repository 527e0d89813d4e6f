"""Networks that start from torchvision's ImageNet weights: transfer learning, as the curriculum fine-tunes a
ResNet-18 to tell hot dogs from other food. `resnet18-imagenet` is torchvision's ResNet-18 (the ImageNet layout,
not the book's Fashion-MNIST `resnet18`) with a new last layer for the data's classes; the FCN (`fcn`) reads the
same backbone.

The weights are downloaded once into torch's cache ($TORCH_HOME) by `imagenet_resnet18_weights`, for training only:
a trained run's checkpoint holds all its weights. ImageNet's normalisation is the networks' first step, so they take
RGB pictures in [0, 1], as every dlzoo network does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dlzoo.errors import UserError
from dlzoo.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def torchvision_weights(weights: Any, network: str, otherwise: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision's `weights` (an enum member such as ResNet18_Weights.IMAGENET1K_V1),
    downloaded on first use into $TORCH_HOME; a UserError in one line when they cannot be had, saying where to put
    the file by hand or what to do `otherwise`."""
    try:
        return weights.get_state_dict(progress=False)  # torch.hub says "Downloading: URL to FILE" on stdout
    except OSError as error:  # URLError is an OSError: offline, or the server refused
        file = weights.url.rsplit("/", 1)[-1]
        raise UserError(f"cannot get torchvision's ImageNet weights for {network} ({error}); put {file} in "
                        f"$TORCH_HOME/hub/checkpoints/ or {otherwise}") from None


def imagenet_resnet18_weights() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights of ResNet-18 (IMAGENET1K_V1), downloaded on first use."""
    from torchvision.models import ResNet18_Weights

    return torchvision_weights(ResNet18_Weights.IMAGENET1K_V1, "ResNet-18", "set model.pretrained=false")


class Normalize(nn.Module):
    """(x - mean) / std per channel: ImageNet's statistics for RGB, a plain centring for other channel counts."""

    def __init__(self, channels: int):
        super().__init__()
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.25,) * channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


def torchvision_resnet18(in_channels: int) -> nn.Module:
    """torchvision's ResNet-18 without weights, its first conv reading `in_channels`."""
    from torchvision.models import resnet18

    backbone = resnet18(weights=None)
    if in_channels != 3:
        backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return backbone


def load_backbone_weights(module: nn.Module, in_channels: int) -> None:
    """ImageNet's ResNet-18 weights into the children of `module` that carry torchvision's names (conv1, layer1,
    ...); the others (a new head) keep their initialisation."""
    if in_channels != 3:
        raise UserError("model.pretrained needs RGB pictures (data.colour=true): the ImageNet weights read 3 "
                        "channels")
    children = dict(module.named_children())
    kept = {key: value for key, value in imagenet_resnet18_weights().items()
            if key.split(".")[0] in children and not key.startswith("fc.")}  # ImageNet's 1,000 classes stay out
    unset = [key for key in module.load_state_dict(kept, strict=False).missing_keys if not key.startswith("fc.")]
    if unset:  # a layout torchvision's names do not cover: a bug here, not the user's
        raise RuntimeError(f"ImageNet weights left parts of the backbone unset: {unset[:3]}")


class ImageNetResNet18(nn.Module):
    """torchvision's ResNet-18, a new `fc` for `num_classes`: pictures (N, C, H, W) in [0, 1] to logits."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.normalize = Normalize(in_channels)
        self.network = torchvision_resnet18(in_channels)
        self.network.fc = nn.Linear(self.network.fc.in_features, num_classes)
        nn.init.xavier_uniform_(self.network.fc.weight)  # the curriculum's initialisation of the new layer

    def head_parameters(self) -> list[nn.Parameter]:
        """The layer made new for the data, which `model.head_lr_scale` trains faster than the pretrained rest."""
        return list(self.network.fc.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.normalize(images))

    def load_imagenet_weights(self) -> None:
        load_backbone_weights(self.network, self.in_channels)


@register_model("resnet18-imagenet", input_size=(3, 224, 224))
def resnet18_imagenet(num_classes: int, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 with a new head; model.pretrained=true starts it from ImageNet's weights."""
    return ImageNetResNet18(num_classes, in_channels)


resnet18_imagenet.transfers = True  # it has load_imagenet_weights and head_parameters (ImageClassification asks)
