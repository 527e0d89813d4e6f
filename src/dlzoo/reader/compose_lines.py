"""The training composer of the line recognizer: lines of real digits drawn in batches with torch, as the reader
will show them to the recognizer (light ink on black, each line scaled so its digits are about `digit_height`
pixels tall in a strip `height` pixels high).

Written for training, apart from `dlzoo.bench.compose_numbers` on purpose: the benchmark that judges the reader
must not share its drawing code with the data the recognizer learns from. Every line is made of digits from the
pool it is given (the recipe gives it the mnist5k training digits; its evaluation lines use the test digits).

One batch is one `grid_sample` of every digit onto its line's canvas (a digit's transform: its scale, aspect,
slant, rotation and elastic distortion, its place in the line, baseline and the line's rotation), a maximum over
the digits, then batched augmentation (stroke thickness, blur, lost resolution, contrast, noise). No per-sample
Python, so composing costs little next to the network. Randomness comes from torch's global generator (saved in
checkpoints) unless a generator is passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

FRAME = 28  # MNIST digits: 28x28 frames, the digit fitted in 20x20
BOX = 20.0
WINDOW, WINDOW_LEFT = 64, 12  # pixels sampled per digit, and how many of them lie left of its ink


def _range(low: float, high: float) -> list[float]:
    return field(default_factory=lambda: [low, high])


@dataclass
class LineStyle:
    """Ranges the composer draws from (lengths in units of the line's digit height unless said otherwise)."""

    # Pixels. The reader scales each line to one digit height, but its estimate of a line's height varies.
    digit_height: list[float] = _range(17.0, 25.0)
    height_jitter: float = 0.12  # each digit's own scale, +-
    touching: float = 0.5  # chance that two neighbours are set close: touching or overlapping
    close_gap: list[float] = _range(-0.15, 0.03)  # gap between the ink boxes of close neighbours (<0: overlap)
    apart_gap: list[float] = _range(0.03, 0.7)
    baseline: float = 0.1  # each digit's baseline, +-
    degrees: float = 3.0  # the whole line's rotation, +-
    digit_degrees: float = 8.0  # each digit's own rotation on top, +-
    slant: float = 0.25  # each digit's shear, +- (x per y)
    aspect: float = 0.0  # each digit's width scaled on its own, +- this fraction
    elastic: float = 0.0  # elastic distortion: std of a smooth displacement field, in pixels of the 28-px frame
    thickness: list[float] = _range(-0.6, 1.0)  # <0: thinner (towards a 3x3 erosion), >0: bolder (dilation)
    blur: float = 1.0  # Gaussian sigma in pixels, up to
    low_res: float = 0.3  # chance that a batch's lines lost resolution (down- then up-sampled)
    gain: list[float] = _range(1.0, 2.2)  # contrast: the reader's ink is normalised, strokes near 1
    noise: float = 0.06  # Gaussian noise near the strokes, sigma up to


Uniform = Callable[..., torch.Tensor]  # uniform(shape, low, high): values drawn uniformly in [low, high)


def _uniform_sampler(generator: torch.Generator | None, device: torch.device) -> Uniform:
    """Uniform draws made on the CPU (the same numbers on every device for a seed), then moved to `device`."""
    def uniform(shape: int | tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device="cpu").to(device) * (high - low) + low

    return uniform


@dataclass(frozen=True)
class Placement:
    """Where and how each digit of a batch of lines is drawn: B lines of L slots, lengths in canvas pixels."""

    present: torch.Tensor  # (B, L) whether the slot holds a digit (a line may be shorter than L)
    line_height: torch.Tensor  # (B, 1) the line's digit height
    scale: torch.Tensor  # (B, L) canvas pixels per frame pixel, vertically
    x_scale: torch.Tensor  # (B, L) the same, horizontally
    starts: torch.Tensor  # (B, L) canvas column of the left edge of each digit's ink
    centers: torch.Tensor  # (B, L) canvas column of each digit's middle
    baselines: torch.Tensor  # (B, L) canvas row of each digit's baseline
    shear: torch.Tensor  # (B, L) slant, x per y
    turn: torch.Tensor  # (B, L) rotation in radians: the line's and the digit's own
    width: int  # the lines' canvas width: the longest line's, rounded up to 16

    @property
    def origin(self) -> torch.Tensor:
        """(B, L) canvas column of the first pixel of each digit's window."""
        return torch.floor(self.starts) - WINDOW_LEFT


class LineComposer:
    """Lines of digits from `digits` (N, 28, 28) uint8, light on black, with their labels."""

    def __init__(self, digits: torch.Tensor, labels: torch.Tensor, height: int = 32, style: LineStyle | None = None):
        self.glyphs = digits.float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
        self.labels = labels.long()
        self.height = height
        self.style = style or LineStyle()
        ink = self.glyphs[:, 0] > 0.1
        index = torch.arange(FRAME, device=digits.device, dtype=torch.float32)
        columns, rows = ink.any(1), ink.any(2)
        # Ink extents of each digit in its frame (first and last column or row holding ink).
        self.left = torch.where(columns, index, float(FRAME)).amin(1)
        self.right = torch.where(columns, index, -1.0).amax(1)
        self.bottom = torch.where(rows, index, -1.0).amax(1)

    def random_picks(self, count: int, max_digits: int, generator: torch.Generator | None = None,
                     min_digits: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` lines' digit indices (count, max_digits) and lengths (count,), lengths uniform in
        [min_digits, max_digits]."""
        device = self.labels.device
        picks = torch.randint(0, len(self.labels), (count, max_digits), generator=generator, device="cpu")
        lengths = torch.randint(min_digits, max_digits + 1, (count,), generator=generator, device="cpu")
        return picks.to(device), lengths.to(device)

    @torch.no_grad()
    def compose(self, picks: torch.Tensor, lengths: torch.Tensor, augment: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (B, 1, height, W), CTC targets (digit values of every line, concatenated) and target lengths.
        W is the longest line's width (rounded up to 16); shorter lines are padded with black."""
        placement = self._place(picks, lengths, generator)
        drawn = self._draw(picks, placement, generator)
        images = self._merge(drawn, placement)
        if augment:
            images = self.augment(images, generator)
        targets = self.labels[picks][placement.present]
        return images.clamp_(0, 1), targets, lengths

    # The steps of `compose`. They draw their random numbers in the order they always have (the order below), so
    # that a seed still composes the same lines: the test split's fixed lines, a resumed run's next batches.

    def _place(self, picks: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None) -> Placement:
        """Each digit's size and place in its line (`_spacing`), then its pose (`_pose`)."""
        style, device = self.style, picks.device
        batch, slots = picks.shape
        uniform = _uniform_sampler(generator, device)
        present = torch.arange(slots, device=device)[None, :] < lengths[:, None]  # (B, L)
        line_height = uniform((batch, 1), *style.digit_height)
        scale = line_height * uniform((batch, slots), 1 - style.height_jitter, 1 + style.height_jitter) / BOX
        x_scale = scale * uniform((batch, slots), 1 - style.aspect, 1 + style.aspect) if style.aspect else scale
        widths = (self.right[picks] - self.left[picks] + 1) * x_scale
        starts = self._spacing(widths, line_height, uniform, generator)
        ends = torch.where(present, starts + widths, torch.zeros_like(starts)).amax(1)
        starts = torch.where(present, starts, torch.zeros_like(starts))  # unused slots: drawn blank, kept in range
        margin = uniform((batch,), 0.1, 0.6) * line_height[:, 0]
        width = int(math.ceil(float((ends + margin).max()) / 16) * 16)
        centers = starts + widths / 2
        baselines, shear, turn = self._pose(centers, ends, line_height, uniform)
        return Placement(present, line_height, scale, x_scale, starts, centers, baselines, shear, turn, width)

    def _spacing(self, widths: torch.Tensor, line_height: torch.Tensor, uniform: Uniform,
                 generator: torch.Generator | None) -> torch.Tensor:
        """Canvas column of the left edge of each digit's ink (B, L): the previous digit's right edge plus a gap,
        close (touching or overlapping: a negative gap) or apart; the first gap is the left margin."""
        style, device = self.style, widths.device
        batch, slots = widths.shape
        close = torch.rand((batch, slots), generator=generator).to(device) < style.touching
        gaps = torch.where(close, uniform((batch, slots), *style.close_gap), uniform((batch, slots), *style.apart_gap))
        gaps[:, 0] = uniform((batch,), 0.1, 0.6)  # the left margin
        gaps = gaps * line_height
        starts = torch.cumsum(gaps + torch.cat([torch.zeros_like(widths[:, :1]), widths[:, :-1]], 1), 1)
        return torch.maximum(starts, torch.zeros_like(starts))

    def _pose(self, centers: torch.Tensor, ends: torch.Tensor, line_height: torch.Tensor,
              uniform: Uniform) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each digit's baseline row, shear and turn (radians), all (B, L).

        The line turns by an angle about its middle: each digit turns by it about its own centre (and by its own
        angle on top), and its baseline moves up or down with its distance from the middle."""
        style = self.style
        batch, slots = centers.shape
        angle = uniform((batch, 1), -style.degrees, style.degrees) * (math.pi / 180)
        baseline = self.height / 2 + line_height * 0.5 + uniform((batch, 1), -1.5, 1.5)
        baselines = (baseline + uniform((batch, slots), -style.baseline, style.baseline) * line_height
                     + torch.sin(angle) * (centers - ends.view(batch, 1) / 2))
        shear = uniform((batch, slots), -style.slant, style.slant)
        turn = angle + uniform((batch, slots), -style.digit_degrees, style.digit_degrees) * (math.pi / 180)
        return baselines, shear, turn

    def _draw(self, picks: torch.Tensor, placement: Placement, generator: torch.Generator | None) -> torch.Tensor:
        """Each digit drawn into its window (B, L, height, WINDOW): the WINDOW canvas columns from
        `placement.origin`, a little left of its ink (only these pixels are sampled); empty slots are black."""
        batch, slots = picks.shape
        grid = self._frame_points(picks, placement).view(batch * slots, self.height, WINDOW, 2)
        if self.style.elastic:
            grid = grid + self._displacements(grid, self.style.elastic, generator)
        drawn = F.grid_sample(self.glyphs[picks.view(-1)], grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
        return drawn.view(batch, slots, self.height, WINDOW) * placement.present.view(batch, slots, 1, 1)

    def _frame_points(self, picks: torch.Tensor, placement: Placement) -> torch.Tensor:
        """For every pixel of every digit's window, the point of the digit's 28-px frame drawn there, in
        grid_sample's units: (B, L, height, WINDOW, 2). The inverse of the digit's transform: turned back about
        its middle, unsheared, unscaled, its ink's left and bottom edges put back where they are in the frame."""
        device = picks.device
        batch, slots = picks.shape
        view = (batch, slots, 1, 1)
        xs = placement.origin.view(view) + torch.arange(WINDOW, device=device).view(1, 1, 1, -1) + 0.5
        ys = torch.arange(self.height, device=device, dtype=torch.float32).view(1, 1, -1, 1) + 0.5
        s, sx, b, c = (placement.scale.view(view), placement.x_scale.view(view), placement.baselines.view(view),
                       placement.centers.view(view))
        start, shear = placement.starts.view(view), placement.shear.view(view)
        middle = b - 0.5 * placement.line_height.view(batch, 1, 1, 1)
        cos, sin = torch.cos(placement.turn).view(view), torch.sin(placement.turn).view(view)
        x = c + cos * (xs - c) + sin * (ys - middle)  # canvas point -> the same point of the unturned digit
        y = middle - sin * (xs - c) + cos * (ys - middle)
        x_frame = (x - start + shear * (y - b)) / sx + self.left[picks].view(view)
        y_frame = (y - b) / s + self.bottom[picks].view(view) + 1.0
        return torch.stack([x_frame * (2 / FRAME) - 1, y_frame * (2 / FRAME) - 1], -1)

    def _merge(self, drawn: torch.Tensor, placement: Placement) -> torch.Tensor:
        """The digits' windows merged into their lines by a scatter-maximum: (B, 1, height, placement.width)."""
        batch, slots = drawn.shape[:2]
        device, width = drawn.device, placement.width
        padded = width + WINDOW + WINDOW_LEFT  # room for windows that reach past either end
        columns = (placement.origin.long() + WINDOW_LEFT).view(batch, slots, 1, 1) + torch.arange(WINDOW, device=device)
        rows = torch.arange(self.height, device=device).view(1, 1, -1, 1)
        lines = torch.arange(batch, device=device).view(batch, 1, 1, 1)
        index = (lines * self.height + rows) * padded + columns
        canvas = torch.zeros(batch * self.height * padded, device=device)
        canvas.scatter_reduce_(0, index.reshape(-1), drawn.reshape(-1), "amax")
        return canvas.view(batch, 1, self.height, padded)[..., WINDOW_LEFT: WINDOW_LEFT + width]

    @staticmethod
    def _displacements(grid: torch.Tensor, pixels: float, generator: torch.Generator | None) -> torch.Tensor:
        """Elastic distortion of each digit (Simard et al. 2003, as a coarse field): random displacements at 4x4
        control points of its frame, `pixels` frame pixels std, interpolated bicubically to where `grid`
        samples the frame. Returned in grid_sample's units (2 / FRAME per frame pixel)."""
        field = torch.randn((grid.shape[0], 2, 4, 4), generator=generator).to(grid.device) * (pixels * 2 / FRAME)
        moved = F.grid_sample(field, grid, mode="bicubic", padding_mode="border", align_corners=True)
        return moved.permute(0, 2, 3, 1)  # (N, H, W, 2)

    def augment(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stroke thickness, blur, lost resolution, contrast and noise, each line by its own amount."""
        style, device = self.style, images.device
        batch = images.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            return (torch.rand(batch, generator=generator).to(device) * (high - low) + low).view(batch, 1, 1, 1)

        thickness = uniform(*style.thickness)
        # Towards a 3x3 dilation (thickness > 0) or erosion (< 0), by the line's own fraction. Both are computed
        # for every line and weighted, rather than picked by a boolean mask, which would wait for the GPU.
        dilated, eroded = F.max_pool2d(images, 3, 1, 1), -F.max_pool2d(-images, 3, 1, 1)
        images = images + thickness.clamp(min=0) * (dilated - images) + (-thickness).clamp(min=0) * (eroded - images)
        images = _gaussian_blur(images, uniform(0.0, style.blur).view(batch))
        if float(torch.rand((), generator=generator)) < style.low_res:
            factor = float(torch.empty(()).uniform_(0.45, 0.8, generator=generator))
            size = images.shape[-2:]
            small = F.interpolate(images, scale_factor=factor, mode="area")
            images = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        images = (images * uniform(*style.gain)).clamp(0, 1)
        near = images > 0.02  # the reader keeps only ink near the strokes (blurred, they reach a little further)
        noise = torch.randn(images.shape, generator=generator).to(device) * uniform(0.0, style.noise)
        return (images + noise * near).clamp(0, 1)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Each image blurred by its own sigma (separable, one grouped convolution per axis); sigma 0 leaves it."""
    batch = images.shape[0]
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, k); a tiny sigma gives (0, .., 1, .., 0)
    flat = images.transpose(0, 1)  # (1, B, H, W): one group per image
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(batch, 1, 1, -1), groups=batch)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(batch, 1, -1, 1), groups=batch)
    return flat.transpose(0, 1)
