"""Reading pictures with a line recognizer (a `digit-lines` run): find the ink and its lines as the classifier
reader does (`ink.py`, `segment.py`), then read each line whole with the CRNN and greedy CTC decoding.

No digit is cut out, so touching and overlapping digits need no segmentation: each line is cropped (its own ink
only, with soft edges), scaled so its digits are as tall as in training, and the network reads the strip. Where a
digit lies is known only roughly, from the frames CTC read it at: each ink column of the line goes to the nearest
digit's peak frame, and a digit's box is the ink of its columns.

Optionally a `digits` classifier reads along (`classifier=`): every digit the CRNN found on ink of its own (whole
connected components in which no other digit was read, as when digits stand apart) is cropped and classified as
the segmenting reader would, and the two opinions are combined. The line recognizer learns digit shapes only
from lines; the isolated classifier, trained with its own augmentation, errs on other digits, so together they
misread fewer (`dlzoo bench reader ... classifier_run=`, docs/reading.md).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dlzoo.errors import UserError
from dlzoo.reader.ctc import Symbol, digit_shares, greedy_decode
from dlzoo.reader.grouping import box_of
from dlzoo.reader.ink import InkMap, find_ink
from dlzoo.reader.read import (
    DIGITS,
    DigitReader,
    ReadDigit,
    Reading,
    _crop,
    is_line_recognizer,
    own_ink,
)
from dlzoo.reader.segment import Atom, Line, Segmentation, segment
from dlzoo.tasks.base import Task
from dlzoo.vision.io import Picture, load_picture

MARGIN = 0.3  # paper kept left and right of a line, in digit heights (training lines have 0.1-0.6)
# How much the classifier's log-probabilities count against the CRNN's (log-linear pooling): an even vote, set
# before measuring, not tuned on the held-out pictures.
CLASSIFIER_WEIGHT = 0.5


class Strip:
    """A line as the network sees it, and how to map its columns back to the working picture."""

    def __init__(self, pixels: np.ndarray, origin_x: float, factor: float, line: Line):
        self.pixels = pixels  # float32 (height, width) in [0, 1], light ink on black
        self.origin_x = origin_x  # working-scale column of the strip's column 0
        self.factor = factor  # strip pixels per working pixel
        self.line = line


class LineReader:
    """A trained line recognizer used to read whole pictures; same results as `DigitReader.read`."""

    def __init__(self, task: Task, classifier: DigitReader | None = None):
        if not is_line_recognizer(task) or task.meta.get("classes") != DIGITS or not hasattr(task, "logits"):
            raise UserError("reading lines needs a line recognizer run (recipe digit-lines)")
        self.task = task
        self.classifier = classifier
        self.height = int(task.meta["height"])
        self.digit_height = float(task.meta["digit_height"])
        self.stride = int(getattr(task.models["net"], "frame_stride", 2))

    def read(self, image: Picture) -> Reading:
        picture = load_picture(image)
        ink = find_ink(picture)
        if ink is None:
            return Reading("", ())
        segmentation = segment(ink.mask, cut=False)
        strips = [self.strip(segmentation, ink, line) for line in segmentation.lines]
        if not strips:
            return Reading("", ())
        probabilities = self.probabilities([strip.pixels for strip in strips])
        digits: list[ReadDigit] = []
        for number, (strip, line_probabilities) in enumerate(zip(strips, probabilities, strict=True)):
            symbols = greedy_decode(line_probabilities)
            boxes = self._boxes(segmentation, strip, symbols)
            scores = [digit_shares(line_probabilities[symbol.peak]) for symbol in symbols]
            if self.classifier is not None:
                scores = self._with_classifier(segmentation, ink, strip, symbols, scores)
            digits += [ReadDigit.from_probabilities(digit_scores, box, ink.scale, number)
                       for digit_scores, box in zip(scores, boxes, strict=True)]
        return Reading.from_digits(digits)

    def strip(self, segmentation: Segmentation, ink: InkMap, line: Line) -> Strip:
        """The line's own ink (other lines and specks masked out), scaled so its digits are `digit_height` tall,
        or less when the line is too slanted or uneven to fit the strip, centred in it."""
        x0, y0, x1, y1 = box_of(line.atoms)
        pad_x, pad_y = round(MARGIN * line.digit_height), 2
        top, left = max(0, y0 - pad_y), max(0, x0 - pad_x)
        crop = own_ink(segmentation, ink, line.atoms, (slice(top, y1 + pad_y), slice(left, x1 + pad_x)))
        factor = min(self.digit_height / line.digit_height, (self.height - 2) / (y1 - y0))
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        scaled = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        # Centre the line's ink box (not the padded crop) in the strip.
        offset = round(self.height / 2 - ((y0 + y1) / 2 - top) * factor)
        pixels = np.zeros((self.height, size[0]), np.float32)
        src0, dst0 = max(0, -offset), max(0, offset)
        rows = min(size[1] - src0, self.height - dst0)
        pixels[dst0: dst0 + rows] = scaled[src0: src0 + rows]
        return Strip(np.clip(pixels, 0, 1), float(left), factor, line)

    def probabilities(self, strips: list[np.ndarray]) -> list[np.ndarray]:
        """Per-frame class probabilities (frames, 11) of each strip; strips batched, padded right with black."""
        width = max(strip.shape[1] for strip in strips)
        width = max(16, -(-width // 16) * 16)
        batch = np.zeros((len(strips), 1, self.height, width), np.float32)
        for index, strip in enumerate(strips):
            batch[index, 0, :, : strip.shape[1]] = strip
        images = torch.from_numpy(batch).to(self.task.runtime.device)
        with torch.inference_mode():
            probabilities = self.task.logits(images).float().softmax(-1).cpu().numpy()
        # Frames past a strip's own end read padding; keep those that cover the strip.
        return [p[: -(-strip.shape[1] // self.stride)] for p, strip in zip(probabilities, strips, strict=True)]

    def _boxes(self, segmentation: Segmentation, strip: Strip,
               symbols: list[Symbol]) -> list[tuple[int, int, int, int]]:
        """Working-scale boxes (x0, y0, x1, y1): each ink column of the line goes to the symbol whose peak frame is
        nearest, and a symbol's box is the ink of its columns."""
        if not symbols:
            return []
        line = strip.line
        x0, y0 = min(a.box[0] for a in line.atoms), min(a.box[1] for a in line.atoms)
        x1, y1 = max(a.box[2] for a in line.atoms), max(a.box[3] for a in line.atoms)
        own = np.isin(segmentation.labels[y0:y1, x0:x1], [atom.label for atom in line.atoms])
        peaks = self._peaks(strip, symbols)
        columns = np.arange(x0, x1) + 0.5
        nearest = np.abs(columns[:, None] - peaks[None, :]).argmin(1)
        boxes = []
        for index, peak in enumerate(peaks):
            mine = own[:, nearest == index]
            cols = np.flatnonzero(nearest == index)
            rows = np.flatnonzero(mine.any(1)) if mine.size else np.array([], np.int64)
            if len(rows) == 0:  # no ink near the peak (should not happen): a digit-sized box around it
                half = line.digit_height / 3
                boxes.append((round(peak - half), y0, round(peak + half), y1))
                continue
            ink_cols = cols[mine.any(0)]
            boxes.append((x0 + int(ink_cols.min()), y0 + int(rows.min()), x0 + int(ink_cols.max()) + 1,
                          y0 + int(rows.max()) + 1))
        return boxes

    def _peaks(self, strip: Strip, symbols: list[Symbol]) -> np.ndarray:
        """Working-scale column of each symbol's peak frame."""
        return np.array([strip.origin_x + (symbol.peak + 0.5) * self.stride / strip.factor for symbol in symbols])

    def _with_classifier(self, segmentation: Segmentation, ink: InkMap, strip: Strip, symbols: list[Symbol],
                         scores: list[np.ndarray]) -> list[np.ndarray]:
        """Each symbol's digit probabilities, pooled with the classifier's where the symbol's ink is its own."""
        owned = own_atoms(strip.line.atoms, self._peaks(strip, symbols))
        alone = [index for index, atoms in enumerate(owned) if atoms]
        if not alone:
            return scores
        crops = [_crop(segmentation, ink, owned[index]) for index in alone]
        opinions = self.classifier.classify_prepared(self.classifier.prepare(crops), augment=True)
        pooled = list(scores)
        for index, opinion in zip(alone, opinions, strict=True):
            log_pooled = ((1 - CLASSIFIER_WEIGHT) * np.log(scores[index] + 1e-6)
                          + CLASSIFIER_WEIGHT * np.log(opinion + 1e-6))
            combined = np.exp(log_pooled - log_pooled.max())
            pooled[index] = combined / combined.sum()
        return pooled


def own_atoms(atoms: list[Atom], peaks: np.ndarray) -> list[list[Atom]]:
    """For each symbol (by its peak column), the connected components that are its alone, or [] if it shares one.

    A component goes to the symbol whose peak lies over it (else the nearest peak); one with two or more peaks over
    it holds touching digits, and none of those symbols can be cropped on its own."""
    owned: list[list[Atom]] = [[] for _ in peaks]
    shared: set[int] = set()
    if not len(peaks):
        return owned
    for atom in atoms:
        x0, _, x1, _ = atom.box
        over = np.flatnonzero((peaks >= x0) & (peaks < x1))
        if len(over) > 1:
            shared.update(over.tolist())
        owner = int(over[0]) if len(over) else int(np.abs(peaks - (x0 + x1) / 2).argmin())
        owned[owner].append(atom)
    return [[] if index in shared else atoms_of for index, atoms_of in enumerate(owned)]
