"""`read_digits(image, model) -> Reading`: the text of handwritten numbers in a picture, line by line.

The steps: find the ink (`ink.py`), split it into lines of atoms (`segment.py`, `cuts.py`), prepare every group of
atoms that may be one digit with the checkpoint's own preprocessing (the function its training digits went through)
and classify them all in one batch, pick the best partition of each line (`grouping.py`), and read the chosen
digits once more with test-time augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from dlzoo.data.images import DIGIT_CLASSES
from dlzoo.errors import UserError
from dlzoo.reader.grouping import box_of, candidate_groups, choose_groups, group_scores
from dlzoo.reader.ink import InkMap, find_ink
from dlzoo.reader.segment import Atom, Line, Segmentation, segment
from dlzoo.tasks.base import Task
from dlzoo.vision.io import Picture, load_picture
from dlzoo.vision.preprocess import preprocessing_from_dict

if TYPE_CHECKING:
    from dlzoo.reader.lines import LineReader

DIGITS = DIGIT_CLASSES  # a digit classifier's classes, as its checkpoint lists them
ALTERNATIVES = 2  # runner-up classes reported per digit
LINE_RECOGNIZER = "line-recognizer"  # the meta["kind"] of a run that reads whole lines (tasks/line_recognition.py)
# The digits finally read are classified five times, turned and scaled within the range of the recipe's training
# augmentation, and the probabilities averaged: held-out mnist5k accuracy 0.992 vs 0.989 for one look (digits run
# with the recipe's defaults, seed 0). Candidates are scored with one look, as there are many.
TTA_VARIANTS = ((0.0, 1.0), (8.0, 1.0), (-8.0, 1.0), (0.0, 1.1), (0.0, 0.9))  # (degrees, scale)


@dataclass(frozen=True)
class ReadDigit:
    value: str
    box: tuple[int, int, int, int]  # x, y, width, height in the picture's pixels
    probability: float
    alternatives: tuple[tuple[str, float], ...]  # runner-up (value, probability) pairs, most likely first
    line: int

    @classmethod
    def from_probabilities(cls, probabilities: np.ndarray, box: tuple[float, float, float, float], scale: float,
                           line: int) -> ReadDigit:
        """A digit from its class probabilities (10,): the likeliest, its probability and the next likeliest;
        `box` is (x0, y0, x1, y1) in the picture scaled by `scale`."""
        order = np.argsort(probabilities)[::-1]
        x0, y0, x1, y1 = (round(v / scale) for v in box)
        width, height = max(1, x1 - x0), max(1, y1 - y0)  # a sliver of ink may round to nothing
        return cls(DIGITS[order[0]], (x0, y0, width, height), float(probabilities[order[0]]),
                   tuple((DIGITS[i], float(probabilities[i])) for i in order[1: 1 + ALTERNATIVES]), line)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "box": list(self.box), "probability": round(self.probability, 6),
                "alternatives": [{"value": v, "probability": round(p, 6)} for v, p in self.alternatives],
                "line": self.line}


@dataclass(frozen=True)
class Reading:
    text: str  # digits of each line, lines joined by "\n"; "" when the picture holds no digits
    digits: tuple[ReadDigit, ...]

    @classmethod
    def from_digits(cls, digits: Sequence[ReadDigit]) -> Reading:
        """The digits read, in reading order; the text has a line for each picture line that has any."""
        lines: dict[int, str] = {}
        for digit in digits:
            lines[digit.line] = lines.get(digit.line, "") + digit.value
        return cls("\n".join(lines[number] for number in sorted(lines)), tuple(digits))

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "digits": [digit.to_dict() for digit in self.digits]}


@dataclass(frozen=True)
class LineCandidates:
    line: Line
    groups: list[tuple[int, int]]  # candidate digits: ranges of the line's atoms
    probabilities: np.ndarray  # (len(groups), 10) class probabilities of each candidate
    prepared: np.ndarray  # (len(groups), size, size) each candidate as the classifier sees it

    def chosen(self, scores: np.ndarray | None = None, digit_bonus: float | None = None) -> list[int]:
        """Indices into `groups` of the candidates read as the line's digits, left to right: the line's best
        partition given each candidate's score. By default the scores are `group_scores` (grouping.py's fitted
        weights) and the bonus `DIGIT_BONUS`; `fit.py` passes its own while it fits them."""
        if scores is None:
            scores = group_scores(self.line, self.groups, self.probabilities)
        return [self.groups.index(group) for group in choose_groups(self.line, self.groups, scores, digit_bonus)]


@dataclass(frozen=True)
class Proposal:
    lines: list[LineCandidates]
    scale: float  # working pixels per picture pixel
    segmentation: Segmentation | None


class DigitReader:
    """A trained digit classifier (a `digits` run) used to read whole pictures."""

    def __init__(self, task: Task):
        if is_line_recognizer(task):
            raise UserError("this run is a line recognizer: read with dlzoo.reader.load_reader or LineReader")
        wrong = not_a_digit_classifier(task)
        if wrong:
            raise UserError(f"reading numbers needs a digits run (a digit classifier) or a digit-lines run, "
                            f"not {wrong}")
        self.task = task
        self.preprocessing = preprocessing_from_dict(task.meta["preprocess"])

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto") -> DigitReader:
        from dlzoo.runs import load_for_inference, open_run

        return cls(load_for_inference(open_run(run_dir), device))

    def read(self, image: Picture) -> Reading:
        picture = load_picture(image)
        proposal = self.propose(picture)
        chosen = []  # (line number, atoms, prepared crop) of every digit read, in reading order
        for number, line in enumerate(proposal.lines):
            for index in line.chosen():
                start, stop = line.groups[index]
                chosen.append((number, line.line.atoms[start:stop], line.prepared[index]))
        if not chosen:
            return Reading("", ())
        probabilities = self.classify_prepared(np.stack([prepared for _, _, prepared in chosen]), augment=True)
        return Reading.from_digits([ReadDigit.from_probabilities(p, box_of(atoms), proposal.scale, number)
                                    for (number, atoms, _), p in zip(chosen, probabilities, strict=True)])

    def propose(self, picture: np.ndarray) -> Proposal:
        """Every way the picture's ink could split into digits, each candidate read by the classifier."""
        ink = find_ink(picture)
        if ink is None:
            return Proposal([], 1.0, None)
        segmentation = segment(ink.mask)
        candidates = [candidate_groups(line) for line in segmentation.lines]
        crops = [_crop(segmentation, ink, line.atoms[start:stop])
                 for line, groups in zip(segmentation.lines, candidates, strict=True) for start, stop in groups]
        prepared = self.prepare(crops)
        probabilities = self.classify_prepared(prepared)
        lines, offset = [], 0
        for line, groups in zip(segmentation.lines, candidates, strict=True):
            window = slice(offset, offset + len(groups))
            lines.append(LineCandidates(line, groups, probabilities[window], prepared[window]))
            offset += len(groups)
        return Proposal(lines, ink.scale, segmentation)

    def prepare(self, crops: list[np.ndarray]) -> np.ndarray:
        """Crops of light ink on black, each prepared by the checkpoint's preprocessing -> float32 (N, size, size)."""
        size = self.preprocessing.size
        return np.stack([self.preprocessing(crop) for crop in crops]) if crops else np.zeros((0, size, size),
                                                                                                np.float32)

    def classify_prepared(self, prepared: np.ndarray, augment: bool = False) -> np.ndarray:
        """Class probabilities (N, 10); with `augment`, averaged over `TTA_VARIANTS` of every digit."""
        if not len(prepared):
            return np.zeros((0, len(DIGITS)), np.float32)
        images = torch.from_numpy(prepared).unsqueeze(1).to(self.task.runtime.device)
        variants = TTA_VARIANTS if augment else TTA_VARIANTS[:1]
        with torch.inference_mode():
            probabilities = sum(self.task.logits(_turned(images, degrees, scale)).softmax(1)
                                for degrees, scale in variants) / len(variants)
        return probabilities.cpu().numpy()


