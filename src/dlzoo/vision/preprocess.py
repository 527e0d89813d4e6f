"""Named, serialisable preprocessing for small image classifiers; stored in checkpoints as a dict.

- `mnist-digit`: a picture of one handwritten digit, prepared as MNIST was (see `vision.digits`).
- `resize`: the picture made grey, inverted if its border is light (small-image sets such as Fashion-MNIST show
  a light object on black), and resized to the training size; with `colour`, kept in RGB as it is and resized.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import cv2
import numpy as np

from dlzoo.config import Pixels
from dlzoo.errors import UserError
from dlzoo.vision.digits import DigitPreprocessing
from dlzoo.vision.io import to_gray


class Preprocessing(Protocol):
    size: int

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 grey or RGB picture -> float32 in [0, 1]: (size, size) grey, or (3, size, size) in colour."""

    def to_dict(self) -> dict: ...

    def describe(self) -> str:
        """The steps in words, for a program that prepares pictures without dlzoo (an exported model's user)."""


@dataclass(frozen=True)
class ResizePreprocessing:
    name: str = "resize"
    size: Pixels = 28  # as a checkpoint's meta keeps it: checked on reading (`runs.open_run`)
    # Invert grey pictures whose border is light, so objects are light on dark as in (Fashion-)MNIST.
    dark_background: bool = True
    # Keep the picture's colour (3 channels, RGB, never inverted: photographs have no paper to undo).
    colour: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        size = (f"resized to {self.size}x{self.size} px (OpenCV: INTER_AREA when either side is longer than "
                f"{self.size}, else INTER_LINEAR)")
        if self.colour:
            return f"RGB, {size}, divided by 255, channels first (3, H, W)"
        invert = ", then inverted (1 - x) when the median of its outermost rows and columns is above 0.5"
        return f"grey (OpenCV's RGB2GRAY), {size}, divided by 255{invert if self.dark_background else ''}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.size == 0:
            raise UserError("image is empty")
        if self.colour:
            rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
            return self._resize(rgb).astype(np.float32).transpose(2, 0, 1) / 255.0
        out = self._resize(to_gray(image)).astype(np.float32) / 255.0
        border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
        if self.dark_background and np.median(border) > 0.5:
            out = 1.0 - out
        return out

    def _resize(self, image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == (self.size, self.size):
            return image
        interpolation = cv2.INTER_AREA if max(image.shape[:2]) > self.size else cv2.INTER_LINEAR
        return cv2.resize(image, (self.size, self.size), interpolation=interpolation)


def preprocessing_from_dict(data: dict) -> Preprocessing:
    name = data.get("name")
    if name == "mnist-digit":
        return DigitPreprocessing.from_dict(data)
    if name == "resize":
        return ResizePreprocessing(**data)
    raise UserError(f"unknown preprocessing {name!r} in checkpoint")


def make_preprocessing(name: str, size: int, colour: bool = False) -> Preprocessing | None:
    """The preprocessing a recipe asks for by name; None means the data set's pixels are used as they are."""
    if colour and name != "resize":
        raise UserError(f"data.preprocess={name} makes pictures grey; colour pictures need data.preprocess=resize")
    if name == "mnist-digit":
        return DigitPreprocessing(size=size)
    if name == "resize":
        return ResizePreprocessing(size=size, colour=colour)
    return None
