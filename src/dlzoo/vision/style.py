"""Neural style transfer (Gatys, Ecker & Bethge, 2016) as the curriculum teaches it: one picture is optimised, pixel
by pixel, until a VGG-19's features of it match those of a content picture at one deep layer, and the Gram matrices
(the correlations between a layer's channels, blind to where things are) match those of a style picture at five
layers from shallow to deep; a total-variation term keeps neighbouring pixels alike.

Losses and settings are the curriculum's (Dive into Deep Learning, "Neural Style Transfer"): mean squared errors;
weights 1, 1e3 and 10; Adam at 0.3 on the picture in ImageNet's normalised units, the rate times 0.8 every 50
steps, 500 steps from the content picture. So are its layers, named for what they are: its code keeps the outputs
of VGG-19's convolutions conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (style) and conv4_4 (content), which
torchvision's in-place ReLUs then rectify, all but conv5_1's, cut off as the last layer kept. dlzoo keeps the ReLUs'
outputs by name, as Gatys et al. did, relu5_1 included.

The features: torchvision's VGG-19 with ImageNet weights (downloaded once into $TORCH_HOME), the same weights from a
file, or an untrained VGG-19 for a machine without them, its layers scaled to unit variance on the content picture
(`calibrate`). Random filters still measure colours and local textures (Ustyuzhaninov et al., 2017, "What does it
take to generate natural textures?"), not the strokes and shapes ImageNet features see: a sketch of the method, not
its results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dlzoo.errors import UserError, stop_if_interrupted
from dlzoo.models.imagenet import IMAGENET_MEAN, IMAGENET_STD, torchvision_weights

# Indices in VGG-19's `features` (torchvision's layout: convolution, ReLU, ..., max-pooling).
CONTENT_LAYERS = (26,)
STYLE_LAYERS = (1, 6, 11, 20, 29)
LAYER_NAMES = {1: "relu1_1", 6: "relu2_1", 11: "relu3_1", 20: "relu4_1", 26: "relu4_4", 29: "relu5_1"}
# VGG-19 halves a picture four times before conv5_1: a smaller one has no pixels left there.
MIN_SIDE = 32


@dataclass(frozen=True)
class StyleSettings:
    steps: int = 500
    lr: float = 0.3
    decay_every: int = 50  # steps between the rate's cuts
    decay: float = 0.8
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 10.0


@dataclass(frozen=True)
class StyleLosses:
    """The weighted terms of one step's loss, and their sum."""

    content: float
    style: float
    tv: float

    @property
    def total(self) -> float:
        return self.content + self.style + self.tv


class StyleFeatures(nn.Module):
    """VGG-19's convolutional trunk up to conv5_1, frozen: a picture in ImageNet's normalised units (1, 3, H, W) to
    the feature maps of the content and style layers, by layer index."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        # torchvision's own builder of VGG-19's convolutions, without the classifier's 120M parameters
        from torchvision.models.vgg import cfgs, make_layers

        super().__init__()
        self.layers = make_layers(cfgs["E"])[: max(CONTENT_LAYERS + STYLE_LAYERS) + 1]
        if weights is not None:
            self.layers.load_state_dict(weights)
        else:  # torchvision's initialisation of an untrained VGG
            for layer in self.layers:
                if isinstance(layer, nn.Conv2d):
                    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(layer.bias)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        maps = {}
        for index, layer in enumerate(self.layers):
            images = layer(images)
            if index in LAYER_NAMES:
                maps[index] = images
        return maps

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Scale each convolution so that its output has unit variance on `images`. An untrained VGG-19's layers,
        initialised for classification, leave feature maps whose sizes drift from layer to layer by orders of
        magnitude, and the losses' fixed weights would weigh one layer alone (LSUV's idea, Mishkin & Matas, 2016)."""
        for layer in self.layers:
            output = layer(images)
            if isinstance(layer, nn.Conv2d):
                scale = output.std().clamp_min(1e-8)  # before the ReLU, whose output is ~0.58 then
                layer.weight /= scale
                layer.bias /= scale
                output = layer(images)
            images = output


def vgg19_features(source: str, seed: int = 0) -> StyleFeatures:
    """The feature network: `imagenet` (torchvision's weights, downloaded on first use), `random` (untrained, drawn
    from `seed`; `calibrate` it before use), or the path of a file of VGG-19 weights (.pth or .safetensors)."""
    if source == "random":
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            torch.manual_seed(seed)
            return StyleFeatures()
    if source == "imagenet":
        return StyleFeatures(_trunk(_imagenet_vgg19_weights(), "torchvision's ImageNet weights"))
    return StyleFeatures(_trunk(_read_weights(Path(source)), str(source)))


