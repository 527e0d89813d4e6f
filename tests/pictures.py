"""Real digit pictures for tests: held-out mnist5k digits turned into what users photograph or scan."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dlzoo.data.images import load_image_arrays


def held_out_digits(per_class: int = 2) -> tuple[np.ndarray, np.ndarray]:
    arrays = load_image_arrays("mnist5k")
    picks = np.concatenate([np.flatnonzero(arrays.test_labels == c)[:per_class] for c in range(10)])
    return arrays.test_images[picks], arrays.test_labels[picks]


def on_paper(digit: np.ndarray, size: tuple[int, int] = (180, 140), ink=(20, 30, 120),
             paper=(235, 228, 210), gradient: float = 0.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A 28x28 MNIST digit (light on dark) drawn as coloured ink on paper, larger and off-centre (RGB uint8)."""
    rng = np.random.default_rng(seed)
    height, width = size
    scale = 0.55 * min(height, width) / 28
    big = cv2.resize(digit, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    alpha = np.zeros((height, width), np.float32)
    top, left = int(0.15 * height), int(0.3 * width)
    h, w = min(big.shape[0], height - top), min(big.shape[1], width - left)
    alpha[top: top + h, left: left + w] = big[:h, :w]
    alpha = np.clip(alpha, 0, 1)[..., None]
    light = 1.0 - gradient * np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    image = (np.array(paper, np.float32) * (1 - alpha) + np.array(ink, np.float32) * alpha) * light
    image += rng.normal(0, noise * 255, image.shape) if noise else 0
    return np.clip(image, 0, 255).astype(np.uint8)


def write(path: Path, rgb: np.ndarray) -> Path:
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image)
    return path
