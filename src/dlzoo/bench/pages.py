"""Pages as phones and scanners see them, for `dlzoo bench reader-limits` (and the reader's tests): ink on white
paper or chalk on a dark board, under what a photo adds: light falling off across the page (gradient) and towards
its corners (vignetting), paper grain and stains, a hand's shadow, a strip of the table along an edge, blur, sensor
noise and JPEG compression.

Like `compose_numbers.py`, this module draws with numpy and OpenCV only and imports nothing from `dlzoo.reader`, so
the benchmark shares no code path with the reader it measures. Every effect's strength, direction and place is
drawn at random per page (`random_effects`), within what ordinary photos of a page show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

EFFECTS = ("gradient", "vignetting", "noise", "grain", "blotches", "shadow", "table", "blur", "jpeg", "board")
PAPER = (236, 232, 222)  # a white page under ordinary light
INK = (30, 35, 60)  # a dark blue-black pen
BOARD = (38, 58, 48)  # a dark green board
CHALK = (225, 230, 220)
LIGHT_FIELD = 8  # smooth light fields (gradient, vignetting, shadow) are drawn this many times smaller, then resized


@dataclass(frozen=True)
class Effects:
    """What one page shows; 0 (or None) is an effect left out. Drawn by `random_effects`."""

    gradient: float = 0.0  # share of the light lost from one side of the page to the other
    gradient_angle: float = 0.0
    vignetting: float = 0.0  # share of the light lost in the corners
    noise: float = 0.0  # sensor noise, grey levels (sigma)
    grain: float = 0.0  # paper texture, grey levels (sigma of fine fibres and a coarser mottle)
    blotches: int = 0  # soft stains on the paper
    shadow: float = 0.0  # share of the light a hand's shadow takes
    table: float = 0.0  # width of a strip of table along one edge, as a share of the short side
    table_edge: int = 0  # which edge: top, bottom, left, right
    table_tilt: float = 0.0  # degrees: the page lies a little askew
    blur: float = 0.0  # Gaussian sigma in pixels
    jpeg: int | None = None  # quality
    board: bool = False  # light chalk on a dark board instead of dark ink on paper


def random_effects(names: Iterable[str], shape: tuple[int, int], rng: np.random.Generator) -> Effects:
    """The named effects (see `EFFECTS`) at strengths drawn at random for a page of `shape` (height, width)."""
    names = set(names)
    unknown = names - set(EFFECTS)
    if unknown:
        raise ValueError(f"unknown page effects: {', '.join(sorted(unknown))}")
    scale = min(shape) / 1000  # blur and grain in pixels grow with the page's resolution
    return Effects(
        gradient=float(rng.uniform(0.2, 0.5)) if "gradient" in names else 0.0,
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        vignetting=float(rng.uniform(0.2, 0.45)) if "vignetting" in names else 0.0,
        noise=float(rng.uniform(3, 8)) if "noise" in names else 0.0,
        grain=float(rng.uniform(3, 7)) if "grain" in names else 0.0,
        blotches=int(rng.integers(3, 9)) if "blotches" in names else 0,
        shadow=float(rng.uniform(0.3, 0.6)) if "shadow" in names else 0.0,
        table=float(rng.uniform(0.04, 0.12)) if "table" in names else 0.0,
        table_edge=int(rng.integers(4)),
        table_tilt=float(rng.uniform(-1.5, 1.5)),
        blur=float(rng.uniform(0.5, 1.5) * scale) if "blur" in names else 0.0,
        jpeg=int(rng.integers(60, 91)) if "jpeg" in names else None,
        board="board" in names,
    )


def paint(alpha: np.ndarray, ink: Sequence[float] = INK, paper: Sequence[float] = PAPER,
          light: np.ndarray | None = None, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Ink of coverage `alpha` (H, W) in [0, 1] on paper, lit by `light` (H, W) or (1, W) (1: full light), with
    Gaussian sensor noise of `noise` grey levels: RGB uint8."""
    coverage = alpha[..., None]
    image = np.array(paper, np.float32) * (1 - coverage) + np.array(ink, np.float32) * coverage
    if light is not None:
        image *= light[..., None]
    if noise:
        image += (rng or np.random.default_rng()).normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_page(alpha: np.ndarray, effects: Effects, rng: np.random.Generator) -> np.ndarray:
    """The page whose ink coverage is `alpha` (H, W) in [0, 1], with `effects`: RGB uint8."""
    shape = alpha.shape
    ink, paper = (CHALK, BOARD) if effects.board else (INK, PAPER)
    image = np.array(paper, np.float32) * (1 - alpha[..., None]) + np.array(ink, np.float32) * alpha[..., None]
    if effects.grain or effects.blotches:
        image *= _paper_texture(shape, effects, rng)[..., None]
    table = table_mask(shape, effects)
    if table is not None:
        image[table] = rng.uniform([110, 70, 40], [160, 110, 70]).astype(np.float32)  # wood
    image *= _light(shape, effects, rng)[..., None]
    if effects.blur:
        image = cv2.GaussianBlur(image, (0, 0), effects.blur)
    if effects.noise:
        image += effects.noise * rng.standard_normal(image.shape, dtype=np.float32)
    page = np.clip(image, 0, 255).astype(np.uint8)
    if effects.jpeg is not None:
        _, data = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, effects.jpeg])
        page = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # channel order kept: encoded and decoded alike
    return page


