"""MNIST-style preparation of a picture of one digit: the one function training and prediction share.

MNIST's digits were made by fitting each digit's bounding box into 20x20 pixels, aspect kept, and placing it in a
28x28 frame so that its centre of mass is at the centre. `prepare_digit` does exactly that to any picture: a photo,
a scan, grey or colour, dark ink on light paper (inverted automatically) or light on dark. Applied to MNIST's own
digits it changes almost nothing, so the network sees at prediction what it saw in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from dlzoo.config import Pixels
from dlzoo.errors import UserError
from dlzoo.vision.io import shrink, to_gray

# A picture is worked on at no more than WORK_PIXELS: the digit ends in a 20-pixel box, so a larger copy adds time
# and no detail (a 400-megapixel picture took 90 s). Uneven paper is levelled from a copy of at most PAPER_PIXELS
# (see `ink_image`).
WORK_PIXELS = 1_000_000
PAPER_PIXELS = 256 * 256


@dataclass(frozen=True)
class DigitPreprocessing:
    """Stored in every digits checkpoint so that prediction prepares pictures as training did."""

    name: str = "mnist-digit"
    size: Pixels = 28  # as a checkpoint's meta keeps them: checked on reading (`runs.open_run`)
    box: Pixels = 20

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DigitPreprocessing:
        if data.get("name") != "mnist-digit":
            raise UserError(f"unknown digit preprocessing {data.get('name')!r} in checkpoint")
        return cls(**data)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return prepare_digit(image, size=self.size, box=self.box)

    def describe(self) -> str:
        return (f"one handwritten digit prepared as MNIST's were: ink made light on black, cropped, scaled into a "
                f"{self.box} px box and centred by its mass in {self.size}x{self.size} px, values in [0, 1] "
                f"(dlzoo.vision.digits.prepare_digit)")


def ink_image(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] where ink is bright and paper is 0, whatever the polarity and lighting."""
    gray = to_gray(image).astype(np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # dark ink on light paper, as people write: make the ink bright like MNIST
        gray, border = 1.0 - gray, 1.0 - border
    low, high = np.percentile(border, [10, 90])  # in one call: the reader prepares a hundred crops a picture
    if high - low < 0.1:
        ink = gray - np.median(border)  # even paper: subtracting its level is enough
    else:
        # Uneven lighting: the paper is what a grey opening much larger than a stroke leaves behind. Its cost grows
        # with the kernel's area times the picture's (17 s at 1,000 px square), and the lighting varies slowly:
        # it is taken on a small copy and scaled back up.
        small = shrink(gray, PAPER_PIXELS)
        kernel_size = max(3, (max(small.shape) // 2) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
        paper = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
        ink = gray - cv2.resize(paper, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    peak = float(np.percentile(ink, 99.5))
    if peak <= 0.05:
        return np.zeros_like(ink)
    return np.clip(ink / peak, 0.0, 1.0)


def prepare_digit(image: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """A (size, size) float32 image in [0, 1]: the digit's ink fitted into box x box, centred by mass."""
    if image.size == 0 or min(image.shape[:2]) < 2:
        raise UserError(f"image is empty or too small ({image.shape[1] if image.ndim > 1 else 0}x{image.shape[0]})")
    ink = ink_image(shrink(image, WORK_PIXELS))
    if not ink.any():
        return np.zeros((size, size), np.float32)
    mask = _ink_mask(ink)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((size, size), np.float32)
    crop = np.where(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1],
                    ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1], 0.0)
    return fit_and_center(crop, size, box)


def _ink_mask(ink: np.ndarray) -> np.ndarray:
    """Pixels that belong to strokes: Otsu's threshold, then specks far smaller than the biggest stroke dropped."""
    level, _ = cv2.threshold((ink * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strokes = ink * 255 > max(level, 20)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(strokes.astype(np.uint8), connectivity=8)
    if count <= 1:
        return strokes
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = np.concatenate([[False], areas >= max(2, 0.08 * areas.max())])[labels]  # a lookup: np.isin sorts
    # Keep the soft anti-aliased edge around kept strokes, as MNIST's grey levels have.
    grown = cv2.dilate(kept.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return grown & (ink > 0.02)


def fit_and_center(crop: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """Scale a cropped digit so its longer side is `box`, then place its centre of mass at the frame's centre."""
    height, width = crop.shape
    scale = box / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    digit = cv2.resize(crop.astype(np.float32), (new_w, new_h), interpolation=interpolation)
    total = float(digit.sum())
    if total <= 0:
        return np.zeros((size, size), np.float32)
    ys, xs = np.mgrid[0:new_h, 0:new_w]
    cy, cx = float((ys * digit).sum() / total), float((xs * digit).sum() / total)
    # Whole-pixel shifts, as MNIST did: a sub-pixel shift would blur the strokes.
    shift = np.float32([[1, 0, round(size / 2 - 0.5 - cx)], [0, 1, round(size / 2 - 0.5 - cy)]])
    framed = cv2.warpAffine(digit, shift, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.clip(framed, 0.0, 1.0)


def prepare_many(images: np.ndarray, preprocessing: DigitPreprocessing) -> np.ndarray:
    """Apply the preprocessing to a stack of uint8 (N, H, W) images -> float32 (N, size, size)."""
    return np.stack([preprocessing(image) for image in images]) if len(images) else np.zeros(
        (0, preprocessing.size, preprocessing.size), np.float32)