def _imagenet_vgg19_weights() -> dict[str, torch.Tensor]:
    from torchvision.models import VGG19_Weights

    return torchvision_weights(VGG19_Weights.IMAGENET1K_V1, "VGG-19",
                               "give the file's path to --features, or use --features random")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"--features {path}: no such file (give imagenet, random, or a file of VGG-19 weights)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- pickle, zip and safetensors each fail in their own way
        reason = (str(error).splitlines() or [type(error).__name__])[0]  # torch's own run to paragraphs
        raise UserError(f"cannot read VGG-19 weights from {path}: {reason}") from None
    if not isinstance(weights, dict):
        raise UserError(f"{path} holds a {type(weights).__name__}, not a state dict of VGG-19 weights")
    return weights


def _trunk(weights: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The `features.*` entries of a VGG-19 state dict that the trunk uses, without their prefix, checked against
    the trunk's shapes: another network's weights are a user's mistake, said in one line."""
    expected = _expected_shapes()
    trunk = {key.removeprefix("features."): value for key, value in weights.items() if key.startswith("features.")}
    for key, shape in expected.items():
        if key not in trunk:
            raise UserError(f"{source} does not hold VGG-19's weights: features.{key} is missing")
        if tuple(trunk[key].shape) != shape:
            raise UserError(f"{source} does not hold VGG-19's weights: features.{key} is "
                            f"{tuple(trunk[key].shape)}, VGG-19's is {shape}")
    return {key: trunk[key].float() for key in expected}


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes only: no memory, no random numbers drawn
        return {key: tuple(value.shape) for key, value in StyleFeatures().layers.state_dict().items()}


def gram(maps: torch.Tensor) -> torch.Tensor:
    """The channels' correlations (C, C) of feature maps (1, C, H, W), divided by C*H*W so that pictures of any size
    compare."""
    channels = maps.shape[1]
    flat = maps.reshape(channels, -1)
    return flat @ flat.T / flat.numel()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Half the mean absolute difference between vertical and between horizontal neighbours."""
    vertical = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean()
    horizontal = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean()
    return 0.5 * (vertical + horizontal)


def to_network_units(pictures: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (N, 3, H, W) to ImageNet's normalised units, where the picture is optimised as the curriculum
    does (its learning rate and total-variation weight are in those units)."""
    mean, std = _statistics(pictures)
    return (pictures - mean) / std


def to_picture(images: torch.Tensor) -> torch.Tensor:
    mean, std = _statistics(images)
    return (images * std + mean).clamp(0, 1)


def _statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return mean, std


def stylize(content: torch.Tensor, style: torch.Tensor, features: StyleFeatures,
            settings: StyleSettings = StyleSettings(),
            report: Callable[[int, StyleLosses, float], None] | None = None, report_every: int = 50) -> torch.Tensor:
    """The content picture (3, H, W) in [0, 1] painted in the style of `style` (3, H', W'), on `features`' device;
    `report(step, losses, seconds)` is called every `report_every` steps and after the last."""
    device = next(features.parameters()).device
    # Channels-last convolutions: a step a quarter faster on a CPU (0.96 s -> 0.74 s at 300x450, 2-core Xeon). The
    # targets are computed in the same layout as the picture, or the content loss would not start at exactly 0.
    features.to(memory_format=torch.channels_last)
    content_image = to_network_units(content[None].to(device)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        content_targets = {index: features(content_image)[index] for index in CONTENT_LAYERS}
        style_maps = features(to_network_units(style[None].to(device)))
        style_targets = {index: gram(style_maps[index]) for index in STYLE_LAYERS}
    image = content_image.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=settings.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, settings.decay_every, settings.decay)
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        stop_if_interrupted()
        maps = features(image)
        content_loss = sum(((maps[i] - target) ** 2).mean() for i, target in content_targets.items())
        style_loss = sum(((gram(maps[i]) - target) ** 2).mean() for i, target in style_targets.items())
        terms = (settings.content_weight * content_loss, settings.style_weight * style_loss,
                 settings.tv_weight * total_variation(image))
        optimizer.zero_grad(set_to_none=True)
        sum(terms).backward()
        optimizer.step()
        schedule.step()
        if report is not None and (step % report_every == 0 or step == settings.steps):
            report(step, StyleLosses(*(float(term.detach()) for term in terms)), time.perf_counter() - start)
    return to_picture(image.detach())[0]
