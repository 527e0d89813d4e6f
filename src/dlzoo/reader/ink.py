"""Finding the ink in a picture of numbers: polarity, uneven light, noise, and a working scale.

Two passes. A coarse pass on a small copy finds how tall the digits are; the picture is then resized so that digits
are `WORK_HEIGHT` pixels tall, and every later step (kernels, speck sizes, cut margins) works in those fixed units,
whatever the resolution of the photo or scan.

Thresholding is adaptive: the paper's brightness is estimated around every pixel (a grey opening with a kernel a
few strokes wide removes the strokes and keeps the light gradient), ink is measured against it, and the contrast of
dark ink is divided by the local paper brightness so that a shadowed corner reads like a lit one (and must stand
out from the sensor's noise before that division, which amplifies the noise in shade too). The coarse pass measures
ink near steep edges only, steep against the picture's own steepest ink, so the soft edge of a hand's shadow does not
pass for a digit while blurred digits, as steep as the rest of their picture, do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dlzoo.vision.io import shrink, to_gray

WORK_HEIGHT = 40  # digit height in pixels at which segmentation works
COARSE_PIXELS = 400_000  # the coarse pass looks at a copy of at most this many pixels
MAX_WORK_PIXELS = 6_000_000
MIN_CONTRAST = 0.08  # weaker ink than this (a fraction of the paper's brightness) is not ink
# A part this many times wider than tall, and mostly ink within its box, is a rule or an underline, not digits
# (eight touching digits are about five times wider than tall, and digits touching a rule leave most of the box
# empty): it says nothing of the digits' height.
RULE_ASPECT = 10
RULE_FILL = 0.5
TAIL_FACTOR = 3  # scarce ink stands out from the paper this many times as far as the paper's strongest 0.1%
FAINT = 0.5  # parts whose strongest contrast is below this share of the strongest part's are not measured
MIN_DIGIT_HEIGHT = 8  # picture pixels: shorter parts are specks (no digit that small can be read)
# Slopes, in the coarse pass, are changes of the log brightness per pixel of the small copy (light falls alike on
# ink and paper, so a slope in shade is as steep as in full light). A stroke's edge, even blurred, is steep; the edge
# of a hand's shadow is 5-20 pixels soft there and rises 0.013-0.042 (measured on `bench reader-limits` pages;
# stains less still), the digits of `bench reader`, blurred or not, 0.079 or more (300 + 300 of its pictures).
STEEP_SHARE = 0.25  # an edge at least this share as steep as the picture's steepest ink is a stroke's
STEEP_FLOOR = 0.05  # and at least this steep (a picture of a shadow alone has no steeper ink to compare with)
STEEP_REACH = 3  # pixels of the small copy: ink this close to a steep edge belongs to the stroke
NOISE_FACTOR = 4  # ink stands this many times the noise's sigma above the paper, in grey levels
NEAR = 9  # pixels: the neighbourhood of scarce ink whose contrast sets its threshold
HALF_SIZE_PAPER_PIXELS = 1_000_000  # a working picture this large has its paper found at half its size
SAMPLE_PIXELS = 250_000  # the paper's level and noise are measured on about this many pixels of a larger picture


@dataclass(frozen=True)
class InkMap:
    """The picture's ink at working scale: `ink` in [0, 1] (soft, for crops) and `mask` (strokes)."""

    ink: np.ndarray
    mask: np.ndarray
    scale: float  # working pixels per picture pixel
    light_ink: bool