def is_line_recognizer(task: Task) -> bool:
    """Whether a loaded run reads whole lines (a `digit-lines` run): its checkpoint's meta says so."""
    return task.meta.get("kind") == LINE_RECOGNIZER


def not_a_digit_classifier(task: Task) -> str | None:
    """What a loaded run is instead of a digit classifier, in a user's terms ("a vae-digits run (...)"); None for a
    digit classifier (a run with `logits` over the classes 0-9, such as a `digits` run)."""
    recipe = task.config.recipe
    if is_line_recognizer(task):
        return f"a {recipe} run (a line recognizer)"
    if not hasattr(task, "logits"):  # a generative run (vae-*, cgan-*) has the digits' classes but draws them
        return f"a {recipe} run (it does not classify pictures)"
    classes = task.meta.get("classes")
    if not classes:
        return f"a {recipe} run (it has no classes)"
    if classes != DIGITS:
        return f"a {recipe} run (its classes are {', '.join(map(str, classes))}, not the digits 0-9)"
    return None


def reader_for(task: Task) -> DigitReader | LineReader:
    """The reader that suits a loaded run: a line reader for a line recognizer (its checkpoint's meta says
    `kind: line-recognizer`), the segmenting reader for a digit classifier."""
    if is_line_recognizer(task):
        from dlzoo.reader.lines import LineReader

        return LineReader(task)
    return DigitReader(task)