def table_mask(shape: tuple[int, int], effects: Effects) -> np.ndarray | None:
    """Where the strip of table shows (None without one): along one edge, its border the page's straight edge."""
    if not effects.table:
        return None
    height, width = shape
    ys, xs = np.ogrid[0:height, 0:width]
    depth = effects.table * min(shape)
    tilt = np.tan(np.deg2rad(effects.table_tilt))
    across, along, length = [(ys, xs, width), (height - 1 - ys, xs, width), (xs, ys, height),
                             (width - 1 - xs, ys, height)][effects.table_edge]
    return across < depth + tilt * (along - length / 2)


def _light(shape: tuple[int, int], effects: Effects, rng: np.random.Generator) -> np.ndarray:
    """How much of the light reaches every pixel (1: all), smooth, so drawn small and resized."""
    height, width = shape
    small = (max(2, height // LIGHT_FIELD), max(2, width // LIGHT_FIELD))
    ys, xs = np.mgrid[0: small[0], 0: small[1]].astype(np.float32)
    ys, xs = ys / small[0], xs / small[1] * width / height  # in page heights
    light = np.ones(small, np.float32)
    if effects.gradient:
        ramp = np.cos(effects.gradient_angle) * xs + np.sin(effects.gradient_angle) * ys
        light *= 1 - effects.gradient * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    if effects.vignetting:
        centre_y, centre_x = 0.5 + rng.uniform(-0.1, 0.1), (0.5 + rng.uniform(-0.1, 0.1)) * width / height
        radius = np.hypot(ys - centre_y, xs - centre_x)
        light *= 1 - effects.vignetting * (radius / radius.max()) ** 2
    if effects.shadow:
        light *= 1 - effects.shadow * _hand_shadow(small, rng)
    return cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR)


def _hand_shadow(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A hand's shadow (1 inside, 0 outside, a soft edge between): an ellipse centred on one edge of the page, as
    wide as 40-70% of that edge (a hand is about half as wide as a page) and reaching 30-60% of the way across,
    turned by up to 30 degrees, its edge blurred over 1-4% of the page (as far as the hand is above it)."""
    height, width = shape
    edge = int(rng.integers(4))  # top, bottom, left, right
    along, across = (width, height) if edge < 2 else (height, width)
    half_width, reach, position = rng.uniform(0.2, 0.35) * along, rng.uniform(0.3, 0.6) * across, rng.uniform(0.2, 0.8)
    centre = [(position * width, 0), (position * width, height), (0, position * height), (width, position * height)]
    axes = (half_width, reach) if edge < 2 else (reach, half_width)
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, tuple(round(v) for v in centre[edge]), tuple(max(1, round(v)) for v in axes),
                rng.uniform(-30, 30), 0, 360, 1, -1)
    softness = rng.uniform(0.01, 0.04) * min(shape)
    shadow = mask.astype(np.float32)
    return cv2.GaussianBlur(shadow, (0, 0), softness) if softness >= 0.5 else shadow


def _paper_texture(shape: tuple[int, int], effects: Effects, rng: np.random.Generator) -> np.ndarray:
    """Paper's own brightness (1: plain): fine grain and a coarser mottle, and soft stains."""
    texture = np.ones(shape, np.float32)
    if effects.grain:
        fine = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), 1.2)
        fine *= effects.grain / 255 / max(float(fine.std()), 1e-6)
        small = (max(2, shape[0] // 32), max(2, shape[1] // 32))
        mottle = cv2.GaussianBlur(rng.standard_normal(small, dtype=np.float32), (0, 0), 1.5)
        mottle = cv2.resize(mottle / max(float(mottle.std()), 1e-6), (shape[1], shape[0]),
                            interpolation=cv2.INTER_CUBIC)
        texture += fine + mottle * effects.grain / 2 / 255  # the mottle half as strong as the fibres
    for _ in range(effects.blotches):
        radius = rng.uniform(0.01, 0.06) * min(shape)
        centre = rng.uniform(0, 1, 2) * shape
        box = [slice(max(0, int(c - 3 * radius)), min(s, int(c + 3 * radius) + 1)) for c, s in zip(centre, shape,
                                                                                                    strict=True)]
        ys, xs = np.ogrid[box[0], box[1]]
        stain = np.exp(-((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) / (2 * radius**2)).astype(np.float32)
        texture[box[0], box[1]] *= 1 - rng.uniform(0.04, 0.12) * stain
    return texture


def frames_row(frames: Sequence[np.ndarray], frame: int) -> np.ndarray:
    """MNIST-style frames (28x28 uint8, ink bright) each scaled to `frame` pixels square and set side by side, as
    digits written in a row: ink coverage in [0, 1]."""
    interpolation = cv2.INTER_AREA if frame < frames[0].shape[0] else cv2.INTER_CUBIC
    scaled = [cv2.resize(f.astype(np.float32) / 255, (frame, frame), interpolation=interpolation) for f in frames]
    return np.clip(np.hstack(scaled), 0.0, 1.0)


def place(row: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
          keep_out: np.ndarray | None = None) -> np.ndarray:
    """A page of `shape` with `row` at a random place on it, clear of `keep_out` (a table strip) where it can be."""
    page = np.zeros(shape, np.float32)
    height, width = row.shape
    for _ in range(100):
        top, left = int(rng.integers(0, shape[0] - height + 1)), int(rng.integers(0, shape[1] - width + 1))
        if keep_out is None or not keep_out[top: top + height, left: left + width].any():
            break
    page[top: top + height, left: left + width] = row
    return page