def find_ink(image: np.ndarray) -> InkMap | None:
    """The ink of a uint8 grey or RGB picture, or None when the picture holds no ink (blank paper)."""
    gray = to_gray(image).astype(np.float32) / 255.0
    light_ink = ink_is_light(gray)
    bright_ink = gray if light_ink else 1.0 - gray  # from here on ink is bright, as in MNIST
    digit_height = _coarse_digit_height(bright_ink, light_ink)
    if digit_height is None:
        return None
    scale = WORK_HEIGHT / digit_height
    scale = min(scale, (MAX_WORK_PIXELS / gray.size) ** 0.5)
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    work = cv2.resize(bright_ink, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    work = cv2.GaussianBlur(work, (0, 0), WORK_HEIGHT / 40)  # sensor noise is finer than any stroke
    paper = _working_paper(work)
    ink = _relative(work - paper, paper, light_ink)
    level = _ink_level(ink)
    if level is None:
        return None
    mask = (ink > level) & _above_noise(work - paper)
    soft = np.clip(ink / max(float(np.percentile(ink[mask], 95)), 1e-6), 0.0, 1.0) if mask.any() else ink
    return InkMap(soft.astype(np.float32), mask, scale, light_ink)


def ink_is_light(gray: np.ndarray) -> bool:
    """True for light ink on dark paper. Ink is the minority of pixels that differ from the paper around them:
    compare how much of the picture is far darker, and far lighter, than a local median (a light gradient adds as
    much of one as of the other, so it does not tip the balance) and than the picture's median, the paper at large.
    Without the second, lit paper next to a shadow or a table's edge, lighter than the dark around it, counted as
    light ink: a sliver of it between the two was read as a `1`."""
    small = shrink(gray, COARSE_PIXELS // 4)
    window = _odd(min(small.shape))
    background = cv2.medianBlur((small * 255).astype(np.uint8), min(window, 255)).astype(np.float32) / 255
    residual = small - background
    noise = 1.4826 * float(np.median(np.abs(residual)))
    floor = max(3 * noise, 0.04)
    paper = float(np.median(small))
    darker = float(np.clip(np.minimum(-residual, paper - small) - floor, 0, None).sum())
    lighter = float(np.clip(np.minimum(residual, small - paper) - floor, 0, None).sum())
    return lighter > darker


def _coarse_digit_height(bright_ink: np.ndarray, light_ink: bool) -> float | None:
    """Typical height (in picture pixels) of the ink's connected parts, from a small copy of the picture."""
    small = shrink(bright_ink, COARSE_PIXELS)
    factor = bright_ink.shape[0] / small.shape[0]
    # A wide square kernel (a third of the short side) is larger than any stroke, and cheap (separable).
    ink = _local_contrast(small, light_ink, kernel=_odd(min(small.shape) / 3), shape=cv2.MORPH_RECT)
    level = _ink_level(ink)
    if level is None:
        return None
    mask = _on_steep_edges(ink > level, ink, small if light_ink else 1.0 - small)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    measured = _strong(labels, stats, ink)
    areas, heights = stats[1:, cv2.CC_STAT_AREA][measured], stats[1:, cv2.CC_STAT_HEIGHT][measured]
    if len(areas) == 0 or areas.max() < 4:
        return None
    # Broken strokes give short parts and touching digits wide ones; heights of the larger parts are steady.
    large = heights[areas >= 0.1 * areas.max()]
    height = float(np.percentile(large, 75)) * factor
    return height if height >= MIN_DIGIT_HEIGHT else None  # specks, which blown up to digit size read as digits


def _strong(labels: np.ndarray, stats: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Per part (label 1 on), whether it says how tall the digits are: not a rule, and about as strong as the
    strongest part (what is left of a shadow's curved edge, where the wide kernel does not fit, is faint)."""
    widths, tall = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    rules = (widths >= RULE_ASPECT * tall) & (stats[1:, cv2.CC_STAT_AREA] >= RULE_FILL * widths * tall)
    peaks = np.zeros(len(stats), np.float32)
    np.maximum.at(peaks, labels.ravel(), ink.ravel())
    return ~rules & (peaks[1:] >= FAINT * peaks[1:].max(initial=0.0))


def _on_steep_edges(mask: np.ndarray, ink: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """`mask` without the ink on gentle slopes: the blurred edge of a hand's shadow, which the coarse pass's wide
    kernel cannot follow, was taken for one large digit (or, with digits on it, a part several digits tall) and set
    the working scale several times too small. A part mostly far from any steep edge keeps only the pixels near one
    (the digits on a shadow's edge; nothing of a shadow alone); parts of strokes, mostly near their edges, are kept
    whole, so a thick stroke's flat middle stays."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    slope = _log_slope(gray)
    strong = np.concatenate([[False], _strong(labels, stats, ink)])[labels]
    steepest = float(slope[strong].max(initial=0.0))
    steep = slope >= max(STEEP_FLOOR, STEEP_SHARE * steepest)
    near = cv2.dilate(steep.astype(np.uint8), np.ones((2 * STEEP_REACH + 1,) * 2, np.uint8)).astype(bool)
    gentle = np.bincount(labels[mask & ~near], minlength=count) > 0.5 * stats[:, cv2.CC_STAT_AREA]
    return mask & (near | ~gentle[labels])


def _log_slope(gray: np.ndarray) -> np.ndarray:
    """How steeply the log brightness changes, per pixel, once noise and JPEG blocks (finer than an edge) are
    smoothed."""
    smooth = cv2.GaussianBlur(np.log(np.maximum(gray, 2 / 255)), (0, 0), 1.0)
    return np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)) / 8


def _local_contrast(bright_ink: np.ndarray, light_ink: bool, kernel: int, shape: int) -> np.ndarray:
    """Ink minus the local paper level, relative to the paper's brightness for dark ink (`_relative`)."""
    paper = _paper(bright_ink, kernel, shape)
    return _relative(bright_ink - paper, paper, light_ink)


def _working_paper(work: np.ndarray) -> np.ndarray:
    """The paper under the working picture: a round opening a little wider than a stroke. On a large picture (a
    page photo's: up to 6 million pixels) it is found at half the size and enlarged, a quarter of the work for the
    costliest step of finding ink, since paper changes slowly; a smaller one keeps the exact opening."""
    kernel = _odd(0.8 * WORK_HEIGHT)
    if work.size < HALF_SIZE_PAPER_PIXELS:
        return _paper(work, kernel, cv2.MORPH_ELLIPSE)
    height, width = work.shape
    half = cv2.resize(work, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
    paper = _paper(half, _odd(kernel / 2), cv2.MORPH_ELLIPSE)
    return cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)


def _paper(bright_ink: np.ndarray, kernel: int, shape: int) -> np.ndarray:
    """The local paper level: a grey opening removes strokes narrower than the kernel."""
    element = cv2.getStructuringElement(shape, (kernel, kernel))
    # The paper is continued beyond the picture's edges before opening: the opening's own border handling repeats
    # the *eroded* edge, so paper growing darker towards an edge (vignetting, a gradient) left a band of false ink
    # half a kernel wide along it.
    pad = kernel // 2
    padded = cv2.copyMakeBorder(bright_ink, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return cv2.morphologyEx(padded, cv2.MORPH_OPEN, element, borderType=cv2.BORDER_REPLICATE)[pad:-pad, pad:-pad]


def _relative(contrast: np.ndarray, paper: np.ndarray, light_ink: bool) -> np.ndarray:
    """Dark ink on paper: light falls on both, so the contrast scales with the paper's brightness; divide it out."""
    return contrast if light_ink else contrast / np.maximum(1.0 - paper, 0.2)


def _above_noise(contrast: np.ndarray) -> np.ndarray:
    """Where the contrast, before it is made relative to the paper, stands out from the sensor's noise. Noise adds
    the same grey levels in shade as in light, so dividing by a shaded paper's brightness amplified it there, up to
    5 times, above the level the lit paper set: a hand's shadow on grainy, noisy paper was read as dozens of
    digits."""
    paper, noise = _paper_and_noise(contrast)
    return contrast > paper + NOISE_FACTOR * noise


def _paper_and_noise(contrast: np.ndarray) -> tuple[float, float]:
    """The paper's contrast and the noise's sigma: the median and the MAD (scaled as a Gaussian's sigma), of an even
    grid of at most ~`SAMPLE_PIXELS` of the picture's pixels. On a page photo's working picture (up to 6 million
    pixels) the full medians cost a quarter of finding its ink, and a quarter of a million pixels pin them down."""
    step = max(1, math.isqrt(contrast.size // SAMPLE_PIXELS))
    sample = contrast[::step, ::step]
    paper = float(np.median(sample))
    return paper, 1.4826 * float(np.median(np.abs(sample - paper)))


def _ink_level(contrast: np.ndarray) -> float | None:
    """Threshold between paper and ink: Otsu's, kept above the noise; None when nothing stands out. The paper is
    measured robustly (`_paper_and_noise`)."""
    paper, noise = _paper_and_noise(contrast)
    strong = max(MIN_CONTRAST, paper + 6 * noise)
    peak = float(np.percentile(contrast, 99.9))
    if peak >= strong:
        return max(_otsu(contrast, peak), 4 * noise, MIN_CONTRAST / 2)
    # Less than 0.1% of the picture is ink (small writing on a large page), or none. The strongest 0.1% is then the
    # paper's own (noise, grain, JPEG blocks, what is left of shading), and far from Gaussian: ink must stand out
    # from the paper `TAIL_FACTOR` times as far. Otsu's threshold is taken around those pixels only, as if the
    # picture were cropped to them, and kept above the paper's strongest 0.1%.
    tail = peak
    strong = max(strong, paper + TAIL_FACTOR * (tail - paper))
    near = cv2.dilate((contrast > strong).astype(np.uint8), np.ones((NEAR, NEAR), np.uint8)).astype(bool)
    if not near.any():
        return None
    values = contrast[near]
    return max(_otsu(values, float(values.max())), tail, paper + 4 * noise, MIN_CONTRAST / 2)


def _otsu(values: np.ndarray, peak: float) -> float:
    """Otsu's threshold of `values`, seen on a scale where `peak` (and anything above) is 255."""
    scaled = np.clip(values / peak * 255, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return otsu / 255 * peak


def _odd(value: float) -> int:
    return max(3, int(value) // 2 * 2 + 1)