def load_reader(run_dir: str | Path, device: str = "auto",
                classifier_run: str | Path | None = None) -> DigitReader | LineReader:
    """The reader for a run directory: a `digits` run (or another digit classifier) or a `digit-lines` run, which
    a `digits` run (`classifier_run`) may help by reading each digit that stands on its own."""
    from dlzoo.runs import load_for_inference, open_run

    task = load_for_inference(open_run(run_dir), device)
    if classifier_run is None:
        return reader_for(task)
    if not is_line_recognizer(task):
        raise UserError(f"--classifier helps a digit-lines run read; {run_dir} is a {task.config.recipe} run, not "
                        "one (read with it alone)")
    from dlzoo.reader.lines import LineReader

    return LineReader(task, load_classifier(classifier_run, device))


def load_classifier(run_dir: str | Path, device: str = "auto", option: str = "--classifier") -> DigitReader:
    """The digit classifier that reads along with a line recognizer (`option`, as the user named it), refused in
    the user's terms unless it is one (a `digits` run)."""
    from dlzoo.runs import load_for_inference, open_run

    classifier = load_for_inference(open_run(run_dir), device)
    wrong = not_a_digit_classifier(classifier)
    if wrong:
        raise UserError(f"{option} {run_dir} must be a digits run (a digit classifier), not {wrong}")
    return DigitReader(classifier)


def read_digits(image: Picture, model: DigitReader | LineReader | Task | str | Path) -> Reading:
    """Read the numbers in `image` (a file, an array or a PIL image: `dlzoo.vision.io.load_picture`) with `model`:
    a trained run directory (`digits` or `digit-lines`), a task loaded from one (`dlzoo.runs.load_for_inference`),
    or a reader."""
    from dlzoo.api import TrainedRun
    from dlzoo.reader.lines import LineReader

    if isinstance(model, Task):
        reader = reader_for(model)
    elif isinstance(model, (str, Path)):
        reader = load_reader(model)
    elif isinstance(model, (DigitReader, LineReader)):
        reader = model
    else:  # was "'ndarray' object has no attribute 'read'" for the order of `dlzoo read RUN IMAGE`
        hint = "pass its .run_dir" if isinstance(model, TrainedRun) else "the image comes first"
        raise TypeError(f"read_digits(image, model): model is a run directory, a task from dlzoo.load or a reader, "
                        f"not {type(model).__name__} ({hint})")
    return reader.read(image)


def _turned(images: torch.Tensor, degrees: float, scale: float) -> torch.Tensor:
    """Images rotated by `degrees` and scaled by `scale` about their centre (zero padding, as in training)."""
    if degrees == 0 and scale == 1:
        return images
    angle = np.deg2rad(degrees)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=images.dtype, device=images.device)
    grid = torch.nn.functional.affine_grid(theta.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, align_corners=False)


def own_ink(segmentation: Segmentation, ink: InkMap, atoms: Sequence[Atom], window: tuple[slice, slice]) -> np.ndarray:
    """The ink in `window` (rows, columns) that belongs to `atoms`, with its soft edges (the unlabelled pixels
    around their strokes) but without other atoms' strokes, in [0, 1]."""
    labels = segmentation.labels[window]
    own = np.isin(labels, [atom.label for atom in atoms], kind="table")  # a lookup, not a sort: ~100 crops a picture
    edge = cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ((labels == 0) | own)
    return ink.ink[window] * edge


def _crop(segmentation: Segmentation, ink: InkMap, atoms: list[Atom]) -> np.ndarray:
    """The group's own ink as uint8 light-on-black, with a 2 px border."""
    x0, y0, x1, y1 = box_of(atoms)
    pad = 2
    crop = own_ink(segmentation, ink, atoms, (slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad)))
    return np.pad((crop * 255).astype(np.uint8), pad)
