"""Reading users' pictures with clear errors: missing, unreadable, corrupt, empty and too small files are user
errors that name the file."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageOps

from dlzoo.errors import UserError

if TYPE_CHECKING:
    import torch

# OpenCV logs its decoders' complaints about a corrupt file ("[ WARN:0@1.8] global grfmt_png.cpp ...") straight to
# the process's stderr, before our one line that names the file: silenced, once, for the whole process (the level
# is global, and a per-call switch would race between threads). OPENCV_LOG_LEVEL, when set, still decides.
if "OPENCV_LOG_LEVEL" not in os.environ:
    if hasattr(cv2.utils, "logging"):  # OpenCV 5
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    else:  # OpenCV 4 has the same switch at the top level, with the level as its number (silent = 0)
        cv2.setLogLevel(0)

# A picture's shortest side: a thinner one holds no shape to classify or read (`prepare_digit` and the reader's
# arrays refuse it too, but only a file's reader can name the file).
MIN_SIDE = 2
# The most pixels a picture may have, as its header claims them before it is decoded: a file of a few kilobytes
# can decode to a billion pixels (OpenCV's own limit), gigabytes that `dlzoo serve` would take for one upload.
# 2^27, 134 megapixels, is beyond the largest phone and camera photos.
MAX_PIXELS = 2**27


# What `read_image` does, in words, for a program that reads pictures without dlzoo (an exported model's sidecar).
DECODING = ("decoded to 8-bit RGB (OpenCV's imread gives BGR: convert it; 16-bit values are scaled to 8) or grey, "
            "turned upright as its EXIF orientation says, any transparency composited onto white (onto black when "
            "its drawn pixels are light on average)")


def read_image(path: str | Path) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3) or grey (H, W), turned upright as its EXIF orientation says (a phone's
    photo); transparent pixels are filled as `flatten_transparency` says."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"image not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an image file, got a folder: {path}")
    if not path.is_file():  # a named pipe or a device would be read until its writer stops, perhaps never
        raise UserError(f"expected an image file, got something else (a pipe or a device?): {path}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UserError(f"cannot read image {path}: {error.strerror or error}") from None
    if data.size == 0:
        raise UserError(f"image file is empty: {path}")
    pixels, orientation = read_header(data)
    if pixels > MAX_PIXELS:
        raise UserError(f"image is too large (more than {MAX_PIXELS / 1e6:.0f} megapixels): {path}")
    # IMREAD_UNCHANGED keeps alpha and 16-bit depth, but skips the EXIF rotation that other flags apply (except in
    # TIFF files, which OpenCV's decoder turns upright itself).
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # e.g. a header claiming more pixels than OpenCV decodes
        too_large = "CV_IO_MAX_IMAGE_PIXELS" in str(error)
        reason = "its header claims more pixels than OpenCV decodes" if too_large else "corrupt or unsupported format"
        raise UserError(f"not a readable image ({reason}): {path}") from None
    if image is None or image.size == 0:
        raise UserError(f"not a readable image (corrupt or unsupported format): {path}")
    if bytes(data[:4]) not in TIFF_MAGIC:
        image = upright(image, orientation)
    if min(image.shape[:2]) < MIN_SIDE:  # refused here, where the file is known, not later by the preprocessing
        raise UserError(f"image is too small ({image.shape[1]}x{image.shape[0]}, at least {MIN_SIDE}x{MIN_SIDE} "
                        f"pixels): {path}")
    return to_rgb_or_gray(image)


# A picture as prediction and the readers take it: a file, an array (`as_picture`) or a PIL image.
Picture = str | Path | np.ndarray | Image.Image
IN_MEMORY_PICTURES = (np.ndarray, Image.Image)


def load_picture(picture: Picture) -> np.ndarray:
    """`picture` as uint8 RGB (H, W, 3) or grey (H, W), each kind read as a file would be: turned upright as its
    EXIF orientation says (a PIL image opened from a photo), transparency filled as `flatten_transparency` says."""
    if isinstance(picture, (str, Path)):
        return read_image(picture)
    if isinstance(picture, Image.Image):
        return as_picture(pil_pixels(picture))
    return as_picture(picture)


def pil_pixels(picture: Image.Image) -> np.ndarray:
    """A PIL image's pixels, upright: grey, RGB and numeric modes as they are (16-bit grey scaled later by
    `as_uint8`), palettes and other colour spaces as RGB, or RGBA where they hold transparency."""
    picture = ImageOps.exif_transpose(picture)
    if picture.mode not in ("L", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"):
        picture = picture.convert("RGBA" if picture.has_transparency_data else "RGB")
    pixels = np.asarray(picture)
    if picture.mode == "I" and pixels.size and 255 < pixels.max() <= 65535 and pixels.min() >= 0:
        # 32-bit integers holding 16-bit values: how older Pillows opened a 16-bit grey PNG, and what
        # `convert("I")` makes of one. They are scaled as the 16-bit file's are, not refused as out of 0-255.
        pixels = pixels.astype(np.uint16)
    return pixels


def as_picture(image: np.ndarray) -> np.ndarray:
    """A user's array as uint8 grey or RGB, as `read_image` gives a file's: uint8 or uint16, other integers holding
    0-255, floats in [0, 1] (scikit-image), RGBA. The channels are taken as RGB(A): OpenCV's BGR needs converting."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in
                                                                          (1, 3, 4)):
        raise UserError(f"expected a picture as a (H, W) or (H, W, 3) array, got {getattr(image, 'shape', image)}")
    if min(image.shape[:2]) < 2:
        raise UserError(f"picture is too small ({image.shape[1]}x{image.shape[0]})")
    if image.dtype != bool and not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise UserError(f"a picture's pixels are integers, floats or booleans, not {image.dtype}")  # object, complex
    if not image.dtype.isnative:  # big-endian (PIL's I;16B, a Mac's TIFF): the dtype checks below compare native ones
        image = image.astype(image.dtype.newbyteorder("="))
    if np.issubdtype(image.dtype, np.floating) and np.nanmax(image, initial=0.0) > 1.0 + 1e-6:
        # as_uint8 reads floats from [0, 1] and clips the rest: 0-255 floats would read as a blank white page
        raise UserError(f"a picture of floats holds values in [0, 1], this one up to {np.nanmax(image):g}: divide "
                        f"it by 255, or pass it as uint8")
    if np.issubdtype(image.dtype, np.integer) and image.dtype not in (np.uint8, np.uint16):
        # as_uint8 scales other integers from their dtype's range: 0-255 in an int64 array (numpy's default
        # integer) would read as a black page. Such arrays hold 8-bit values.
        if image.min(initial=0) < 0 or image.max(initial=0) > 255:
            raise UserError(f"a picture of {image.dtype} integers holds values in 0-255, this one "
                            f"{image.min()}-{image.max()}: pass uint8, uint16, or floats in [0, 1]")
        image = image.astype(np.uint8)
    image = as_uint8(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[2] == 4:  # transparent pixels filled as a picture file's are
        image = flatten_transparency(image)
    return image



def read_header(data: np.ndarray) -> tuple[int, int]:
    """What an encoded picture's header says, before its pixels are decoded: how many pixels it has (0 when PIL
    cannot parse it: OpenCV's decoder judges that file) and its EXIF orientation tag (1-8; 1, upright, when it has
    none). A PNG whose header holds no EXIF is not asked (PIL would decode its pixels to look further)."""
    try:
        with warnings.catch_warnings():  # PIL warns from 89 megapixels on; the caller compares with MAX_PIXELS
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data.tobytes())) as picture:
                pixels = picture.width * picture.height
                if picture.format == "PNG" and "exif" not in picture.info:
                    return pixels, 1
                value = picture.getexif().get(ORIENTATION_TAG, 1)
    except Image.DecompressionBombError:  # PIL's refusal, from 179 megapixels: beyond MAX_PIXELS too
        return MAX_PIXELS + 1, 1
    except Exception:  # noqa: BLE001 - a header PIL cannot parse has no size or orientation to go by
        return 0, 1
    return pixels, value if value in _ORIENTATIONS else 1


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """The picture as a viewer shows it: EXIF orientation 2-8 undone (the same turns as PIL's `exif_transpose`)."""
    return np.ascontiguousarray(_ORIENTATIONS[orientation](image))


