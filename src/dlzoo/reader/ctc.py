"""Greedy CTC decoding: the most likely class per frame, repeats merged, blanks dropped.

Classes are the blank (index `BLANK`) and the digits 0-9 at indices 1-10. Each symbol read keeps the frames it was
read from, so the reader can tell where in the line it is and how sure the network was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BLANK = 0
NUM_CLASSES = 11  # the blank and the ten digits


@dataclass(frozen=True)
class Symbol:
    digit: int
    first: int  # first and last frame of the run of frames that read it
    last: int
    peak: int  # the frame of the run where it was most likely


def greedy_decode(probabilities: np.ndarray) -> list[Symbol]:
    """Symbols of one line from its per-frame class probabilities (T, 11) (or log-probabilities)."""
    best = probabilities.argmax(1)
    symbols: list[Symbol] = []
    start = 0
    for frame in range(1, len(best) + 1):
        if frame < len(best) and best[frame] == best[start]:
            continue
        if best[start] != BLANK:
            run = probabilities[start:frame, best[start]]
            symbols.append(Symbol(int(best[start]) - 1, start, frame - 1, start + int(run.argmax())))
        start = frame
    return symbols


def digit_shares(frame: np.ndarray) -> np.ndarray:
    """The ten digits' probabilities (10,) at one frame (11,), without the blank's share: the symbol was read as a
    digit there, so its probability and runner-ups are among digits and sum to 1."""
    digits = frame[BLANK + 1:]
    return digits / digits.sum()


def greedy_texts(logits: torch.Tensor) -> list[str]:
    """Texts of a batch of lines from logits (N, T, 11): vectorised for evaluation."""
    best = logits.argmax(-1)
    keep = (best != BLANK) & torch.cat([torch.ones_like(best[:, :1], dtype=torch.bool), best[:, 1:] != best[:, :-1]], 1)
    return ["".join(str(int(c) - 1) for c in row[mask]) for row, mask in zip(best.cpu(), keep.cpu(), strict=True)]


def digit_errors(read: str, truth: str) -> int:
    """A line's errors for the per-digit accuracy, 1 - errors / digits: its edit distance to the truth, at most the
    truth's length, so that a line read with extra digits counts as wholly wrong and no worse (the accuracy of a set
    stays within [0, 1])."""
    return min(len(truth), edit_distance(read, truth))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost one."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (char_a != char_b))
    return row[-1]
