"""Batched augmentation for image tensors already on the device: one call per batch, no per-sample Python.

Every function takes float images (N, C, H, W) and draws its randomness from torch's global generator on the
images' device, whose state the checkpoint saves (so resumed runs augment identically).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device) * (high - low) + low


def random_affine(images: torch.Tensor, degrees: float = 10.0, translate: float = 0.1,
                  scale: tuple[float, float] = (0.9, 1.1), shear: float = 0.0) -> torch.Tensor:
    """Rotate, scale, shear and translate each image by its own random amounts (bilinear, zero fill).

    translate is a fraction of the image size; shear is in degrees along x.
    """
    n, device = images.shape[0], images.device
    angle = _uniform(n, -degrees, degrees, device) * (math.pi / 180)
    factor = _uniform(n, scale[0], scale[1], device)
    skew = torch.tan(_uniform(n, -shear, shear, device) * (math.pi / 180)) if shear else torch.zeros(n, device=device)
    # affine_grid maps output coordinates to input ones in [-1, 1]: the inverse of the transform we want.
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    shift = _uniform(2 * n, -2 * translate, 2 * translate, device).view(n, 2)
    theta = torch.stack([
        torch.stack([cos, -sin + skew, shift[:, 0]], dim=1),
        torch.stack([sin, cos, shift[:, 1]], dim=1),
    ], dim=1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_flip(images: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Mirror a random subset of the batch left-right."""
    flip = torch.rand(images.shape[0], device=images.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def translate(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift every image `dx` pixels right and `dy` pixels down (negative: left, up), with zero fill."""
    pad = max(abs(dx), abs(dy))
    if pad == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad))
    return padded[..., pad - dy: pad - dy + height, pad - dx: pad - dx + width]


def random_translate(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y with zero fill: the classic pad-and-random-crop."""
    if pad <= 0:
        return images
    n, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), device=images.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=images.device)
    rows = (dy.view(n, 1) + torch.arange(height, device=images.device)).view(n, 1, height, 1)
    cols = (dx.view(n, 1) + torch.arange(width, device=images.device)).view(n, 1, 1, width)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]