ORIENTATION_TAG = 0x0112
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_ORIENTATIONS = {
    1: lambda image: image,
    2: lambda image: image[:, ::-1],  # mirrored left-right
    3: lambda image: image[::-1, ::-1],  # upside down
    4: lambda image: image[::-1],  # mirrored top-bottom
    5: lambda image: image.swapaxes(0, 1),  # mirrored along the main diagonal
    6: lambda image: image.swapaxes(0, 1)[:, ::-1],  # a quarter turn: shown turned clockwise
    7: lambda image: image[::-1, ::-1].swapaxes(0, 1),  # mirrored along the other diagonal
    8: lambda image: image.swapaxes(0, 1)[::-1],  # a quarter turn: shown turned anticlockwise
}


def as_uint8(image: np.ndarray) -> np.ndarray:
    """Pixels as 8-bit values, rounded to the nearest: other integers (a 16-bit PNG or TIFF) scaled from their
    range, floats (a 32-bit TIFF, scikit-image's arrays) from [0, 1], booleans to 0 and 255."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.integer):
        scaled = image.astype(np.float64) * (255.0 / np.iinfo(image.dtype).max)
    else:
        scaled = np.nan_to_num(image.astype(np.float64)) * 255.0
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def as_rgb_tensor(picture: np.ndarray) -> torch.Tensor:
    """A picture as `load_picture` gives it (uint8 RGB, or grey: its value in all three channels) as a float tensor
    (3, H, W) in [0, 1], what the colour networks (segmenters, detectors) read."""
    import torch  # not at the top: `dlzoo list` and friends read pictures' headers without torch

    rgb = np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255


def to_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    image = as_uint8(image)
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        image = flatten_transparency(image)
    elif image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)


def flatten_transparency(bgra: np.ndarray) -> np.ndarray:
    """BGR (or RGB: the order is kept) with transparent pixels composited onto a background the drawing stands out
    from: white paper under a dark drawing, black under a light one (a white shape on a transparent background
    would vanish on white)."""
    colour, alpha = bgra[:, :, :3].astype(np.float32), bgra[:, :, 3:4].astype(np.float32) / 255.0
    drawn = alpha[:, :, 0] > 0.5
    light = drawn.any() and colour[drawn].mean() > 127.5
    background = 0.0 if light else 255.0
    return np.rint(colour * alpha + background * (1 - alpha)).astype(np.uint8)


def shrink(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """The picture scaled down (area averaging), aspect kept, to at most `max_pixels` pixels; as it is if smaller."""
    factor = (image.shape[0] * image.shape[1] / max_pixels) ** 0.5
    if factor <= 1:
        return image
    size = (max(1, round(image.shape[1] / factor)), max(1, round(image.shape[0] / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey (H, W) from grey or RGB."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
