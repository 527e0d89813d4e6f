"""`dlzoo bench reader`: read pictures of numbers composed from the 1,000 held-out mnist5k digits.

Two sets of pictures (see `compose_numbers.py`): digits apart, and digits of which some touch or overlap. Reported
per set: the exact-read rate (the whole text right) and the per-digit accuracy, 1 - (edit distance / digits), so a
missed or extra digit counts as one error and the rest of the number still counts (a line's errors are capped at its
digits: `reader.ctc.digit_errors`). The reader uses a `digits` run
trained with the recipe's defaults, or with `recipe=digit-lines` a line recognizer (CRNN + CTC), or an existing run
of either (`run_dir=RUN_DIR`, or `DLZOO_READER_RUN=RUN_DIR dlzoo bench reader`).

`pool="train"` composes from the 4,000 training digits instead: the digit reader's own settings (cuts, grouping)
were tuned that way. The digit-lines recipe's defaults were chosen by reading these held-out pictures, then checked
on fresh compositions of the same digits (`seed=1`); docs/reading.md tells which number is which.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, torch_threads, train_recipe
from dlzoo.bench.compose_numbers import compose_number
from dlzoo.data.images import load_image_arrays
from dlzoo.errors import UserError
from dlzoo.reader.ctc import digit_errors

TARGETS = {"apart": 0.95, "touching": 0.85}
READERS = ("digits", "digit-lines")  # recipes whose runs read numbers: segment + classify, or read lines whole


def read_set(reader, images: np.ndarray, labels: np.ndarray, pictures: int, seed: int, touching: bool,
             failures: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng([seed, int(touching)])
    exact = errors = digits = pairs = overlaps = 0
    seconds = 0.0
    wrong = []
    for _ in range(pictures):
        composed = compose_number(images, labels, rng, touching=touching)
        started = time.perf_counter()
        text = reader.read(composed.image).text
        seconds += time.perf_counter() - started
        exact += text == composed.text
        errors += digit_errors(text, composed.text)
        digits += len(composed.text)
        pairs += composed.touching_pairs
        overlaps += composed.overlapping_pairs
        if text != composed.text and len(wrong) < failures:
            wrong.append({"truth": composed.text, "read": text, "size": list(composed.image.shape[:2])})
    result = {"pictures": pictures, "exact_read_rate": exact / pictures, "digit_accuracy": 1 - errors / digits,
              "digits": digits, "touching_pairs": pairs, "overlapping_pairs": overlaps,
              "ms_per_picture": 1000 * seconds / pictures}
    if failures:
        result["failures"] = wrong
    return result


@benchmark("reader", "read pictures of 1-8 held-out mnist5k digits, apart / touching (exact-read rate)")
def run(pictures: int = 500, seed: int = 0, run_dir: str | None = None, pool: str = "test",
        failures: int = 0, recipe: str = "digits", threads: int | None = None,
        classifier_run: str | None = None) -> dict[str, Any]:
    """recipe: the run that reads (trained with its defaults unless run_dir is given); threads: torch CPU threads
    for training and reading (default: torch's choice, every core); classifier_run: a digits run that helps a
    digit-lines run read."""
    require_at_least(1, pictures=pictures)
    require_at_least(0, failures=failures, seed=seed)  # numpy's generators take no negative seed
    with torch_threads(threads):
        return _run(pictures, seed, run_dir, pool, failures, recipe, classifier_run)


def reading_run(run_dir: str | Path, reader: Any) -> dict[str, Any]:
    """What a benchmark's result says of the run that read: from its summary.json, which a run stopped before its
    end lacks (it still reads)."""
    from dlzoo.runs import read_summary

    summary_path = Path(run_dir) / "summary.json"
    summary = read_summary(summary_path) if summary_path.exists() else {}
    return {"run_dir": str(run_dir), "recipe": summary.get("recipe"), "reader": type(reader).__name__,
            "epochs": summary.get("epochs"), "test_metrics": summary.get("metrics", {}).get("test"),
            "train_seconds": summary.get("train_seconds")}


def _run(pictures: int, seed: int, run_dir: str | None, pool: str, failures: int, recipe: str,
         classifier_run: str | None) -> dict[str, Any]:
    from dlzoo.reader import load_reader

    if pool not in ("test", "train"):
        raise UserError(f"pool must be 'test' or 'train', got {pool!r}")
    if recipe not in READERS:
        raise UserError(f"recipe must be one of {', '.join(READERS)} (the run the reader uses), got {recipe!r}")
    run_dir = run_dir or os.environ.get("DLZOO_READER_RUN")
    if classifier_run is not None:  # checked before any training: a line run takes over an hour on a CPU
        from dlzoo.reader.read import load_classifier

        if run_dir is None and recipe != "digit-lines":
            raise UserError("classifier_run helps a digit-lines run read: add recipe=digit-lines or run_dir=")
        load_classifier(classifier_run, "cpu", option="classifier_run")  # any run but a digit classifier refused
    if run_dir is None:
        run_dir = train_recipe(recipe, ["trainer.device=cpu", "trainer.seed=0"])["run_dir"]
    reader = load_reader(run_dir, "cpu", classifier_run)  # the checkpoint says which: classifier or lines
    arrays = load_image_arrays("mnist5k")
    images, labels = ((arrays.test_images, arrays.test_labels) if pool == "test"
                      else (arrays.train_images, arrays.train_labels))
    sets = {name: read_set(reader, images, labels, pictures, seed, touching, failures)
            for name, touching in (("apart", False), ("touching", True))}
    return {
        "benchmark": "reader",
        "data": f"pictures composed from mnist5k {pool} digits ({len(images)}), 1-8 digits each, seed {seed}",
        "model": {**reading_run(run_dir, reader), "classifier_run": classifier_run},
        **sets,
        "targets": {f"{name} exact >= {target}": sets[name]["exact_read_rate"] >= target
                    for name, target in TARGETS.items()},
        "machine": {**machine(torch.device("cpu")), "torch_threads": torch.get_num_threads()},
    }
