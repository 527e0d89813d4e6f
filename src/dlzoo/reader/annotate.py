"""The picture with a box around every digit read and its value above it (`dlzoo read --annotate`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from dlzoo.errors import UserError
from dlzoo.files import written_whole
from dlzoo.reader.read import Reading

SURE, UNSURE = (60, 220, 60), (255, 150, 0)  # RGB: a box is orange when the digit's probability is below 0.5
OUTLINE = (0, 0, 0)  # drawn under every mark, so it shows on light paper and dark boards alike
# A PNG text entry on every annotated picture: what a later `read --annotate` may replace, unlike a user's own file.
MARK_KEY, MARK = "Software", "dlzoo read --annotate"


MIN_SIDE = 800  # smaller pictures are enlarged (by a whole factor) so that the marks stay readable


def annotate(picture: np.ndarray, reading: Reading) -> np.ndarray:
    """An RGB copy of `picture` with the reading drawn on it, enlarged `ceil(MIN_SIDE / longer side)` times."""
    canvas = cv2.cvtColor(picture, cv2.COLOR_GRAY2RGB) if picture.ndim == 2 else picture.copy()
    factor = max(1, -(-MIN_SIDE // max(canvas.shape[:2])))
    if factor > 1:
        canvas = cv2.resize(canvas, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for digit in reading.digits:
        x, y, width, height = (value * factor for value in digit.box)
        scale = max(0.4, height / 40)
        (text_width, text_height), _ = cv2.getTextSize(digit.value, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        origin = (x + (width - text_width) // 2, max(text_height + 2, y - 3))
        for colour, extra in ((OUTLINE, 2), (SURE if digit.probability >= 0.5 else UNSURE, 0)):
            cv2.rectangle(canvas, (x, y), (x + width - 1, y + height - 1), colour, thickness + extra)
            cv2.putText(canvas, digit.value, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness + extra,
                        cv2.LINE_AA)
    return canvas


def write_annotation(picture: np.ndarray, reading: Reading, path: Path) -> Path:
    """Write the annotated picture as PNG, marked as ours, via a temporary file, so a failed write leaves nothing
    behind."""
    marked = PngInfo()
    marked.add_text(MARK_KEY, MARK)
    try:
        with written_whole(path) as tmp:
            Image.fromarray(annotate(picture, reading)).save(tmp, format="PNG", pnginfo=marked)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def is_annotation(path: Path) -> bool:
    """Whether `path` is a picture `write_annotation` wrote (its PNG text says so). Only the header is read."""
    try:
        with Image.open(path) as picture:
            return picture.format == "PNG" and picture.info.get(MARK_KEY) == MARK
    except (OSError, ValueError):  # a folder, a file that is no picture, a broken link
        return False
