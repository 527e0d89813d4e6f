"""`dlzoo stylize CONTENT STYLE --out FILE`: paint a picture in the style of another (neural style transfer, as the
curriculum does it: `dlzoo.vision.style`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from dlzoo.cli import add_device_option, command, seed_number
from dlzoo.errors import UserError

MAX_HEIGHT = 2048  # 2048 x 3072 px already takes VGG-19 some 20 GB of activations to differentiate through
MAX_PAINTED_PIXELS = MAX_HEIGHT * MAX_HEIGHT * 3 // 2  # and as many pixels at most, for a panorama's width


def _positive(kind: type) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            number = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {number}, got {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
        return value

    return parse


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _arguments(parser: argparse.ArgumentParser) -> None:
    from dlzoo.vision.style import StyleSettings

    defaults = StyleSettings()
    parser.add_argument("content", metavar="CONTENT", help="the picture to paint (a photo)")
    parser.add_argument("style", metavar="STYLE", help="the picture whose style to paint it in (a painting)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the painted picture, e.g. painted.png")
    parser.add_argument("--height", type=_positive(int), default=300,
                        help="pixels high the content is painted at, its aspect kept (default 300, the curriculum's; "
                             "the style picture is scaled to the same height)")
    parser.add_argument("--steps", type=_positive(int), default=defaults.steps,
                        help=f"Adam steps on the picture (default {defaults.steps})")
    parser.add_argument("--lr", type=_positive(float), default=defaults.lr,
                        help=f"Adam's learning rate, cut by {defaults.decay} every {defaults.decay_every} steps "
                             f"(default {defaults.lr})")
    parser.add_argument("--content-weight", type=_weight, default=defaults.content_weight,
                        help=f"weight of the content loss (default {defaults.content_weight:g})")
    parser.add_argument("--style-weight", type=_weight, default=defaults.style_weight,
                        help=f"weight of the style loss (default {defaults.style_weight:g})")
    parser.add_argument("--tv-weight", type=_weight, default=defaults.tv_weight,
                        help=f"weight of the total-variation loss, which smooths (default {defaults.tv_weight:g})")
    parser.add_argument("--features", default="imagenet", metavar="SOURCE",
                        help="VGG-19's weights: imagenet (torchvision's, downloaded once; default), a file of them "
                             "(.pth or .safetensors), or random (untrained, scaled to the content: colours and "
                             "textures only, for a machine without the weights)")
    parser.add_argument("--seed", type=seed_number, default=0, help="seed of --features random (default 0)")
    parser.add_argument("--every", type=_positive(int), default=50, metavar="N",
                        help="print the losses every N steps (default 50)")
    add_device_option(parser)


@command("stylize", "paint a picture in the style of another (neural style transfer with VGG-19 features)",
         _arguments)
def stylize(args: argparse.Namespace) -> None:
    from dlzoo.engine.runtime import pick_device
    from dlzoo.files import check_not_an_input
    from dlzoo.runs import check_not_a_run_file
    from dlzoo.vision.grid import check_image_path, save_picture
    from dlzoo.vision.style import StyleLosses, StyleSettings, stylize, to_network_units, vgg19_features

    out = check_not_a_run_file(check_image_path(args.out))
    check_not_an_input(out, [args.content, args.style], "input picture")
    if args.height > MAX_HEIGHT:
        raise UserError(f"--height {args.height} is more than {MAX_HEIGHT} px")
    content = _scaled_picture(args.content, args.height)
    style = _scaled_picture(args.style, args.height)
    device = pick_device(args.device)
    features = vgg19_features(args.features, args.seed).to(device)
    if args.features == "random":
        features.calibrate(to_network_units(content[None].to(device)))
    settings = StyleSettings(steps=args.steps, lr=args.lr, content_weight=args.content_weight,
                             style_weight=args.style_weight, tv_weight=args.tv_weight)

    def report(step: int, losses: StyleLosses, seconds: float) -> None:
        print(f"step {step}/{settings.steps}: content {losses.content:.4g}, style {losses.style:.4g}, "
              f"tv {losses.tv:.4g}, total {losses.total:.4g} ({seconds:.1f} s)", flush=True)

    painted = stylize(content, style, features, settings, report, args.every)
    save_picture(painted, out)
    print(f"wrote {out} ({painted.shape[2]}x{painted.shape[1]} px, features: {args.features})")


def _scaled_picture(path: str, height: int):
    """The picture at `path` as RGB (3, height, width) in [0, 1], its aspect kept (antialiased resizing)."""
    from torchvision.transforms.v2 import functional

    from dlzoo.vision.io import as_rgb_tensor, read_image
    from dlzoo.vision.style import MIN_SIDE

    picture = as_rgb_tensor(read_image(path))
    width = round(picture.shape[2] * height / picture.shape[1])
    if min(height, width) < MIN_SIDE:
        raise UserError(f"{path} scaled to {height} px high is {width}x{height} px; VGG-19 needs at least "
                        f"{MIN_SIDE} px each way: give a larger --height")
    if height * width > MAX_PAINTED_PIXELS:
        raise UserError(f"{path} scaled to {height} px high is {width}x{height} px, more than {MAX_PAINTED_PIXELS:,} "
                        f"pixels: give a smaller --height")
    return functional.resize(picture, [height, width], antialias=True).clamp(0, 1)
