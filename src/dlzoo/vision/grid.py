"""Image grids written atomically: sample grids during training and `dlzoo generate` output."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from dlzoo.errors import UserError


def check_image_path(path: str | Path) -> Path:
    """A path PIL can write (its extension names a format), or a UserError saying which extensions work."""
    path = Path(path)
    extensions = Image.registered_extensions()
    if path.suffix.lower() not in extensions:
        raise UserError(f"cannot write an image to '{path}': give it an extension such as .png or .jpg")
    if path.is_dir():
        raise UserError(f"'{path}' is a folder; give a file name such as {path / 'grid.png'}")
    return path


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int) -> Path:
    """Save images (N, C, H, W) in [0, 1] as one grid, `nrow` images per row, via a temporary file."""
    path = check_image_path(path)
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
    pixels = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    # make_grid repeats a grey channel to three; a grey PNG is a third of the size.
    picture = Image.fromarray(pixels[:, :, 0] if images.shape[1] == 1 else pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        picture.save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    return path
