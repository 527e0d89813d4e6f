"""Image grids written atomically (sample grids during training, `dlzoo generate` output) or as PNG bytes in memory
(GET /generate of `dlzoo serve`)."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import torch
from PIL import Image

from dlzoo.errors import UserError
from dlzoo.files import all_written_whole


def check_image_path(path: str | Path) -> Path:
    """A path PIL can write (its extension names a format PIL saves), or a UserError saying which extensions work."""
    path = Path(path)
    if _is_dir(path):  # first: a folder given is meant as one, whatever its name ends in
        raise UserError(f"'{path}' is a folder; give a file name such as {path / 'grid.png'}")
    suffix = path.suffix.lower()
    extensions = Image.registered_extensions()
    if suffix not in extensions:
        raise UserError(f"cannot write an image to '{path}': give it an extension such as .png or .jpg")
    if not _can_save(extensions[suffix]):
        raise UserError(f"cannot write an image to '{path}': {suffix} pictures can be read but not written; give it "
                        "an extension such as .png or .jpg")
    return path


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError as error:  # a name too long for the file system
        raise UserError(f"cannot write an image to '{path}': {error.strerror or error}") from None


@functools.cache
def _can_save(image_format: str) -> bool:
    """Whether PIL writes a grey picture (every grid dlzoo draws) in `image_format`. PIL reads more formats than it
    writes (PSD), some writers need a plugin it lacks (HDF5) or take other modes only (XBM): a tiny picture saved
    in memory finds out before any work is done, instead of a KeyError or ValueError after it."""
    try:
        Image.new("L", (2, 2)).save(io.BytesIO(), format=image_format)
    except (KeyError, OSError, ValueError):
        return False
    return True


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int) -> Path:
    """Save images (N, C, H, W) in [0, 1] as one grid, `nrow` images per row, via a temporary file."""
    return save_image_grids([(images, path, nrow)])[0]


def save_image_grids(grids: list[tuple[torch.Tensor, str | Path, int]]) -> list[Path]:
    """Save grids given as (images, path, images per row) all or none: every path is checked and every grid written
    to a temporary file beside its path before any is renamed into place, so a failure (a name too long, a full
    disk) leaves none of them; the temporary files, and the folders made for them, are removed again."""
    paths = [check_image_path(path) for _, path, _ in grids]
    return _save_pictures([_picture(images, nrow) for images, _, nrow in grids], paths)


def save_picture(image: torch.Tensor, path: str | Path) -> Path:
    """Save one image (C, H, W) in [0, 1] as it is, without a grid's border, via a temporary file."""
    return _save_pictures([_pil(image)], [check_image_path(path)])[0]


def _save_pictures(pictures: list[Image.Image], paths: list[Path]) -> list[Path]:
    target = paths[0]  # the file being written, for the error message
    try:
        with all_written_whole(paths) as temporary:
            for picture, tmp, target in zip(pictures, temporary, paths, strict=True):
                picture.save(tmp, format=Image.registered_extensions()[target.suffix.lower()])
    except (OSError, ValueError) as error:  # one that all_written_whole met before any writing names its file
        named = getattr(error, "filename", None) or target
        raise UserError(f"cannot write {named}: {getattr(error, 'strerror', None) or error}") from None
    return paths


def grid_png(images: torch.Tensor, nrow: int) -> bytes:
    """Images (N, C, H, W) in [0, 1] as one grid, `nrow` images per row, in PNG: the picture save_image_grids writes."""
    buffer = io.BytesIO()
    _picture(images, nrow).save(buffer, format="PNG")
    return buffer.getvalue()


def _picture(images: torch.Tensor, nrow: int) -> Image.Image:
    from torchvision.utils import make_grid  # imported when used: every command loads the tasks that use it

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
    # make_grid repeats a grey channel to three; a grey PNG is a third of the size.
    return _pil(grid[:1] if images.shape[1] == 1 else grid)


def _pil(image: torch.Tensor) -> Image.Image:
    """An image (1 or 3, H, W) in [0, 1] as an 8-bit PIL picture, grey or RGB."""
    pixels = image.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
