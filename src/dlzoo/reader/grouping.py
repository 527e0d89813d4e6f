"""Which atoms of a line make one digit: recognition decides segmentation.

Every run of neighbouring atoms that could be one digit (not too wide, no real gap inside) is a candidate, and the
classifier reads each. A candidate's score is the log-odds that it is exactly one whole digit, from the classifier's
confidence, its shape and the cuts it uses (`group_features`); a dynamic programme then picks the partition of the
line with the best total. So a blob of two touching digits is split where both halves read confidently and look
like digits, and a digit with a broken stroke is read whole because its pieces do not.

The weights are a logistic regression fitted on candidates from pictures composed of the mnist5k *training* digits
(`python -m dlzoo.reader.fit RUN_DIR`, which also tunes `DIGIT_BONUS`); the held-out digits are only used to report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlzoo.reader.segment import Atom, Line

MAX_ATOMS = 14  # at most this many atoms in one digit (a wide blob is cut every 0.12 digit heights)
MAX_WIDTH = 1.5  # in digit heights
MAX_GAP = 0.15  # pieces of one digit are at most this far apart (in digit heights)

FEATURES = ("confidence", "margin", "width", "width_squared", "height", "short", "atoms", "cut_left",
            "cut_right", "cuts_inside")
# Fitted by `python -m dlzoo.reader.fit RUN_DIR` for a `digits` run with the recipe's defaults (seed 0).
WEIGHTS = np.array([-0.12, 0.954, 13.424, -7.502, 2.077, 4.211, -0.346, -1.215, -1.366, 0.23])
BIAS = -10.726
# Added per digit read. Higher splits blobs more readily: more touching digits read, more apart ones over-split;
# the fit favours digits apart, the common case (the trade-off is tabled in docs/reading.md).
DIGIT_BONUS = 1.75
SKIP_COST = 1.0  # for leaving a small atom (a speck, a dot) out of every digit


def candidate_groups(line: Line) -> list[tuple[int, int]]:
    """(start, stop) ranges of the line's atoms (sorted left to right) that may form one digit."""
    atoms, height = line.atoms, line.digit_height
    groups = []
    for start in range(len(atoms)):
        left, right = atoms[start].box[0], atoms[start].box[2]
        for stop in range(start + 1, min(len(atoms), start + MAX_ATOMS) + 1):
            if stop > start + 1:
                atom = atoms[stop - 1]
                if atom.box[0] - right > MAX_GAP * height:
                    break
                left, right = min(left, atom.box[0]), max(right, atom.box[2])
                if right - left > MAX_WIDTH * height:
                    break
            groups.append((start, stop))
    return groups


def box_of(atoms: Sequence[Atom]) -> tuple[int, int, int, int]:
    return (min(a.box[0] for a in atoms), min(a.box[1] for a in atoms), max(a.box[2] for a in atoms),
            max(a.box[3] for a in atoms))


def group_features(line: Line, start: int, stop: int, probabilities: np.ndarray) -> np.ndarray:
    """The candidate's features, in the order of `FEATURES`."""
    atoms, height = line.atoms, line.digit_height
    second, first = np.log(np.sort(probabilities)[-2:] + 1e-9)
    x0, y0, x1, y1 = box_of(atoms[start:stop])
    width, tall = (x1 - x0) / height, (y1 - y0) / height

    def cut(index: int) -> float:  # strokes crossed by the cut between atoms index-1 and index, if any
        strokes = atoms[index].cut_strokes if 0 < index < len(atoms) else None
        return strokes or 0.0

    return np.array([first, first - second, width, width**2, tall, min(tall, 0.6), stop - start, cut(start),
                     cut(stop), sum(cut(i) for i in range(start + 1, stop))])


def group_scores(line: Line, groups: list[tuple[int, int]], probabilities: np.ndarray) -> np.ndarray:
    """Log-odds that each candidate is one whole digit."""
    if not groups:
        return np.zeros(0)
    features = np.stack([group_features(line, start, stop, p) for (start, stop), p in zip(groups, probabilities,
                                                                                          strict=True)])
    return features @ WEIGHTS + BIAS


def choose_groups(line: Line, groups: list[tuple[int, int]], scores: np.ndarray,
                  digit_bonus: float | None = None) -> list[tuple[int, int]]:
    """The best partition of the line's atoms into digits (and skipped specks), given each candidate's score."""
    atoms, height = line.atoms, line.digit_height
    digit_bonus = DIGIT_BONUS if digit_bonus is None else digit_bonus
    ending: dict[int, list[tuple[int, float]]] = {}
    for (start, stop), score in zip(groups, scores, strict=True):
        ending.setdefault(stop, []).append((start, float(score) + digit_bonus))
    best = np.full(len(atoms) + 1, -np.inf)
    best[0] = 0.0
    previous: list[tuple[int, bool]] = [(0, False)] * (len(atoms) + 1)
    for stop in range(1, len(atoms) + 1):
        for start, value in ending.get(stop, []):
            if best[start] + value > best[stop]:
                best[stop], previous[stop] = best[start] + value, (start, True)
        atom = atoms[stop - 1]
        if atom.height < 0.5 * height and atom.area < 0.15 * height**2 and best[stop - 1] - SKIP_COST > best[stop]:
            best[stop], previous[stop] = best[stop - 1] - SKIP_COST, (stop - 1, False)
    chosen, stop = [], len(atoms)
    while stop > 0:
        start, is_digit = previous[stop]
        if is_digit:
            chosen.append((start, stop))
        stop = start
    return chosen[::-1]
