"""Named, serialisable preprocessing for small image classifiers; stored in checkpoints as a dict.

- `mnist-digit`: a picture of one handwritten digit, prepared as MNIST was (see `vision.digits`).
- `resize`: the picture made grey, inverted if its border is light (small-image sets such as Fashion-MNIST show
  a light object on black), and resized to the training size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import cv2
import numpy as np

from dlzoo.errors import UserError
from dlzoo.vision.digits import DigitPreprocessing
from dlzoo.vision.io import to_gray


class Preprocessing(Protocol):
    size: int

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 grey or RGB picture -> float32 (size, size) in [0, 1]."""

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class ResizePreprocessing:
    name: str = "resize"
    size: int = 28
    # Invert pictures whose border is light, so objects are light on dark as in (Fashion-)MNIST.
    dark_background: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        gray = to_gray(image)
        if gray.size == 0:
            raise UserError("image is empty")
        if gray.shape != (self.size, self.size):
            interpolation = cv2.INTER_AREA if max(gray.shape) > self.size else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (self.size, self.size), interpolation=interpolation)
        out = gray.astype(np.float32) / 255.0
        border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
        if self.dark_background and np.median(border) > 0.5:
            out = 1.0 - out
        return out


def preprocessing_from_dict(data: dict) -> Preprocessing:
    name = data.get("name")
    if name == "mnist-digit":
        return DigitPreprocessing.from_dict(data)
    if name == "resize":
        return ResizePreprocessing(**data)
    raise UserError(f"unknown preprocessing {name!r} in checkpoint")


def make_preprocessing(name: str, size: int) -> Preprocessing | None:
    """The preprocessing a recipe asks for by name; None means the data set's pixels are used as they are."""
    if name == "mnist-digit":
        return DigitPreprocessing(size=size)
    if name == "resize":
        return ResizePreprocessing(size=size)
    return None
