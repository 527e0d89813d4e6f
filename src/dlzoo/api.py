"""dlzoo from Python: train a recipe, continue a run, and load a trained one to predict with.

    import dlzoo

    run = dlzoo.train("digits", "trainer.epochs=2", out="runs/digits")  # as `dlzoo train`, progress printed
    print(run.summary["metrics"]["test"]["accuracy"])
    model = dlzoo.load(run.run_dir)               # or a kept checkpoint: runs/digits/checkpoints/epoch-0001
    print(model.predict(["digit.png"])[0]["label"])

The same code paths as the command line: its checks, its run directory, its resume. A mistake raises
`dlzoo.UserError` with the message the command line prints; Ctrl-C (or SIGTERM) stops training as there, the run
keeping its last complete checkpoint, and then raises KeyboardInterrupt.
"""

from __future__ import annotations

import argparse
import os
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlzoo.tasks.base import Task


@dataclass(frozen=True)
class TrainedRun:
    """What `train` and `resume` return: the run directory trained (`dlzoo.load(run.run_dir)` predicts with it)
    and its summary.json as a dict (`run.summary["metrics"]["test"]`)."""

    run_dir: Path
    # summary.json: final metrics, seconds, device, the best epoch (trainer.keep_best), ... None on the processes
    # of a torchrun other than rank 0, which writes it.
    summary: dict[str, Any] | None


def train(recipe: str, *overrides: str, out: str | Path | None = None,
          config: str | Path | None = None) -> TrainedRun:
    """`dlzoo train RECIPE [KEY=VALUE...] [--config FILE] [--out DIR]`: a new run of `recipe`, e.g.
    `train("fashion", "trainer.epochs=1", "data.val_fraction=0.1", out="runs/fashion-val")`, its progress printed.

    Returns a `TrainedRun` (`.run_dir`, `.summary`). A mistake (unknown recipe or key, bad value, an `out` that
    holds a run) raises `dlzoo.UserError` before anything is written; Ctrl-C stops training, keeps the last
    complete checkpoint (`resume` continues it) and raises KeyboardInterrupt. Training seeds Python's, numpy's
    and torch's global random generators from `trainer.seed`, and puts their states back when it ends."""
    if not isinstance(recipe, str):  # a Path or a number failed as "'PosixPath' object is not iterable"
        raise TypeError(f"recipe is a recipe's name, e.g. 'digits' (dlzoo.list_recipes() has them), "
                        f"not {type(recipe).__name__} {recipe!r}")
    return _train(argparse.Namespace(recipe=recipe, overrides=list(overrides), resume=None,
                                     config=_path("config", config), out=_path("out", out)))


def resume(run_dir: str | Path) -> TrainedRun:
    """`dlzoo train --resume RUN_DIR`: continue a stopped run exactly where its last checkpoint left it; a finished
    one is left as it is. Returns a `TrainedRun`, as `train` does."""
    return _train(argparse.Namespace(recipe=None, overrides=[], config=None, out=None,
                                     resume=_path("run_dir", run_dir, optional=False)))


def load(run_dir: str | Path, device: str = "auto") -> Task:
    """A trained run (its latest checkpoint, or the one `RUN/checkpoints/epoch-NNNN` names) rebuilt from the
    checkpoint alone, no data read: `.predict([files])` gives the records `dlzoo predict --json` prints (for the
    recipes that predict from files), `.models` the networks (in eval mode), `.meta` what they were trained on
    (classes, preprocessing)."""
    from dlzoo.cli import check_device_exists
    from dlzoo.runs import load_for_inference, open_run

    path = _path("run_dir", run_dir, optional=False)
    if device in ("cuda", "mps"):  # in the words of this call: the engine's own names trainer.device=cuda
        check_device_exists(device, option="device=")
    return load_for_inference(open_run(path), device)


def _path(name: str, value: object, optional: bool = True) -> str | None:
    """A path argument, a str or a Path (or None where it may be left out), as text with `~` expanded as a shell
    would have at the command line (`out="~/runs/x"` made a folder named `~`). Anything else is a TypeError:
    `out=5` trained into a folder "5", and `config={...}` was read as a file of that name."""
    if isinstance(value, TrainedRun):
        raise TypeError(f"{name}= is a path (str or pathlib.Path): pass the TrainedRun's .run_dir")
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}= is a path (str or pathlib.Path), not {type(value).__name__} {reprlib.repr(value)}")
    return os.path.expanduser(os.fspath(value))


def _train(args: argparse.Namespace) -> TrainedRun:
    from dlzoo.commands.train import run_training
    from dlzoo.engine.trainer import SUMMARY
    from dlzoo.errors import UserError
    from dlzoo.runs import read_summary

    for name in ("out", "config", "resume"):  # "" would read as not given, as at the command line
        if getattr(args, name) == "":
            raise UserError(f"{name}= needs a path, got an empty one")

    code, run_dir = run_training(args)
    if code != 0:  # stopped by Ctrl-C or SIGTERM; what was kept, and how to resume, went to stderr
        raise KeyboardInterrupt
    summary = run_dir / SUMMARY
    on_main = int(os.environ.get("RANK", 0)) == 0
    return TrainedRun(run_dir, read_summary(summary) if on_main else None)
