"""Pictures of numbers made from real handwritten digits, for `dlzoo bench reader` (and the reader's tests).

Each picture holds one number of 1 to 8 digits drawn from a pool of real digits (the benchmark uses the 1,000
held-out mnist5k test digits): varied spacing, scale, baseline, paper and ink colour, light gradient, polarity, blur,
noise and resolution. In the "touching" set some neighbours are pushed together until their strokes really meet
(checked pixel by pixel) and then a little further, so they touch or overlap.

Kept honest on purpose: this module draws with numpy and OpenCV only and imports nothing from `dlzoo.reader`, so
the benchmark does not share a code path with the segmentation it measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INK_LEVEL = 0.35  # alpha above which a pixel counts as stroke when deciding whether two digits touch


@dataclass(frozen=True)
class ComposedNumber:
    image: np.ndarray  # uint8 RGB
    text: str
    touching_pairs: int  # neighbours whose strokes touch or overlap
    overlapping_pairs: int  # touching neighbours whose ink boxes overlap (one leans into the other's space)
    boxes: tuple[tuple[int, int, int, int], ...]  # each digit's ink box (x, y, width, height) in the picture
    owner: np.ndarray  # int32, per pixel: the digit (index into text) whose ink is strongest there, -1 for paper


@dataclass(frozen=True)
class Style:
    """How one picture is drawn; every field is drawn at random per picture by `random_style`."""

    digit_height: float  # pixels, at composition; the picture is then resized by `resolution`
    resolution: float
    light_ink: bool
    paper: tuple[float, float, float]
    ink: tuple[float, float, float]
    gradient: float  # fraction of light lost across the picture
    gradient_angle: float
    blur: float  # Gaussian sigma as a fraction of the final digit height
    noise: float  # Gaussian noise sigma in grey levels


def random_style(rng: np.random.Generator) -> Style:
    light_ink = bool(rng.random() < 0.3)  # chalk on a board, or white on black
    if light_ink:
        paper = tuple(rng.uniform(10, 90, 3))
        ink = tuple(rng.uniform(200, 255, 3))
    else:
        paper = tuple(rng.uniform(175, 255, 3))
        ink = tuple(rng.uniform(0, 90, 3))
    final_height = float(np.exp(rng.uniform(np.log(16), np.log(96))))  # log-uniform: low-res to phone photo
    digit_height = float(rng.uniform(28, 44))
    return Style(digit_height=digit_height, resolution=final_height / digit_height, light_ink=light_ink,
                 paper=paper, ink=ink, gradient=float(rng.uniform(0, 0.5)),
                 gradient_angle=float(rng.uniform(0, 2 * np.pi)), blur=float(rng.uniform(0, 0.035)),
                 noise=float(rng.uniform(0, 12)))


def _ink_crop(digit: np.ndarray, height: float) -> np.ndarray:
    """The digit's alpha (0..1) cropped to its ink and scaled so that a 20-px MNIST digit becomes `height`."""
    ys, xs = np.nonzero(digit > 0)
    crop = digit[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.float32) / 255.0
    scale = height / 20.0
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.clip(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _contact_shift(canvas: np.ndarray, glyph: np.ndarray, top: int, left: int) -> int | None:
    """How far `glyph` placed at (top, left), right of all ink, can move left before its strokes meet the strokes
    on `canvas`; None when no row holds ink of both."""
    best = None
    for row in range(top, top + glyph.shape[0]):
        placed = np.flatnonzero(canvas[row, :left] > INK_LEVEL)
        own = np.flatnonzero(glyph[row - top] > INK_LEVEL)
        if len(placed) and len(own):
            gap = left + int(own.min()) - int(placed.max()) - 1
            best = gap if best is None else min(best, gap)
    return best


def compose_number(pool: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                   touching: bool = False) -> ComposedNumber:
    """One picture of a random number whose digits are drawn from `pool` (28x28 MNIST-style, ink bright)."""
    count = int(rng.integers(2 if touching else 1, 9))
    picks = rng.integers(0, len(pool), count)
    style = random_style(rng)
    height = style.digit_height
    glyphs = [_ink_crop(pool[i], height * rng.uniform(0.85, 1.15)) for i in picks]
    touch = (rng.random(count - 1) < 0.5) & touching  # which neighbours meet; at least one pair when touching
    if touching and not touch.any():
        touch[rng.integers(0, count - 1)] = True
    margin_x, margin_y = (int(rng.uniform(0.3, 1.2) * height) for _ in range(2))
    width = 2 * margin_x + sum(g.shape[1] for g in glyphs) + int(count * height)
    canvas = np.zeros((int(2 * margin_y + 1.5 * height), width), np.float32)
    baseline = margin_y + int(1.2 * height)
    left, right_edge, touching_pairs, overlapping_pairs = margin_x, margin_x, 0, 0
    boxes = []
    owner = np.full(canvas.shape, -1, np.int32)
    for index, glyph in enumerate(glyphs):
        top = baseline - glyph.shape[0] + int(rng.uniform(-0.1, 0.1) * height)
        top = min(max(top, 0), canvas.shape[0] - glyph.shape[0])
        if index > 0:
            contact = _touching_left(canvas, glyph, top, right_edge, rng, height) if touch[index - 1] else None
            if contact is not None:
                left = contact
                touching_pairs += 1
                overlapping_pairs += left < right_edge
            else:
                left = right_edge + max(2, int(rng.uniform(0.12, 0.6) * height))
        region = canvas[top: top + glyph.shape[0], left: left + glyph.shape[1]]
        owner[top: top + glyph.shape[0], left: left + glyph.shape[1]][glyph > np.maximum(region, 0.05)] = index
        np.maximum(region, glyph, out=region)
        right_edge = max(right_edge, left + glyph.shape[1])
        boxes.append((left, top, glyph.shape[1], glyph.shape[0]))
    canvas, owner = canvas[:, : right_edge + margin_x], owner[:, : right_edge + margin_x]
    text = "".join(str(int(labels[i])) for i in picks)
    image = _render(canvas, style, rng)
    scale_x, scale_y = image.shape[1] / canvas.shape[1], image.shape[0] / canvas.shape[0]
    boxes = [(round(x * scale_x), round(y * scale_y), round(w * scale_x), round(h * scale_y)) for x, y, w, h in boxes]
    owner = cv2.resize(owner, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    return ComposedNumber(image, text, touching_pairs, overlapping_pairs, tuple(boxes), owner)


def _touching_left(canvas: np.ndarray, glyph: np.ndarray, top: int, right_edge: int,
                   rng: np.random.Generator, height: float) -> int | None:
    """Left edge for `glyph` at which its strokes meet those already drawn, then pressed on by up to 0.08 of the
    digit height (about half a stroke: firmly joined, still legible); None when the two digits share no row of ink
    (they are then set apart instead)."""
    shift = _contact_shift(canvas, glyph, top, right_edge + 1)
    if shift is None:
        return None
    return max(0, right_edge + 1 - shift - int(rng.uniform(0, 0.08) * height))


def _render(alpha: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Ink on paper under a light gradient, resized to the picture's resolution, blurred, with sensor noise."""
    height, width = alpha.shape
    size = (max(8, round(width * style.resolution)), max(8, round(height * style.resolution)))
    interpolation = cv2.INTER_AREA if style.resolution < 1 else cv2.INTER_CUBIC
    alpha = np.clip(cv2.resize(alpha, size, interpolation=interpolation), 0, 1)[..., None]
    paper, ink = np.array(style.paper, np.float32), np.array(style.ink, np.float32)
    image = paper * (1 - alpha) + ink * alpha
    ys, xs = np.mgrid[0: size[1], 0: size[0]].astype(np.float32)
    ramp = np.cos(style.gradient_angle) * xs + np.sin(style.gradient_angle) * ys
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    image *= (1 - style.gradient * ramp)[..., None]
    sigma = style.blur * style.digit_height * style.resolution
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0, style.noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)
