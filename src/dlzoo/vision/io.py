"""Reading users' pictures with clear errors: missing, unreadable, corrupt, empty and too small files are user
errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dlzoo.errors import UserError

# OpenCV logs its decoders' complaints about a corrupt file ("[ WARN:0@1.8] global grfmt_png.cpp ...") straight to
# the process's stderr, before our one line that names the file: silenced, once, for the whole process (the level
# is global, and a per-call switch would race between threads). OPENCV_LOG_LEVEL, when set, still decides.
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# A picture's shortest side: a thinner one holds no shape to classify or read (`prepare_digit` and the reader's
# arrays refuse it too, but only a file's reader can name the file).
MIN_SIDE = 2


def read_image(path: str | Path) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3) or grey (H, W); transparent pixels are composited onto white paper."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"image not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an image file, got a folder: {path}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UserError(f"cannot read image {path}: {error.strerror or error}") from None
    if data.size == 0:
        raise UserError(f"image file is empty: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise UserError(f"not a readable image (corrupt or unsupported format): {path}")
    if min(image.shape[:2]) < MIN_SIDE:  # refused here, where the file is known, not later by the preprocessing
        raise UserError(f"image is too small ({image.shape[1]}x{image.shape[0]}, at least {MIN_SIDE}x{MIN_SIDE} "
                        f"pixels): {path}")
    return to_rgb_or_gray(image)


def to_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        scale = 255.0 / max(1, np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 255.0
        image = np.clip(image.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    elif image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey (H, W) from grey or RGB."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
