"""Fit the reader's candidate scorer (`grouping.WEIGHTS`, `BIAS`, `DIGIT_BONUS`) for a trained digits run.

    python -m dlzoo.reader.fit RUN_DIR [--pictures 300] [--seed 7]

Pictures are composed from the 4,000 mnist5k *training* digits (never the held-out digits the benchmark reports on),
half with the digits apart and half with some touching. Every candidate digit the reader proposes is labelled with
the composer's pixel ownership: it is one whole digit when at least 80% of its ink belongs to one digit and it holds
at least 80% of that digit's ink. A logistic regression on `group_features` gives the weights. `DIGIT_BONUS` trades
apart digits (over-split when it is high) against touching ones (left merged when it is low); digits written apart
being the common case, it is the value within one point of the best exact-read rate on apart pictures that reads
the most touching ones. The constants are printed, to be pasted into grouping.py.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from dlzoo.bench.compose_numbers import compose_number
from dlzoo.data.images import load_image_arrays
from dlzoo.errors import UserError, one_line
from dlzoo.reader.grouping import FEATURES, group_features
from dlzoo.reader.read import DigitReader, Proposal, not_a_digit_classifier

WHOLE = 0.8  # purity and coverage of a candidate that counts as one whole digit


def labelled_candidates(proposal: Proposal, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and whole-digit labels of every candidate in the proposal."""
    labels = proposal.segmentation.labels
    owner = cv2.resize(owner, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_NEAREST)
    owner = np.where(labels > 0, owner, -1)
    digit_ink = np.bincount(owner[owner >= 0], minlength=1)
    features, whole = [], []
    for line in proposal.lines:
        for (start, stop), probabilities in zip(line.groups, line.probabilities, strict=True):
            owners = owner[np.isin(labels, [atom.label for atom in line.line.atoms[start:stop]])]
            owners = owners[owners >= 0]
            counts = np.bincount(owners) if len(owners) else np.zeros(1, np.int64)
            digit = int(counts.argmax())
            purity = counts[digit] / max(1, len(owners))
            coverage = counts[digit] / max(1, digit_ink[digit] if digit < len(digit_ink) else 0)
            features.append(group_features(line.line, start, stop, probabilities))
            whole.append(purity >= WHOLE and coverage >= WHOLE)
    return np.array(features).reshape(-1, len(FEATURES)), np.array(whole, bool)


def read_text(proposal: Proposal, scores: list[np.ndarray], digit_bonus: float) -> str:
    """The text the reader would read with these candidate scores and bonus; each digit read with one look (the
    candidates' own probabilities), not the reader's test-time augmentation."""
    texts = []
    for line, line_scores in zip(proposal.lines, scores, strict=True):
        text = "".join(str(int(line.probabilities[index].argmax())) for index in line.chosen(line_scores, digit_bonus))
        if text:
            texts.append(text)
    return "\n".join(texts)


def fit(run_dir: str, pictures: int = 300, seed: int = 7) -> dict:
    from sklearn.linear_model import LogisticRegression

    from dlzoo.runs import load_for_inference, open_run

    if pictures < 1:
        raise UserError(f"--pictures must be at least 1, got {pictures}")
    task = load_for_inference(open_run(run_dir), "cpu")
    wrong = not_a_digit_classifier(task)
    if wrong:  # the scorer weighs a classifier's candidate digits: a line recognizer reads none
        raise UserError(f"the scorer is fitted for a digits run (a digit classifier), not {wrong}")
    reader = DigitReader(task)
    arrays = load_image_arrays("mnist5k")
    samples = []  # (truth, proposal, features, labels, touching)
    for touching in (False, True):
        rng = np.random.default_rng([seed, int(touching)])
        for _ in range(pictures):
            composed = compose_number(arrays.train_images, arrays.train_labels, rng, touching=touching)
            proposal = reader.propose(composed.image)
            if proposal.segmentation is not None:
                samples.append((composed.text, proposal, *labelled_candidates(proposal, composed.owner), touching))
    features = np.concatenate([sample[2] for sample in samples])
    labels = np.concatenate([sample[3] for sample in samples])
    model = LogisticRegression(max_iter=5000).fit(features, labels)
    weights, bias = model.coef_[0], float(model.intercept_[0])
    exact = {}  # bonus -> (apart, touching) exact-read rates
    for bonus in np.arange(0.0, 4.01, 0.25):
        hits = [0, 0]
        for truth, proposal, line_features, _, touching in samples:
            scores, offset = [], 0
            for line in proposal.lines:
                scores.append(line_features[offset: offset + len(line.groups)] @ weights + bias)
                offset += len(line.groups)
            hits[touching] += read_text(proposal, scores, bonus) == truth
        exact[float(bonus)] = (hits[0] / pictures, hits[1] / pictures)
    # Digits written apart are the common case: among the bonuses within a point of the best exact-read rate on
    # apart pictures, take the one that reads the most touching pictures.
    best_apart = max(apart for apart, _ in exact.values())
    best = max((bonus for bonus, (apart, _) in exact.items() if apart >= best_apart - 0.01),
               key=lambda bonus: (exact[bonus][1], -bonus))
    return {"weights": dict(zip(FEATURES, np.round(weights, 3).tolist(), strict=True)), "bias": round(bias, 3),
            "digit_bonus": best, "exact_read_rate": exact[best], "by_bonus": exact, "candidates": len(labels),
            "whole_fraction": float(labels.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlzoo.reader.fit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--pictures", type=int, default=300, help="pictures per set (apart, touching)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        result = fit(args.run_dir, args.pictures, args.seed)
    except UserError as error:  # a missing run or the wrong kind: one line and status 2, as from `dlzoo`
        print(f"{parser.prog}: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    print(f"# {result['candidates']} candidates, {result['whole_fraction']:.1%} whole digits; "
          f"exact reads on the training compositions (apart, touching): {result['exact_read_rate']}")
    print(f"WEIGHTS = np.array({list(result['weights'].values())})  # {', '.join(FEATURES)}")
    print(f"BIAS = {result['bias']}")
    print(f"DIGIT_BONUS = {result['digit_bonus']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
