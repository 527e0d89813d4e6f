"""From an ink mask to lines of atoms: the pieces the reader groups into digits.

An atom is a connected part of the ink, or a piece of one cut off by a candidate cut (`cuts.py`). Atoms are
over-segmentation on purpose: a digit with a broken stroke is several atoms, and a blob of touching digits is cut at
every plausible boundary. Which atoms make one digit is decided with the classifier (`grouping.py`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from dlzoo.reader.cuts import find_cuts
from dlzoo.reader.ink import WORK_HEIGHT

SPECK_AREA = (0.12 * WORK_HEIGHT) ** 2  # smaller parts are noise, unless they are tall (a thin stroke)
SPLIT_WIDTH = 0.75  # blobs at least this wide (in digit heights) may hold several digits: look for cuts
# A part whose thickest point is this share of its height or more, and which fills this share of its box, is a blot
# (dirt, a stain), not writing: a pen's stroke is far thinner than the digit it draws (about a tenth of its height;
# a thick marker's a quarter; no part of the held-out digits in `dlzoo bench reader`'s 1,000 pictures reached
# 0.55), and a digit leaves most of its box empty. Parts shorter than `BLOT_HEIGHT` of the tallest are measured
# against that height instead: a piece of a broken stroke or a dot is as thick as it is tall, but only as thick as a
# stroke.
BLOT_THICKNESS = 0.6
BLOT_FILL = 0.55
BLOT_HEIGHT = 0.75


@dataclass
class Atom:
    label: int  # its pixels are `labels == label` in `Segmentation.labels`
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) at working scale
    area: int
    center_x: float
    component: int
    cut_strokes: float | None = None  # strokes crossed by the cut from the previous atom of its component

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class Line:
    atoms: list[Atom] = field(default_factory=list)
    digit_height: float = float(WORK_HEIGHT)


@dataclass
class Segmentation:
    labels: np.ndarray  # int32 atom labels at working scale, 0 for paper
    lines: list[Line]


def segment(mask: np.ndarray, cut: bool = True) -> Segmentation:
    """The mask's parts (specks dropped) as lines of atoms, top to bottom, each line's atoms left to right.
    Without `cut`, every part is one atom (the line recognizer needs lines, not pieces of digits)."""
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    parts = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= SPECK_AREA
             or stats[i, cv2.CC_STAT_HEIGHT] >= 0.4 * WORK_HEIGHT]
    tallest = max((int(stats[i, cv2.CC_STAT_HEIGHT]) for i in parts), default=0)
    parts = [i for i in parts if not is_blot(components, stats, i, BLOT_HEIGHT * tallest)]
    stroke = stroke_width(mask)
    labels = np.zeros(mask.shape, np.int32)
    next_label = itertools.count(1)
    lines = []
    for members in group_lines(stats, parts):
        heights = stats[members, cv2.CC_STAT_HEIGHT]
        line = Line(digit_height=float(np.median(heights[heights >= 0.6 * heights.max()])))
        for component in members:
            line.atoms += _atoms(components, stats, component, line.digit_height, stroke if cut else None, labels,
                                 next_label)
        line.atoms.sort(key=lambda atom: atom.center_x)
        lines.append(line)
    return Segmentation(labels, lines)


def is_blot(components: np.ndarray, stats: np.ndarray, part: int, short: float) -> bool:
    """Whether the part is a blot of ink rather than strokes: solid, and about as thick as it is tall (as `short`
    is, if it is shorter)."""
    x, y, width, height, area = (int(v) for v in stats[part, :5])
    if area < BLOT_FILL * width * height:
        return False
    solid = np.pad(components[y: y + height, x: x + width] == part, 1).astype(np.uint8)
    thickness = 2 * float(cv2.distanceTransform(solid, cv2.DIST_L2, 3).max())
    return thickness >= BLOT_THICKNESS * max(height, short)


def group_lines(stats: np.ndarray, parts: list[int]) -> list[list[int]]:
    """Parts grouped into lines of text, top to bottom. Going left to right, a part joins the line whose last few
    parts it overlaps most in height, so a line may drift up or down (a slightly rotated picture)."""
    lines: list[list[int]] = []
    for part in sorted(parts, key=lambda i: stats[i, cv2.CC_STAT_LEFT]):
        top, height = stats[part, cv2.CC_STAT_TOP], stats[part, cv2.CC_STAT_HEIGHT]
        best, best_overlap = None, 0.0
        for line in lines:
            recent = line[-3:]
            band_top = min(stats[i, cv2.CC_STAT_TOP] for i in recent)
            band_bottom = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in recent)
            overlap = (min(top + height, band_bottom) - max(top, band_top)) / min(height, band_bottom - band_top)
            if overlap > max(best_overlap, 0.4):
                best, best_overlap = line, overlap
        if best is None:
            lines.append([part])
        else:
            best.append(part)
    lines = _merge_nested(stats, lines)
    # A line of nothing but small parts (dust, a dotted rule) holds no digit.
    lines = [line for line in lines if stats[line, cv2.CC_STAT_HEIGHT].max() >= 0.4 * WORK_HEIGHT]
    return sorted(lines, key=lambda line: float(np.median([_center_y(stats, i) for i in line])))


def _merge_nested(stats: np.ndarray, lines: list[list[int]]) -> list[list[int]]:
    """A line lying mostly within the height of a taller line, next to it, joins it: the lower half of a broken 7
    met before its top (so it started a line of its own), or a line split by a strong slant."""
    def extent(line: list[int]) -> tuple[int, int, int, int]:
        return (min(stats[i, cv2.CC_STAT_LEFT] for i in line), min(stats[i, cv2.CC_STAT_TOP] for i in line),
                max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in line),
                max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in line))

    lines = sorted(lines, key=lambda line: extent(line)[3] - extent(line)[1])  # shortest first
    index = 0
    while index < len(lines):
        x0, y0, x1, y1 = extent(lines[index])
        for other in lines[index + 1:]:  # taller lines
            ox0, oy0, ox1, oy1 = extent(other)
            inside = (min(y1, oy1) - max(y0, oy0)) / (y1 - y0)
            if inside >= 0.6 and x0 < ox1 + WORK_HEIGHT and x1 > ox0 - WORK_HEIGHT:
                other += lines.pop(index)
                break
        else:
            index += 1
    return lines


def _center_y(stats: np.ndarray, part: int) -> float:
    return stats[part, cv2.CC_STAT_TOP] + stats[part, cv2.CC_STAT_HEIGHT] / 2


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: distances to the paper peak at half the width on a stroke's spine."""
    if not mask.any():
        return 1.0
    distances = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return max(1.0, 2.2 * float(np.percentile(distances[mask], 90)))


def _atoms(components: np.ndarray, stats: np.ndarray, component: int, digit_height: float, stroke: float | None,
           labels: np.ndarray, next_label: Iterator[int]) -> list[Atom]:
    """The component as one atom, or as the pieces between its candidate cuts; pieces are written to `labels`.
    `stroke` None: no cuts."""
    x, y, width, height = (int(v) for v in stats[component, :4])
    mask = components[y: y + height, x: x + width] == component
    wide = width >= SPLIT_WIDTH * digit_height
    cuts = find_cuts(mask, digit_height, stroke) if stroke is not None and wide else []
    columns = np.arange(width)[None, :]
    bounds = [np.zeros(height, np.int64), *(cut.path for cut in cuts), np.full(height, width)]
    atoms = []
    for index in range(len(bounds) - 1):
        piece = mask & (columns >= bounds[index][:, None]) & (columns < bounds[index + 1][:, None])
        ys, xs = np.nonzero(piece)
        if len(ys) == 0:
            continue
        label = next(next_label)
        labels[y: y + height, x: x + width][piece] = label
        strokes = cuts[index - 1].strokes if index > 0 and atoms else None
        atoms.append(Atom(label, (x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1), len(ys),
                          x + float(xs.mean()), component, strokes))
    return atoms
